"""Who a local server admits (issue 10.6, issue 13.7), with a real second user.

- An abstract name has no file mode, so by default it admits only the server's own uid
  (SO_PEERCRED at accept), like the 0600 default of path sockets; ``allow_uids/allow_gids``
  widen it and ``allow_any_user`` opens it. A refused peer leaves a (rate-limited) warning in
  the server's log, and ``trunkline connect``/``call`` tell their user what happened.
- An abstract unixgram name has no peer credentials to check: admit lists are refused there
  and any local user in the network namespace may send to it (documented).
- ``--allow-uid``/``--allow-gid``/``--allow-any-user`` where no address can apply them are
  usage errors (exit 2); where only some can, the others get a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

import trunkline
from tests.support.cli_helpers import Service, run
from tests.support.second_user import UID, needs_root, stdlib_as_nobody, trunkline_as_nobody
from trunkline import ListenOptions, Stream
from trunkline.address import Identity
from trunkline.aio.datagram_server import serve_datagram
from trunkline.errors import UnsupportedError

pytestmark = [needs_root, pytest.mark.timeout(60)]
BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

RAW_STREAM_CLIENT = """\
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(b"\\0" + sys.argv[1].encode())
try:
    s.sendall(b"ping")
    reply = s.recv(100) or b"<eof>"
except (ConnectionResetError, BrokenPipeError):
    reply = b"<reset>"
print(reply.decode())
"""

RAW_DGRAM_CLIENT = """\
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("")  # autobind: an abstract name the reply can reach
s.settimeout(10)
s.connect(b"\\0" + sys.argv[1].encode())
s.send(b"ping")
print(s.recv(100).decode())
"""


def _name(what: str) -> str:
    return f"tl-admit-{what}-{os.urandom(4).hex()}"


async def _as_nobody(argv: Sequence[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def echo(stream: Stream) -> None:
    async for chunk in stream:
        await stream.send(chunk)


# --------------------------------------------------------------------------- library


@BOTH_LOOPS
async def test_abstract_name_admits_only_the_servers_uid_by_default(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "trunkline.transport")
    name = _name("default")
    async with await trunkline.serve(echo, f"unix:@{name}"):
        assert await _as_nobody(stdlib_as_nobody(RAW_STREAM_CLIENT, name)) in (
            "<eof>", "<reset>")
        async with await trunkline.connect(f"unix:@{name}") as stream:  # root: our own uid
            await stream.send(b"mine")
            assert await stream.readexactly(4) == b"mine"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert f"uid {UID}" in refusals[0] and f"unix:@{name}" in refusals[0]


@BOTH_LOOPS
@pytest.mark.parametrize("options", [ListenOptions(allow_any_user=True),
                                     ListenOptions(allow_uids=frozenset({UID}))],
                         ids=["allow_any_user", "allow_uids"])
async def test_abstract_name_opened_or_widened(options: ListenOptions) -> None:
    name = _name("open")
    async with await trunkline.serve(echo, f"unix:@{name}", options=options):
        assert await _as_nobody(stdlib_as_nobody(RAW_STREAM_CLIENT, name)) == "ping"


@BOTH_LOOPS
async def test_refusals_are_logged_at_most_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "trunkline.transport")
    name = _name("flood")
    async with await trunkline.serve(echo, f"unix:@{name}"):
        for _ in range(5):
            assert await _as_nobody(stdlib_as_nobody(RAW_STREAM_CLIENT, name)) in (
                "<eof>", "<reset>")
    assert sum("refused" in r.getMessage() for r in caplog.records) == 1


def test_allow_any_user_with_admit_lists_is_refused() -> None:
    with pytest.raises(UnsupportedError, match="allow_any_user"):
        ListenOptions(allow_any_user=True, allow_uids=frozenset({0}))


@BOTH_LOOPS
async def test_abstract_unixgram_is_open_to_every_local_user() -> None:
    # No SO_PEERCRED on datagram sockets: nothing checks who sends. Documented; admit lists
    # are refused rather than silently ignored.
    name = _name("gram")

    async def echo_datagram(data: bytes, source: Identity) -> bytes:
        return data

    listener = await serve_datagram(f"unixgram:@{name}", echo_datagram)
    try:
        assert await _as_nobody(stdlib_as_nobody(RAW_DGRAM_CLIENT, name)) == "ping"
    finally:
        listener.close()
        await listener.wait_closed()
    with pytest.raises(UnsupportedError, match="peer credentials"):
        await serve_datagram(f"unixgram:@{name}", echo_datagram,
                                       ListenOptions(allow_uids=frozenset({UID})))


# --------------------------------------------------------------------------- commands


def test_connect_and_call_say_the_server_refused_them() -> None:
    name = _name("cli")
    with Service(["serve", "echo", "--on", f"unix:@{name}"]) as server:
        server.wait_ready()
        done = subprocess.run(trunkline_as_nobody("connect", f"unix:@{name}"), input=b"hi\n",
                              capture_output=True, timeout=30, check=False)
        err = done.stderr.decode()
        assert done.returncode == 7, err  # the exit table: could not connect (not admitted)
        assert "refused this peer" in err and f"uid {UID}" in err, err
        assert done.stdout == b""

        done = subprocess.run(trunkline_as_nobody("call", f"http+unix://%40{name}/"),
                              capture_output=True, timeout=30, check=False)
        err = done.stderr.decode()
        assert done.returncode != 0
        assert "refused this peer" in err and f"uid {UID}" in err, err

        line = server.wait_for_line("refused")
        assert f"uid {UID}" in line.string and "--allow-any-user" in line.string
        assert server.stop() == 0


def test_allow_any_user_flag_opens_the_name() -> None:
    name = _name("cli-open")
    with Service(["serve", "echo", "--on", f"unix:@{name}", "--allow-any-user"]) as server:
        server.wait_ready()
        done = subprocess.run(trunkline_as_nobody("connect", f"unix:@{name}"), input=b"hi\n",
                              capture_output=True, timeout=30, check=False)
        assert (done.returncode, done.stdout) == (0, b"hi\n"), done.stderr
        assert server.stop() == 0


def test_a_refused_fifo_writer_does_not_cost_admitted_clients(short_tmp: Path) -> None:
    os.chmod(short_tmp, 0o755)  # nobody may reach the FIFO (mode 0622) and announce itself
    url = f"fifo://{short_tmp}/rv"
    with Service(["serve", "echo", "--on", url, "--mode", "0622", "--allow-uid", "0"]
                 ) as server:
        server.wait_ready()
        refused = subprocess.Popen(trunkline_as_nobody("connect", url), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        admitted = run(["connect", url], input=b"root\n", timeout=30)
        out, err = refused.communicate(b"nobody\n", timeout=30)
        assert (admitted.returncode, admitted.stdout) == (0, b"root\n"), admitted.stderr
        assert refused.returncode == 7 and out == b"", err  # could not connect (not admitted)
        assert b"not admitted" in err, err
        line = server.wait_for_line("refused")
        assert f"uid {UID}" in line.string
        assert server.stop() == 0


@pytest.mark.parametrize(("args", "says"), [
    (["serve", "echo", "--on", "tcp://127.0.0.1:0", "--allow-uid", "0"], "unix"),
    (["serve", "echo", "--on", "udp://127.0.0.1:0", "--allow-gid", "0"], "fifo"),
    (["serve", "echo", "--on", "unixgram:@x", "--allow-uid", "0"], "peer credentials"),
    (["serve", "echo", "--on", "unix:@x", "--allow-uid", "0", "--allow-any-user"],
     "--allow-any-user"),
    (["serve", "echo", "--on", "unix:///tmp/x.sock", "--allow-any-user"], "--mode"),
    (["relay", "tcp://127.0.0.1:0", "unix:@x", "--allow-uid", "0"], "unix"),
    (["relay", "tcp://127.0.0.1:0", "unix:@x", "--allow-any-user"], "abstract"),
], ids=["tcp-uid", "udp-gid", "unixgram", "both", "any-user-on-path", "relay-tcp",
        "relay-any-user"])
def test_admit_options_nothing_can_apply_are_usage_errors(args: list[str], says: str) -> None:
    done = run(args, timeout=30)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert says in err and "Traceback" not in err, err


def test_admit_options_apply_where_they_can_and_warn_for_the_rest() -> None:
    name = _name("mixed")
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--on", f"unix:@{name}",
                  "--allow-uid", str(UID)]) as server:
        tcp_url, _ = server.wait_ready(2)
        warning = next(line for line in server.stderr if "warning" in line)
        assert "--allow-uid" in warning and "tcp://127.0.0.1:" in warning, server.stderr
        done = subprocess.run(trunkline_as_nobody("connect", f"unix:@{name}"), input=b"hi\n",
                              capture_output=True, timeout=30, check=False)
        assert (done.returncode, done.stdout) == (0, b"hi\n"), done.stderr
        assert server.stop() == 0
    assert tcp_url.startswith("tcp://")
