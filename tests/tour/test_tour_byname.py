"""The tour's by-name leg: two services register, a caller here is given the Unix socket
(with the reason), by name vs by address side by side; as root, host B (a network
namespace) calls the same name and is given TCP; nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.cli_helpers import run
from trunkline.tour import ByNameLeg, ByNameLegResult, run_tour


async def test_byname_leg_gives_this_host_the_unix_socket() -> None:
    result = await run_tour([ByNameLeg(requests=20)], rounds=20, timeout=20)
    assert result.ok, result.to_dict()
    [leg] = result.legs
    assert isinstance(leg, ByNameLegResult)
    assert set(leg.services) == {"users", "orders"}
    here = [c for c in leg.calls if c.caller == "this host"]
    assert [c.url for c in here] == ["http+svc://users/", "http+svc://orders/"]
    for call, name in zip(here, ("users", "orders"), strict=True):
        assert call.chosen == leg.services[name][0] and call.chosen.startswith("unix://")
        assert call.reason == "same mount namespace: Unix path reachable"
        assert call.answer["service"] == name and call.answer["kind"] == "unix"
        assert call.status == 200 and call.instances == 1
    assert leg.by_name is not None and leg.by_name.rounds == 20
    assert leg.direct is not None and leg.direct.rounds == 20 and leg.ratio is not None
    assert leg.direct_url.startswith("http+unix://")
    assert result.cleanup is not None and result.cleanup.ok  # registry file and sockets gone


def _namespaces() -> str:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20,
                          check=False)
    return done.stdout


@pytest.mark.timeout(120)
def test_byname_leg_host_b_goes_over_tcp() -> None:
    if os.geteuid() != 0:
        pytest.skip("host B is a network namespace: only made when the tour runs as root")
    done = run(["tour", "--only", "byname", "--rounds", "40", "--json"], timeout=100)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    [leg] = json.loads(done.stdout)["legs"]
    namespace = leg["host_b"].removeprefix("network namespace ")
    assert namespace.startswith("tl-tour-")
    [far] = [c for c in leg["calls"] if c["caller"].startswith("host B")]
    assert far["chosen"].startswith("tcp://198.18.0.") and far["status"] == 200
    assert far["reason"].startswith("other host: TCP on 198.18.0.")
    assert any("other mount namespace: Unix path skipped" in s for s in far["skipped"])
    assert far["answer"]["kind"] == "tcp" and far["direct_total_ns"] > 0
    assert namespace not in _namespaces()  # and the veth pair went with it
    addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True,
                               timeout=20, check=False).stdout
    assert far["chosen"].removeprefix("tcp://").rsplit(":", 1)[0] not in addresses
