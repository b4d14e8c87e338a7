"""``trunkline map`` on real topologies: the pairs it finds, per kind.

One ``trunkline serve echo`` listens on TCP and UDP (IPv4 and IPv6), a Unix path, an abstract
name, a FIFO and a Unix datagram abstract name, with one ``trunkline connect`` client on each
(each proven connected by an echo round trip); plain socat pairs over TCP and a Unix path; a
plain FIFO between two ``cat``s. The map is read by the library call the CLI and the dashboard use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service
from tests.support.sockmap import Peer, connect_client, socat_client, socat_server, stop_all, unique
from trunkline.sockmap import Connection, MapFilter, ServiceRecord, SocketMap, build_map

KINDS = ["tcp", "tcp6", "unix", "abstract", "fifo", "udp", "udp6", "unixgram"]
WIRE_KINDS = {"abstract": "unix", "tcp6": "tcp", "udp6": "udp"}


@dataclass
class EchoTopology:
    server_pid: int
    urls: dict[str, str]  # kind -> the URL the server printed
    addresses: dict[str, str]  # kind -> the address the map should show
    clients: dict[str, int]  # kind -> client pid
    the_map: SocketMap


def _map_address(kind: str, url: str) -> str:
    rest = url.split(":", 1)[1]
    if kind in ("abstract", "unixgram"):
        return rest  # "@name"
    return rest.removeprefix("//")  # "127.0.0.1:PORT" or "/abs/path"


@pytest.fixture(scope="module")
def echo_topology() -> Iterator[EchoTopology]:
    tmp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    name = unique()
    asked = {"tcp": "tcp://127.0.0.1:0", "unix": f"unix://{tmp / 'echo.sock'}",
             "abstract": f"unix:@{name}", "fifo": f"fifo://{tmp / 'echo.fifo'}",
             "udp": "udp://127.0.0.1:0", "unixgram": f"unixgram:@{name}-dgram",
             "tcp6": "tcp://[::1]:0", "udp6": "udp://[::1]:0"}
    clients: list[Peer] = []
    try:
        with Service(["serve", "echo", *[a for u in asked.values() for a in ("--on", u)]]
                     ) as server:
            ready = server.wait_ready(len(asked))
            urls = dict(zip(asked, ready, strict=True))  # ready lines come in --on order
            assert [u.split(":")[0] for u in urls.values()] == [
                u.split(":")[0] for u in asked.values()], ready
            for kind in KINDS:
                clients.append(connect_client(urls[kind]))
            assert urls["tcp6"].startswith("tcp://[::1]:")
            record = ServiceRecord("echo", urls=tuple(urls.values()))
            yield EchoTopology(
                server_pid=server.proc.pid, urls=urls,
                addresses={k: _map_address(k, u) for k, u in urls.items()},
                clients={k: c.pid for k, c in zip(KINDS, clients, strict=True)},
                the_map=build_map(services=[record]))
            stop_all(clients)
            clients.clear()
            assert server.stop() == 0
    finally:
        stop_all(clients)
        shutil.rmtree(tmp, ignore_errors=True)


def _between(the_map: SocketMap, client: int, server: int) -> list[Connection]:
    return [c for c in the_map.connections
            if (c.client.pid, c.server.pid) == (client, server)]


@pytest.mark.parametrize("kind", KINDS)
def test_each_client_is_paired_with_the_service(echo_topology: EchoTopology, kind: str) -> None:
    topo = echo_topology
    found = _between(topo.the_map, topo.clients[kind], topo.server_pid)
    wire_kind = WIRE_KINDS.get(kind, kind)
    assert [(c.kind, c.address, c.directed) for c in found] == [
        (wire_kind, topo.addresses[kind], True)], topo.the_map.connections
    conn = found[0]
    assert conn.services == ("echo",)
    assert "connect" in conn.client.command and "serve echo" in conn.server.command
    # the client is connected to nothing else of the service
    others = [c for c in topo.the_map.connections if topo.clients[kind] in c.pids
              and topo.server_pid in c.pids and c is not conn]
    assert others == []


@pytest.mark.parametrize("kind", KINDS)
def test_the_service_waits_on_each_address(echo_topology: EchoTopology, kind: str) -> None:
    topo = echo_topology
    wire_kind = WIRE_KINDS.get(kind, kind)
    waiting = [s for s in topo.the_map.sockets if s.waiting and s.kind == wire_kind
               and s.local == topo.addresses[kind]]
    assert len(waiting) == 1, [s for s in topo.the_map.sockets if s.kind == wire_kind]
    assert waiting[0].pids == (topo.server_pid,)
    assert waiting[0].services == ("echo",)
    assert waiting[0].state == ("UNCONN" if kind in ("udp", "udp6", "unixgram") else "LISTEN")


def test_stream_ends_name_each_other(echo_topology: EchoTopology) -> None:
    """Both sockets of a stream connection point at each other (``peer``), and the client's
    remote is the server's address."""
    topo = echo_topology
    by_id = {s.id: s for s in topo.the_map.sockets}
    for kind in ("tcp", "tcp6", "unix", "abstract"):
        conn = _between(topo.the_map, topo.clients[kind], topo.server_pid)[0]
        client, server = by_id[conn.client.socket], by_id[conn.server.socket]
        assert (client.peer, server.peer) == (server.id, client.id)
        assert client.remote == topo.addresses[kind]
        assert client.pids == (topo.clients[kind],) and server.pids == (topo.server_pid,)


def test_processes_carry_the_service_label(echo_topology: EchoTopology) -> None:
    topo = echo_topology
    server = topo.the_map.process(topo.server_pid)
    assert server is not None and server.services == ("echo",)
    for pid in topo.clients.values():
        client = topo.the_map.process(pid)
        assert client is not None and client.services == ()


def test_json_is_plain_data(echo_topology: EchoTopology) -> None:
    import json

    data = json.loads(json.dumps(echo_topology.the_map.to_dict()))
    pairs = {(c["kind"], c["client"]["pid"], c["server"]["pid"]) for c in data["connections"]}
    assert ("tcp", echo_topology.clients["tcp"], echo_topology.server_pid) in pairs
    assert all("pids" in s for s in data["sockets"])


# --------------------------------------------------------------------------- plain peers


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_socat_pairs(tmp_dir: Path) -> None:
    """Plain socat pairs, TCP and a Unix path: no trunkline on either end. The TCP server
    forks a child per connection (``fork``), so its listener stays and tells the direction."""
    import psutil

    peers: list[Peer] = []
    try:
        tcp_server, listening = socat_server("TCP-LISTEN:0,bind=127.0.0.1,fork")
        peers.append(tcp_server)
        tcp_client = socat_client(f"TCP:{listening}")
        peers.append(tcp_client)
        path = str(tmp_dir / "socat.sock")
        unix_server, _ = socat_server(f"UNIX-LISTEN:{path}")
        peers.append(unix_server)
        unix_client = socat_client(f"UNIX-CONNECT:{path}")
        peers.append(unix_client)
        forked = [p.pid for p in psutil.Process(tcp_server.pid).children()]
        assert len(forked) == 1  # the child serving tcp_client (the echo came back through it)

        the_map = build_map(MapFilter(pids=frozenset({tcp_client.pid, unix_client.pid,
                                                      tcp_server.pid})))
        found = {(c.kind, c.client.pid, c.server.pid, c.address, c.directed)
                 for c in the_map.connections}
        assert found == {("tcp", tcp_client.pid, forked[0], listening, True),
                         ("unix", unix_client.pid, unix_server.pid, path, True)}
        listener = [s for s in the_map.sockets if s.state == "LISTEN" and s.local == listening]
        assert [s.pids for s in listener] == [(tcp_server.pid,)]
    finally:
        stop_all(peers)


def test_tcp_pair_without_a_listener_has_no_direction() -> None:
    """socat without ``fork`` closes its listener once it accepted: the pair is still found
    (by its two endpoints), but nothing tells which end connected."""
    peers: list[Peer] = []
    try:
        server, listening = socat_server("TCP-LISTEN:0,bind=127.0.0.1")
        peers.append(server)
        client = socat_client(f"TCP:{listening}")
        peers.append(client)
        the_map = build_map(MapFilter(pids=frozenset({client.pid})))
        assert [({c.client.pid, c.server.pid}, c.kind, c.directed)
                for c in the_map.connections] == [({client.pid, server.pid}, "tcp", False)]
        assert not any(s.state == "LISTEN" and s.local == listening for s in the_map.sockets)
    finally:
        stop_all(peers)


def test_plain_fifo_goes_from_writer_to_reader(tmp_dir: Path) -> None:
    path = tmp_dir / "plain.fifo"
    os.mkfifo(path)
    reader = Peer(["cat", str(path)])
    writer = Peer(["sh", "-c", 'exec cat > "$1"', "sh", str(path)])
    try:
        assert writer.proc.stdin is not None
        writer.proc.stdin.write(b"through the fifo\n")
        writer.proc.stdin.flush()
        reader.read_until(b"through the fifo\n")  # both ends are open now

        the_map = build_map(MapFilter(kinds=frozenset({"fifo"}),
                                      pids=frozenset({reader.pid, writer.pid})))
        assert [(c.kind, c.client.pid, c.server.pid, c.address, c.directed)
                for c in the_map.connections] == [
            ("fifo", writer.pid, reader.pid, str(path), True)]
        fifo = next(s for s in the_map.sockets if s.local == str(path))
        assert fifo.state == "OPEN"
        assert {(h.pid, h.mode) for h in fifo.holders} == {(reader.pid, "r"), (writer.pid, "w")}
    finally:
        stop_all([reader, writer])


def test_import_trunkline_does_not_load_the_map() -> None:
    """The map is a tool: the library does not import it, nor its extras."""
    code = ("import sys, trunkline; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('psutil', 'pyroute2') or m.startswith('trunkline.sockmap')); print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "[]"


def test_records_by_pid_label_both_ends(echo_topology: EchoTopology) -> None:
    """Records fed to the map directly (the registry's hook): by pid alone, a caller's
    sockets carry its own service and the connection carries both; the filter keeps it."""
    topo = echo_topology
    records = [ServiceRecord("callers", pids=(topo.clients["tcp"],)),
               ServiceRecord("echo", pids=(topo.server_pid,))]
    the_map = build_map(MapFilter(services=frozenset({"callers"})), records)
    assert [(c.kind, c.client.pid, c.server.pid, c.services) for c in the_map.connections] == [
        ("tcp", topo.clients["tcp"], topo.server_pid, ("callers", "echo"))]
    assert {p.pid: p.services for p in the_map.processes} == {
        topo.clients["tcp"]: ("callers",), topo.server_pid: ("echo",)}


@pytest.mark.parametrize(("url", "kind", "local", "ip", "port", "labelled"), [
    ("tcp://127.0.0.1:7000", "tcp", "127.0.0.1:7000", "127.0.0.1", 7000, True),
    ("tcp://127.0.0.1:7000", "tcp", "127.0.0.2:7000", "127.0.0.2", 7000, False),
    ("tcp://0.0.0.0:7000", "tcp", "127.0.0.1:7000", "127.0.0.1", 7000, True),  # accepted
    ("tcp://127.0.0.1:7000", "tcp", "0.0.0.0:7000", "0.0.0.0", 7000, True),  # its listener
    ("tcp://localhost:7000", "tcp", "[::1]:7000", "::1", 7000, True),  # a name: port alone
    ("tcp://[::1]:7000", "tcp", "[::1]:7001", "::1", 7001, False),
    ("udp://127.0.0.1:7000", "tcp", "127.0.0.1:7000", "127.0.0.1", 7000, False),
    ("unix:@svc", "unix", "@svc", None, None, True),
    ("unix:///run/svc.sock", "unix", "/run/svc.sock", None, None, True),
    ("unix:///run/svc.sock", "unix", "@/run/svc.sock", None, None, False),
    ("unixgram:@svc", "unixgram", "@svc", None, None, True),
    ("unixgram:@svc", "unix", "@svc", None, None, False),
    ("fifo:///run/svc.fifo", "fifo", "/run/svc.fifo", None, None, True),
])
def test_service_urls_match_local_addresses(url: str, kind: str, local: str, ip: str | None,
                                            port: int | None, labelled: bool) -> None:
    from trunkline.sockmap.services import ServiceLabels

    labels = ServiceLabels([ServiceRecord("svc", urls=(url,))])
    assert labels.for_address(kind, local, ip, port) == ({"svc"} if labelled else set())
