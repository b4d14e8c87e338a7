"""``trunkline map`` labels the sockets of services registered with ``serve --name`` with
their service name (from the registry, no --services-file), and ``--service`` filters."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cli_helpers import Service, run
from tests.support.sockmap import connect_client, stop_all, unique


def _json(*args: str) -> dict[str, Any]:
    done = run(["map", "--json", *args])
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_map_labels_registered_services(sqlite_url: str) -> None:
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--on", f"unix:@{unique()}",
                  "--name", "users", "--registry", sqlite_url]) as users, \
            Service(["serve", "echo", "--on", "tcp://127.0.0.1:0"]) as anonymous:
        users.wait_for_line(r"^registered users ")
        tcp_url, abstract_url = users.wait_ready(2)
        other_url = anonymous.wait_ready()[0]
        peers = [connect_client(tcp_url), connect_client(abstract_url),
                 connect_client(other_url)]
        try:
            data = _json("--registry", sqlite_url, "--service", "users")
            pids = {p["pid"] for p in data["processes"]}
            assert users.proc.pid in pids and anonymous.proc.pid not in pids
            assert {c["address"] for c in data["connections"]} == {
                tcp_url.removeprefix("tcp://"), abstract_url.removeprefix("unix:")}
            assert all(c["services"] == ["users"] for c in data["connections"])
            listening = [s for s in data["sockets"] if s["state"] == "LISTEN"]
            assert len(listening) == 2 and all(s["services"] == ["users"] for s in listening)

            # the whole map: the unnamed server's sockets carry no name
            data = _json("--registry", sqlite_url, "--pid", str(anonymous.proc.pid))
            assert data["sockets"] and all(s["services"] == [] for s in data["sockets"])

            done = run(["map", "--registry", sqlite_url, "--service", "nobody"])
            assert done.returncode == 2
            assert "no service named nobody registered from this host" in \
                done.stderr.decode()
            assert "(known: users)" in done.stderr.decode()
        finally:
            stop_all(peers)
        assert users.stop() == 0 and anonymous.stop() == 0
