"""``trunkline serve ... --name``: registers every address it bound (port 0 resolved), with
protocol, pid and host identity; a clean stop deregisters; bad options are usage errors."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service, run


def _services(registry: str) -> list[dict[str, object]]:
    result = run(["services", "--registry", registry, "--json", "--no-health"])
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["instances"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("app", "protocol"), [("hello", "http"), ("echo", "raw")])
def test_serve_name_registers_bound_addresses_and_deregisters(
        app: str, protocol: str, sqlite_url: str, short_tmp: Path) -> None:
    sock = short_tmp / "users.sock"
    with Service(["serve", app, "--on", "tcp://127.0.0.1:0", "--on", f"unix://{sock}",
                  "--name", "users", "--meta", "version=1.2", "--ttl", "5",
                  "--registry", sqlite_url]) as server:
        # registered before the readiness lines: a caller that saw them finds the name
        line = server.wait_for_line(r"^registered users \(instance (\S+), (\w+)\) in (\S+)")
        urls = server.wait_ready(2)
        assert urls[0].startswith("tcp://127.0.0.1:") and not urls[0].endswith(":0")
        assert line.group(2) == protocol and line.group(3) == sqlite_url
        [instance] = _services(sqlite_url)
        assert instance["service"] == "users" and instance["id"] == line.group(1)
        assert instance["urls"] == urls  # the real port, not 0
        assert instance["protocol"] == protocol
        assert instance["pid"] == server.proc.pid
        assert instance["meta"] == {"version": "1.2"} and instance["ttl"] == 5
        assert instance["host"]["net_ns"]  # type: ignore[index]
        assert server.stop(signal.SIGTERM) == 0
    assert _services(sqlite_url) == []  # a clean stop deregistered


def test_serve_name_uses_the_default_registry(private_registry: Path, short_tmp: Path
                                              ) -> None:
    with Service(["serve", "echo", "--on", f"unix:@tl-{os.getpid()}-default",
                  "--name", "billing-v2"]) as server:
        server.wait_for_line(r"^registered billing-v2 ")
        server.wait_ready()
        [instance] = _services(f"sqlite://{private_registry}")
        assert instance["service"] == "billing-v2"
        assert server.stop() == 0


@pytest.mark.parametrize(("args", "words"), [
    (["--name", "Bad_Name"], "service name 'Bad_Name'"),
    (["--name", "-users"], "service name '-users'"),
    (["--name", "users", "--meta", "novalue"], "is not KEY=VALUE"),
    (["--name", "users", "--ttl", "0.5"], "ttl 0.5 must be a number of seconds"),
    (["--meta", "version=1"], "--meta registers nothing without --name"),
])
def test_serve_name_bad_options_are_usage_errors(args: list[str], words: str) -> None:
    result = run(["serve", "echo", "--on", "tcp://127.0.0.1:0", *args])
    assert result.returncode == 2, result.stderr.decode()
    assert words in result.stderr.decode()
    assert "listening on" not in result.stderr.decode()  # refused before binding


def test_serve_name_damaged_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    damaged = tmp_path / "registry.db"
    damaged.write_bytes(b"this is not a SQLite database" * 100)
    result = run(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--name", "users",
                  "--registry", f"sqlite://{damaged}"])
    assert result.returncode == 1, result.stderr.decode()
    assert f"registry file {damaged}" in result.stderr.decode()


def test_serve_name_registers_an_inherited_socket_by_its_address(sqlite_url: str) -> None:
    """fd://N means nothing to another process: the socket's bound address is registered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with Service(["serve", "echo", "--on", f"fd://{fd}", "--name", "inherited",
                      "--registry", sqlite_url], pass_fds=[fd]) as server:
            server.wait_for_line(r"^registered inherited ")
            [instance] = _services(sqlite_url)
            assert instance["urls"] == [f"tcp://127.0.0.1:{port}"]
            done = run(["connect", "svc://inherited", "--registry", sqlite_url],
                       input=b"by name")
            assert (done.returncode, done.stdout) == (0, b"by name"), done.stderr
            assert server.stop() == 0


def test_serve_name_with_workers_registers_each_worker(sqlite_url: str) -> None:
    """--workers 2: each worker is an instance (its own pid) on the same bound sockets."""
    with Service(["serve", "hello", "--on", "tcp://127.0.0.1:0", "--workers", "2",
                  "--name", "users", "--registry", sqlite_url]) as server:
        ids = {server.wait_for_line(r"^registered users \(instance (\S+),").group(1)
               for _ in range(2)}
        [url] = server.wait_ready()
        instances = _services(sqlite_url)
        assert {i["id"] for i in instances} == ids and len(ids) == 2
        assert [i["urls"] for i in instances] == [[url], [url]]
        assert len({i["pid"] for i in instances}) == 2
        assert server.proc.pid not in {i["pid"] for i in instances}  # workers, not the parent
        done = run(["call", "http+svc://users/", "--registry", sqlite_url])
        assert (done.returncode, done.stdout) == (0, b"Hello, world!\n"), done.stderr
        assert server.stop() == 0
    assert _services(sqlite_url) == []
