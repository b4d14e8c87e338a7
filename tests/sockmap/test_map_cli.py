"""The ``trunkline map`` command: outputs, filters, service labels and its errors, run as a
subprocess against a real ``trunkline serve echo`` with connected clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_helpers import Service, run
from tests.support.sockmap import Peer, connect_client, socat_client, socat_server, stop_all, unique


@dataclass
class Running:
    server_pid: int
    tcp: str  # "127.0.0.1:PORT"
    abstract: str  # "@name"
    tcp_client: int
    abstract_client: int
    other_server: int  # a socat echo server that is not the service
    other_client: int
    services_file: Path


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    tmp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    peers: list[Peer] = []
    try:
        with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0",
                      "--on", f"unix:@{unique()}"]) as server:
            tcp_url, abstract_url = server.wait_ready(2)
            peers.append(connect_client(tcp_url))
            peers.append(connect_client(abstract_url))
            other, listening = socat_server("TCP-LISTEN:0,bind=127.0.0.1,fork")
            peers.append(other)
            peers.append(socat_client(f"TCP:{listening}"))
            services = tmp / "services.json"
            services.write_text(json.dumps([{"name": "echo", "urls": [tcp_url, abstract_url],
                                             "pids": []}]))
            yield Running(server.proc.pid, tcp_url.removeprefix("tcp://"),
                          abstract_url.removeprefix("unix:"), peers[0].pid, peers[1].pid,
                          other.pid, peers[3].pid, services)
            stop_all(peers)
            peers.clear()
            assert server.stop() == 0
    finally:
        stop_all(peers)
        shutil.rmtree(tmp, ignore_errors=True)


def _json(*args: str) -> dict[str, Any]:
    done = run(["map", "--json", *args])
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _pairs(data: dict[str, Any]) -> set[tuple[str, int, int, str]]:
    return {(c["kind"], c["client"]["pid"], c["server"]["pid"], c["address"])
            for c in data["connections"]}


def test_table_fits_100_columns_and_shows_the_pairs(running: Running) -> None:
    done = run(["map", "--pid", str(running.server_pid),
                "--services-file", str(running.services_file)])
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "Connections (2)" in text
    assert running.tcp in text and running.abstract in text
    assert f"{running.tcp_client} python" in text and f"{running.server_pid} python" in text
    assert "echo" in text  # the service column


def test_kind_filter(running: Running) -> None:
    data = _json("--kind", "unix", "--pid", str(running.server_pid))
    assert {s["kind"] for s in data["sockets"]} == {"unix"}
    assert _pairs(data) == {("unix", running.abstract_client, running.server_pid,
                             running.abstract)}


def test_pid_filter_keeps_both_ends(running: Running) -> None:
    data = _json("--pid", str(running.tcp_client))
    assert _pairs(data) == {("tcp", running.tcp_client, running.server_pid, running.tcp)}
    assert {p["pid"] for p in data["processes"]} == {running.tcp_client, running.server_pid}
    assert {tuple(s["pids"]) for s in data["sockets"]} == {(running.tcp_client,),
                                                          (running.server_pid,)}


def test_listening_filter(running: Running) -> None:
    data = _json("--listening", "--pid", str(running.server_pid))
    assert data["connections"] == []
    assert {(s["kind"], s["local"], s["state"]) for s in data["sockets"]} == {
        ("tcp", running.tcp, "LISTEN"), ("unix", running.abstract, "LISTEN")}


def test_service_filter_and_labels(running: Running) -> None:
    data = _json("--service", "echo", "--services-file", str(running.services_file))
    assert _pairs(data) == {("tcp", running.tcp_client, running.server_pid, running.tcp),
                            ("unix", running.abstract_client, running.server_pid,
                             running.abstract)}
    assert all(c["services"] == ["echo"] for c in data["connections"])
    # the socat pair is no part of it
    assert not {running.other_server, running.other_client} & {p["pid"] for p in
                                                                data["processes"]}
    server = next(p for p in data["processes"] if p["pid"] == running.server_pid)
    assert server["services"] == ["echo"]


def test_mermaid_has_one_edge_per_connection(running: Running) -> None:
    done = run(["map", "--mermaid", "--pid", str(running.server_pid)])
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert text.startswith("flowchart LR\n")
    edges = {line.strip() for line in text.splitlines() if "-->|" in line}
    assert edges == {
        f'p{running.tcp_client} -->|"tcp {running.tcp}"| p{running.server_pid}',
        f'p{running.abstract_client} -->|"unix {running.abstract}"| p{running.server_pid}'}


def test_html_file_is_self_contained(running: Running, tmp_path: Path) -> None:
    page = tmp_path / "map.html"
    done = run(["map", "--html", str(page), "--pid", str(running.server_pid)])
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"" and f"wrote {page}".encode() in done.stderr
    text = page.read_text()
    assert "mermaid.initialize" in text and "flowchart LR" in text
    assert "<script src=" not in text.replace('<script src="data:', "")  # no CDN, no file


@pytest.mark.parametrize(("args", "message"), [
    (["--service", "nope"], "no service named nope registered from this host in "),
    (["--json", "--mermaid"], "pick one"),
    (["--kind", "sctp"], "'sctp' is not one of"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    done = run(["map", *args])
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not JSON"),
    ('{"name": "x"}', "expected a JSON list"),
    ('[{"urls": []}]', 'record 0 needs a "name" string'),
    ('[{"name": "x", "pids": ["12"]}]', '"pids" a list of integers'),
    ('[{"name": "x", "urls": ["tcp://nohost"]}]', "service 'x': bad address"),
])
def test_bad_services_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "services.json"
    path.write_text(content)
    done = run(["map", "--services-file", str(path)])
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.startswith("trunkline map: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("missing", ["pyroute2", "psutil"])
def test_missing_extra_is_a_clear_message(tmp_path: Path, missing: str) -> None:
    """Without the map extra the command says what to install (the library is blocked with a
    stand-in package that fails to import, first on the path)."""
    (tmp_path / missing).mkdir()
    (tmp_path / missing / "__init__.py").write_text(
        f"raise ImportError('{missing} blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "trunkline", "map"], capture_output=True,
                          text=True, timeout=30, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("trunkline map: trunkline map needs ")
    assert missing in done.stderr and "pip install 'trunkline[map]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_has_examples() -> None:
    done = run(["map", "--help"])
    assert done.returncode == 0
    text = done.stdout.decode()
    for example in ("trunkline map --kind unix --kind fifo", "trunkline map --mermaid",
                    "trunkline map --html map.html", "--listening", "--services-file"):
        assert example in text
