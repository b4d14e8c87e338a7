"""Socket paths and abstract names with bytes that are not UTF-8, end to end.

Paths are bytes to the kernel; Python spells a byte that is not UTF-8 as a surrogate escape
(os.fsdecode: 0xFF is U+DCFF), and HTTP URLs percent-encode it (%FF). Every command must
reach such a socket, whichever spelling it was given, and print it without a codec error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import trunkline
from tests.support.cli_helpers import Service, run
from trunkline.address import UnixAddress, format_address


def _quoted(path: str) -> str:
    """``path`` as the host of an http+unix URL, byte by byte."""
    return "".join(f"%{b:02X}" for b in os.fsencode(path))


def test_commands_reach_a_path_with_a_non_utf8_byte(short_tmp: Path) -> None:
    path = os.fsdecode(os.fsencode(str(short_tmp)) + b"/\xff.sock")
    with Service(["serve", "echo", "--on", f"unix://{path}"]) as server:
        [url] = server.wait_ready()
        assert "\\udcff" in url or "\ufffd" in url  # printed, not a codec error
        assert os.path.exists(os.fsencode(path))

        done = run(["call", f"http+unix://{_quoted(path)}/x?q=1"])
        assert done.returncode == 0, done.stderr
        echo = json.loads(done.stdout)  # JSON escapes the byte (\udcff): still valid JSON
        assert echo["path"] == "/x"
        assert path in json.dumps(echo, ensure_ascii=False)

        for spelling in (_quoted(path), path.replace("/", "%2F")):  # %FF, or the raw byte
            done = run(["ws", f"ws+unix://{spelling}/"], input=b"hello\n")
            assert done.returncode == 0, done.stderr
            assert done.stdout == b"hello\n"

        done = run(["connect", f"unix://{path}"], input=b"raw bytes\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"raw bytes\n"
        assert server.stop() == 0
    assert not os.path.exists(os.fsencode(path))


@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])
async def test_library_serves_and_reaches_a_non_utf8_abstract_name() -> None:
    name = f"tl-\udcff-{os.urandom(4).hex()}"
    address = UnixAddress(name, abstract=True)
    assert address.sockaddr == b"\0tl-\xff" + name[4:].encode()

    async def echo(stream: trunkline.Stream) -> None:
        async for chunk in stream:
            await stream.send(chunk)

    server = await trunkline.serve(echo, address)
    try:
        stream = await trunkline.connect(format_address(address))
        await stream.send(b"ping")
        assert await stream.read() == b"ping"
        stream.close()
    finally:
        server.close()
        await server.wait_closed()
