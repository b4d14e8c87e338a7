"""``trunkline services``, ``trunkline resolve``, ``trunkline registry info|prune``: output,
exit codes and error lines; ``services --watch`` in a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.workers import Worker
from tests.support.cli_helpers import run


def out(result: object) -> str:
    return result.stdout.decode()  # type: ignore[attr-defined, no-any-return]


def err(result: object) -> str:
    return result.stderr.decode()  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def served(sqlite_url: str, short_tmp: Path) -> Iterator[dict[str, object]]:
    """A real echo service registered as 'users' by another process."""
    with Worker(["serve", sqlite_url, "users", str(short_tmp)], env={"TTL": "10"}) as worker:
        record = json.loads(worker.line(r"registered (.*)").group(1))
        yield record
        assert worker.finish() == 0


def test_services_lists_instances_with_health(sqlite_url: str, served: dict[str, object]
                                              ) -> None:
    with Worker(["hold", sqlite_url, "ghost"]) as ghost:  # registered, listening nowhere
        ghost_id = ghost.line(r"registered (\S+)").group(1)
        result = run(["services", "--registry", sqlite_url])
        assert result.returncode == 0, err(result)
        text = out(result)
        assert f"2 instance(s) of 2 service(s) in {sqlite_url}" in text
        users = next(line for line in text.splitlines() if line.startswith("users "))
        assert str(served["id"]) in users and re.search(r"\bup\s*$", users)
        assert "(this netns)" in users
        for url in served["urls"]:  # type: ignore[attr-defined]
            assert f"✓ {url}" in text
        ghost_line = next(line for line in text.splitlines() if line.startswith("ghost "))
        assert ghost_id in ghost_line and re.search(r"\bdown\s*$", ghost_line)

        result = run(["services", "--registry", sqlite_url, "--json", "--service", "users"])
        view = json.loads(out(result))
        assert view["registry"] == sqlite_url and not view["stale"]
        [instance] = view["instances"]
        assert instance["id"] == served["id"] and instance["health"] == "up"
        assert set(instance["url_health"].values()) == {"ok"}
        assert instance["pid"] > 0 and instance["age_s"] >= 0 and instance["ttl"] == 10
        assert instance["host"]["boot_id"] == served["host"]["boot_id"]  # type: ignore[index]


def test_services_on_an_empty_registry(sqlite_url: str) -> None:
    result = run(["services", "--registry", sqlite_url])
    assert result.returncode == 0
    assert "0 instance(s)" in out(result) and "(none)" in out(result)


def test_resolve_shows_ranking_and_reasons(sqlite_url: str, served: dict[str, object]
                                           ) -> None:
    result = run(["resolve", "users", "--registry", sqlite_url])
    assert result.returncode == 0, err(result)
    lines = out(result).splitlines()
    assert lines[0] == f"users in {sqlite_url}: 1 live instance(s)"
    first, second = lines[2], lines[3]
    assert first.split()[1].startswith("unix:@") and "abstract name reachable" in first
    assert "unix:///" in second and "Unix path reachable" in second
    result = run(["resolve", "users", "--registry", sqlite_url, "--prefer", "tcp", "--json"])
    answer = json.loads(out(result))
    assert answer["candidates"][0]["kind"] == "tcp"
    assert answer["candidates"][0]["reason"].startswith("preferred (tcp); ")
    assert answer["instances"] == 1 and answer["stale"] is False


@pytest.mark.parametrize(("args", "code", "message"), [
    (["resolve", "nobody"], 6, "trunkline resolve: service 'nobody': no live instance in "),
    (["resolve", "Bad_Name"], 3, "service name 'Bad_Name' must be a DNS label"),
    (["resolve", "users", "--prefer", "smoke"], 2, "Invalid value for '--prefer'"),
    (["services", "--registry", "redis://x"], 3, "scheme 'redis' must be sqlite:// or etcd://"),
    (["registry", "info", "--registry", "sqlite://relative.db"], 3, "absolute file path"),
])
def test_errors_are_one_line_with_the_usual_codes(args: list[str], code: int, message: str,
                                                  sqlite_url: str) -> None:
    if "--registry" not in args:
        args = [*args, "--registry", sqlite_url]
    result = run(args)
    assert result.returncode == code
    assert message in err(result)
    assert "Traceback" not in err(result)


def test_a_bad_registry_env_var_is_a_bad_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUNKLINE_REGISTRY", "zookeeper://x")
    result = run(["services"])
    assert result.returncode == 3
    assert err(result).startswith("trunkline services: $TRUNKLINE_REGISTRY: bad address")


def test_a_damaged_registry_file_is_status_1_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(b"garbage" * 100)
    for args in (["services"], ["resolve", "users"], ["registry", "prune"]):
        result = run([*args, "--registry", f"sqlite://{path}"])
        assert result.returncode == 1
        line = err(result).strip()
        assert line.startswith(f"trunkline {args[0]}")
        assert f"registry file {path}: is not a SQLite database" in line
        assert "\n" not in line
    assert path.read_bytes() == b"garbage" * 100


def test_unreachable_etcd_is_status_7() -> None:
    from tests.registry.etcd_cluster import free_port

    port = free_port()
    result = run(["services", "--registry", f"etcd://127.0.0.1:{port}"])
    assert result.returncode == 7
    assert f"etcd unreachable (127.0.0.1:{port}:" in err(result)


def test_registry_info_and_prune(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Worker(["hold", sqlite_url, "users"], env={"TTL": "30"}) as victim:
        victim_id = victim.line(r"registered (\S+)").group(1)
        result = run(["registry", "info", "--registry", sqlite_url])
        assert out(result).splitlines() == [
            f"registry  {sqlite_url}  (from --registry)",
            "holds     1 live instance(s) of 1 service(s): users"]
        victim.kill9()
    monkeypatch.setenv("TRUNKLINE_REGISTRY", sqlite_url)
    info = json.loads(out(run(["registry", "info", "--json"])))
    assert info == {"registry": sqlite_url, "source": "$TRUNKLINE_REGISTRY", "instances": 0,
                    "services": []}
    result = run(["registry", "prune"])
    assert result.returncode == 0
    assert out(result).splitlines()[0] == f"removed 1 record(s) of dead instances from " \
        f"{sqlite_url}"
    assert victim_id in out(result)
    assert json.loads(out(run(["registry", "prune", "--json"])))["removed"] == []


def test_services_watch_json_prints_one_line_per_view(sqlite_url: str) -> None:
    watch = Worker(["services", "--watch", "--json", "--registry", sqlite_url],
                   program=(sys.executable, "-m", "trunkline"))
    with watch:
        first = json.loads(watch.line(r"^\{").string)
        assert first == {"registry": sqlite_url, "stale": False, "instances": []}
        with Worker(["hold", sqlite_url, "orders"]) as holder:
            instance_id = holder.line(r"registered (\S+)").group(1)
            while True:  # views also come every 2 s for the ages: wait for the one with it
                view = json.loads(watch.line(r"^\{").string)
                if view["instances"]:
                    break
            [instance] = view["instances"]
            assert instance["id"] == instance_id and instance["health"] == "down"
            assert holder.finish() == 0
        watch.proc.send_signal(signal.SIGINT)
        assert watch.proc.wait(timeout=20) == 0
    assert not any("Traceback" in line for line in watch.err)


# ---------------------------------------------------------------------------- --watch, in a pty


class Terminal:
    """A command on a pseudo-terminal (160x40); what it writes is collected by a thread."""

    def __init__(self, args: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
            env["TERM"] = "xterm-256color"
            os.execve(sys.executable, [sys.executable, "-m", "trunkline", *args], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.data = b""
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            with self.changed:
                self.data += chunk
                self.changed.notify_all()
            if not chunk:
                return

    def wait_for(self, text: str, after: int = 0, timeout: float = 30) -> int:
        """The offset just past the first ``text`` after ``after``."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        with self.changed:
            while (at := self.data.find(needle, after)) < 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} not shown; screen tail: "
                                         f"{self.data[-600:]!r}")
                self.changed.wait(left)
            return at + len(needle)

    def interrupt(self) -> int:
        os.write(self.fd, b"\x03")  # Ctrl-C, as typed: the terminal sends SIGINT
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def test_services_watch_redraws_in_a_terminal(sqlite_url: str, short_tmp: Path) -> None:
    terminal = Terminal(["services", "--watch", "--registry", sqlite_url])
    try:
        at = terminal.wait_for("0 instance(s) of 0 service(s)")
        with Worker(["serve", sqlite_url, "orders", str(short_tmp)]) as worker:
            record = json.loads(worker.line(r"registered (.*)").group(1))
            at = terminal.wait_for(str(record["id"]), at)
            at = terminal.wait_for("1 instance(s) of 1 service(s)", at - 400)
            assert worker.finish() == 0
        at = terminal.wait_for("0 instance(s) of 0 service(s)", at)
        assert terminal.interrupt() == 0
        assert b"Traceback" not in terminal.data
    finally:
        terminal.close()
