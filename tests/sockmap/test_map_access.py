"""What ``trunkline map`` can and cannot see, and says so.

- A process in another network namespace: its sockets are in that namespace's tables, not
  ours. The map names the namespace, its processes and how many sockets it could not map, and
  maps none of them; run inside the namespace (``ip netns exec``), it finds the pair.
- Run as ``nobody``: root's sockets are hidden and counted; nobody's own connection to a root
  server is shown with the far end hidden.

Both need root to set up (CI runs as root); they skip, saying why, elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cli_helpers import TRUNKLINE
from tests.support.second_user import as_nobody, needs_nobody_reads_tree
from tests.support.sockmap import (
    DEADLINE,
    Peer,
    socat_client,
    socat_server,
    stop_all,
    unique,
)
from trunkline.sockmap import build_map

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a network "
                                "namespace / switches to the nobody user (CI runs as root)")


@pytest.fixture
def netns() -> Iterator[str]:
    name = unique("tl-sockmap")
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=DEADLINE)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True,
                       timeout=DEADLINE)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=DEADLINE)


def _map_json(*args: str, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    done = subprocess.run([*prefix, *TRUNKLINE, "map", "--json", *args], capture_output=True,
                          text=True, timeout=DEADLINE, check=False)
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


@needs_root
def test_a_process_in_another_network_namespace(netns: str) -> None:
    inside = ("ip", "netns", "exec", netns)
    peers: list[Peer] = []
    try:
        server, listening = socat_server("TCP-LISTEN:0,bind=127.0.0.1,fork", prefix=inside)
        peers.append(server)
        client = socat_client(f"TCP:{listening}", prefix=inside)
        peers.append(client)

        # from here: none of their sockets, but the namespace, by name, with its processes
        here = build_map()
        assert not [c for c in here.connections if {client.pid, server.pid} & set(c.pids)]
        assert not [s for s in here.sockets if {client.pid, server.pid} & set(s.pids)]
        other = [ns for ns in here.other_namespaces if ns.name == netns]
        assert len(other) == 1, here.other_namespaces
        assert {client.pid, server.pid} <= set(other[0].pids)
        assert other[0].sockets >= 3  # listener, client, accepted (in the forked child)
        note = next(n for n in here.notes if netns in n)
        assert f"ip netns exec {netns} trunkline map" in note
        process = here.process(client.pid)
        assert process is not None and process.netns == other[0].netns != here.netns

        # from inside the namespace: the pair, client to the forked server child
        there = _map_json("--kind", "tcp", prefix=inside)
        pairs = [(c["client"]["pid"], c["address"], c["directed"])  # type: ignore[index]
                 for c in there["connections"]]  # type: ignore[attr-defined]
        assert pairs == [(client.pid, listening, True)]
        assert there["netns"] == other[0].netns
    finally:
        stop_all(peers)


@needs_root
def test_as_nobody_root_sockets_are_hidden_and_counted() -> None:
    needs_nobody_reads_tree()
    peers: list[Peer] = []
    try:
        server, listening = socat_server("TCP-LISTEN:0,bind=127.0.0.1,fork")
        peers.append(server)
        root_client = socat_client(f"TCP:{listening}")
        peers.append(root_client)
        nobody_client = socat_client(f"TCP:{listening}", user="nobody")
        peers.append(nobody_client)

        seen = _map_json(prefix=tuple(as_nobody()))
        sockets = seen["sockets"]
        assert isinstance(sockets, list)
        held = {pid for s in sockets for pid in s["pids"]}
        assert nobody_client.pid in held
        assert server.pid not in held and root_client.pid not in held
        assert isinstance(seen["hidden_sockets"], int) and seen["hidden_sockets"] >= 3
        assert isinstance(seen["unreadable_processes"], int) and seen["unreadable_processes"] >= 3
        notes = seen["notes"]
        assert isinstance(notes, list)
        assert any(f"{seen['hidden_sockets']} sockets of other users' processes hidden" in n
                   and "run as root to see them" in n for n in notes), notes

        # nobody's own connection: its end named, the root end hidden (with its uid)
        conns = [c for c in seen["connections"]  # type: ignore[attr-defined]
                 if c["client"]["pid"] == nobody_client.pid]
        assert len(conns) == 1, seen["connections"]
        assert conns[0]["address"] == listening and conns[0]["directed"]
        assert conns[0]["server"]["pid"] is None
        assert conns[0]["server"]["command"] == "hidden: another user's process (uid 0)"
        # the root-only connection is not there at all
        assert not [c for c in seen["connections"]  # type: ignore[attr-defined]
                    if c["client"]["pid"] == root_client.pid]

        # as root: everything, nothing hidden
        full = build_map()
        assert full.hidden_sockets == 0 and full.unreadable_processes == 0
        assert {root_client.pid, nobody_client.pid} <= {
            c.client.pid for c in full.connections if c.address == listening}
    finally:
        stop_all(peers)
