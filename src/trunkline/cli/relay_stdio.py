"""``trunkline relay - TARGET`` and ``trunkline relay LISTEN -``: stdin/stdout as one side.

``- TARGET`` dials TARGET once and relays it with stdin/stdout (what ``trunkline connect``
does, and ``socat - TCP:...``). ``LISTEN -`` accepts one client, relays it with
stdin/stdout and ends with that connection, as socat does without ``fork``: clients that
come while it is busy are closed at once (socat is not listening any more by then; here
they are refused by a close rather than by the kernel).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .. import _loop
from ..address import format_address
from ..aio.servers import connect, serve
from ..aio.stream import Stream
from ..errors import TrunklineError
from ..relay.stream import OnData
from ..transport import ConnectOptions, ListenOptions
from ._support import ready, report, restore_blocking, saved_blocking
from .connect import pump_stdio
from .exits import Exit

if TYPE_CHECKING:
    from .relay import Side

log = logging.getLogger("trunkline.relay")


def run_stdio_relay(listen: Side, target: Side, options: ListenOptions,
                    connect_options: ConnectOptions, on_data: OnData | None) -> int:
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    state = saved_blocking()
    other = target if listen.stdio else listen
    assert other.address is not None
    try:
        if listen.stdio:
            _loop.run(_dial(target, connect_options, on_data))
        else:
            _loop.run(_accept_one(listen, options, on_data))
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except (TrunklineError, OSError) as exc:
        restore_blocking(state)
        report("relay", exc, address=other.address, listening=not listen.stdio,
               timeout_hint="raise --timeout")
    finally:
        restore_blocking(state)
    return Exit.OK


async def _dial(target: Side, options: ConnectOptions, on_data: OnData | None) -> None:
    assert target.address is not None
    stream = await connect(target.address, options=options)
    await pump_stdio(stream, format_address(target.address), None, on_data)


def _flip(on_data: OnData | None) -> OnData | None:
    """For ``LISTEN -`` the client is the LISTEN side: its bytes are ``>`` (up)."""
    if on_data is None:
        return None
    inner = on_data

    def flipped(number: int, up: bool, data: memoryview, offset: int) -> None:
        inner(number, not up, data, offset)

    return flipped


async def _accept_one(listen: Side, options: ListenOptions, on_data: OnData | None) -> None:
    assert listen.address is not None
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    busy = False

    async def handler(stream: Stream) -> None:
        nonlocal busy
        if busy:
            log.warning("a second client (%s) closed: relaying one client to stdin/stdout",
                        stream.peer)
            stream.close()
            return
        busy = True
        for listener in server.listeners:  # stop accepting: one client only
            listener.close()
        try:
            await pump_stdio(stream, str(stream.peer), None, _flip(on_data))
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
            raise
        if not done.done():
            done.set_result(None)

    server = await serve(handler, listen.address, options=options)
    try:
        ready(server.urls[0], " (relaying one client to stdin/stdout)")
        await done
    finally:
        await server.aclose(1.0)
