"""Autobahn|Testsuite (through kosoku) against ``trunkline serve`` (an ASGI WebSocket echo,
over TCP and over a Unix socket relayed by ``trunkline relay``, as kosoku speaks TCP only) and
against trunkline's client. No case may FAIL (or end with a bad close); NON-STRICT,
INFORMATIONAL and UNIMPLEMENTED verdicts are allowed and listed in the summary saved under
the artifacts directory (``.ci/run`` prints where). CI runs ``CI_CASES``; the full suite
is the ``autobahn_full`` job:

    TRUNKLINE_AUTOBAHN_FULL=1 .venv/bin/python -m pytest -m autobahn_full tests/aio/test_autobahn.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.autobahn import (
    CI_CASES,
    MAX_FRAGMENTS,
    MAX_SIZE,
    RUNNER_LIMITED,
    Summary,
    run_against_server,
    run_client,
    save,
)
from tests.support.cli_helpers import Service

FULL = os.environ.get("TRUNKLINE_AUTOBAHN_FULL") == "1"
full_only = pytest.mark.skipif(not FULL, reason="the full Autobahn suite runs in its own job: "
                               "TRUNKLINE_AUTOBAHN_FULL=1 pytest -m autobahn_full")


@pytest.fixture
def servers(short_tmp: Path) -> Iterator[tuple[str, str]]:
    """``trunkline serve http-echo`` on TCP and on a Unix socket (limits raised for 9.x),
    and a TCP relay to the Unix socket: the two ws:// addresses kosoku can dial."""
    sock = short_tmp / "ab.sock"
    with Service(["serve", "http-echo", "--on", "tcp://127.0.0.1:0", "--on", f"unix://{sock}",
                  "--ws-max-size", str(MAX_SIZE), "--ws-max-fragments", str(MAX_FRAGMENTS),
                  "-q"]) as server:
        tcp, _ = server.wait_ready(2)
        with Service(["relay", "tcp://127.0.0.1:0", f"unix://{sock}"]) as relay:
            (relayed,) = relay.wait_ready()
            yield "ws://" + tcp.removeprefix("tcp://"), "ws://" + relayed.removeprefix("tcp://")


def check(summaries: list[Summary], name: str) -> None:
    path = save(name, summaries)
    print(path.read_text())
    for summary in summaries:
        assert summary.cases > 0, summary
        assert not summary.failed, (summary.line(), {c: summary.not_ok.get(c)
                                                     for c in summary.failed})


@pytest.mark.timeout(240)
async def test_autobahn_ci_selection(servers: tuple[str, str]) -> None:
    tcp, unix = servers
    summaries = [await run_against_server(tcp, CI_CASES, target="server tcp"),
                 await run_against_server(unix, CI_CASES, target="server unix (relayed)"),
                 await run_client(CI_CASES)]
    check(summaries, "ci")


@pytest.mark.autobahn_full
@full_only
@pytest.mark.timeout(3600)
async def test_autobahn_full_suite(servers: tuple[str, str]) -> None:
    tcp, unix = servers
    summaries = [await run_against_server(tcp, ["*"], RUNNER_LIMITED, target="server tcp"),
                 await run_against_server(unix, ["*"], RUNNER_LIMITED,
                                          target="server unix (relayed)"),
                 await run_client(["*"], RUNNER_LIMITED)]
    check(summaries, "full")


async def test_the_cli_message_limits(short_tmp: Path) -> None:
    """``serve --ws-max-size/--ws-max-fragments`` set the server's limits (1009 beyond);
    ``trunkline ws --max-size`` the client's."""
    from urllib.parse import quote

    import trunkline
    from tests.support.cli_helpers import run
    from trunkline.cli.exits import Exit

    sock = short_tmp / "lim.sock"
    url = f"ws+unix://{quote(str(sock), safe='')}/"
    with Service(["serve", "http-echo", "--on", f"unix://{sock}", "--ws-max-size", "2048",
                  "--ws-max-fragments", "3", "-q"]) as server:
        server.wait_ready()
        async with trunkline.websocket(url, compression=False) as ws:
            await ws.send("x" * 2048)
            assert await ws.recv() == "x" * 2048
            await ws.send("x" * 2049)
            with pytest.raises(trunkline.WebSocketClosed) as closed:
                await ws.recv()
            assert closed.value.code == 1009
        from tests.support.websocket_support import CONT, TEXT, RawPeer, frame

        async with RawPeer.open(f"unix://{sock}") as peer:
            peer.send(frame(TEXT, b"a", fin=False) + frame(CONT, b"b", fin=False)
                      + frame(CONT, b"c", fin=False) + frame(CONT, b"d"))
            assert (await peer.expect_close())[0] == 1009  # 4 frames, 3 allowed
        small = run(["ws", url, "--max-size", "100", "--wait", "5"], input=b"y" * 200 + b"\n")
        assert small.returncode == Exit.RECEIVE and b"1009" in small.stderr, small
        fine = run(["ws", url, "--max-size", "300", "--wait", "5"], input=b"y" * 200 + b"\n")
        assert fine.returncode == 0 and fine.stdout == b"y" * 200 + b"\n", fine
