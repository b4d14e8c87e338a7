"""``trunkline relay``: a subprocess relay between stream kinds, against ``serve echo`` or a
test peer; half-close both ways, concurrent connections, byte counts in its log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
from pathlib import Path

import trunkline
from tests.support.cli_helpers import Service, run


def _tcp(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data``, half-close, read until the peer closes."""
    with socket.create_connection(address, timeout=15) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def test_tcp_to_unix_with_concurrent_connections(short_tmp: Path) -> None:
    target = f"unix://{short_tmp / 'echo.sock'}"
    with Service(["serve", "echo", "--on", target]) as echo:
        echo.wait_ready()
        with Service(["relay", "tcp://127.0.0.1:0", target]) as relay:
            (listen,) = relay.wait_ready()
            address = _tcp(listen)
            payloads = [os.urandom(200_000 + i * 1000) for i in range(8)]
            results: list[bytes | None] = [None] * len(payloads)

            def client(i: int) -> None:
                results[i] = _exchange(address, payloads[i])

            threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert results == payloads  # half-close went through: the echo ended each reply

            logged = [relay.wait_for_line(r"closed: .*, (\d+) bytes up, (\d+) bytes down")
                      for _ in payloads]
            counts = sorted((int(m.group(1)), int(m.group(2))) for m in logged)
            assert counts == sorted((len(p), len(p)) for p in payloads)
            assert relay.stop() == 0
        assert echo.stop() == 0
    assert list(short_tmp.iterdir()) == []


def test_half_close_from_the_target_side(short_tmp: Path) -> None:
    """The target sends a reply and half-closes; the client still sends after reading EOF,
    and the target receives it: EOF crossed the relay without closing the other way."""
    path = str(short_tmp / "peer.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    listener.settimeout(15)
    received: list[bytes] = []

    def peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(15)
            conn.sendall(b"greeting")
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            received.append(b"".join(chunks))

    thread = threading.Thread(target=peer)
    thread.start()
    try:
        with Service(["relay", "tcp://127.0.0.1:0", f"unix://{path}"]) as relay:
            (listen,) = relay.wait_ready()
            with socket.create_connection(_tcp(listen), timeout=15) as s:
                got = b""
                while chunk := s.recv(65536):  # until the target's EOF arrives
                    got += chunk
                assert got == b"greeting"
                s.sendall(b"after your EOF")
                s.shutdown(socket.SHUT_WR)
                assert s.recv(1) == b""  # the relay closes once both directions ended
            thread.join(15)
            assert received == [b"after your EOF"]
            m = relay.wait_for_line(r"(\d+) bytes up, (\d+) bytes down")
            assert (m.group(1), m.group(2)) == ("14", "8")
            assert relay.stop() == 0
    finally:
        listener.close()
        thread.join(15)


def test_fifo_to_tcp(short_tmp: Path) -> None:
    fifo = f"fifo://{short_tmp / 'relay.fifo'}"
    with Service(["serve", "echo", "--on", "tcp://127.0.0.1:0"]) as echo:
        (target,) = echo.wait_ready()
        with Service(["relay", fifo, target]) as relay:
            assert relay.wait_ready() == [fifo]

            async def talk(data: bytes) -> bytes:
                stream = await trunkline.connect(fifo)
                async with stream:
                    stream.write(data)
                    stream.write_eof()
                    out = b""
                    while chunk := await stream.read():
                        out += chunk
                    return out

            async def main() -> list[bytes]:
                return await asyncio.gather(*(talk(bytes([i]) * 70_000) for i in range(4)))

            assert asyncio.run(asyncio.wait_for(main(), 30)) == [bytes([i]) * 70_000
                                                                for i in range(4)]
            m = relay.wait_for_line(r"(\d+) bytes up, (\d+) bytes down")
            assert m.group(1) == m.group(2) == "70000"
            assert relay.stop() == 0
        assert echo.stop() == 0
    assert list(short_tmp.iterdir()) == []


def test_unreachable_target_closes_the_client_and_logs(short_tmp: Path) -> None:
    missing = f"unix://{short_tmp / 'nobody.sock'}"
    with Service(["relay", "tcp://127.0.0.1:0", missing]) as relay:
        (listen,) = relay.wait_ready()
        with (socket.create_connection(_tcp(listen), timeout=15) as s,
              contextlib.suppress(ConnectionResetError)):  # aborted: also a clear "no"
            assert s.recv(1) == b""
        relay.wait_for_line(re.escape(f"cannot reach {missing}"))
        assert relay.stop() == 0


def test_datagram_addresses_are_refused() -> None:
    done = run(["relay", "udp://127.0.0.1:0", "tcp://127.0.0.1:1"])
    assert done.returncode == 3
    assert "datagram address" in done.stderr.decode()


async def test_library_relay_counts_and_closes(short_tmp: Path) -> None:
    """``start_relay`` in-process: a bulk transfer larger than every buffer, read slowly at
    first (backpressure), arrives intact; the stats add up; ``aclose`` leaves nothing."""
    from trunkline.relay import start_relay
    from trunkline.tour.echo import echo_stream

    server = await trunkline.serve(echo_stream, f"unix://{short_tmp / 'e.sock'}")
    reports = []
    closed = asyncio.Event()

    def on_close(report: object) -> None:
        reports.append(report)
        closed.set()

    relay = await start_relay("tcp://127.0.0.1:0", server.addresses[0], on_close=on_close)
    data = os.urandom(8 << 20)
    stream = await trunkline.connect(relay.url)
    writer = asyncio.ensure_future(stream.send(data))
    await asyncio.sleep(0)  # the echo fills the buffers before we start reading
    got = bytearray()
    async with asyncio.timeout(30):
        while len(got) < len(data):
            got += await stream.read(1 << 16)
        await writer
        stream.write_eof()
        assert await stream.read() == b""
    assert bytes(got) == data
    await stream.aclose()
    await asyncio.wait_for(closed.wait(), 10)
    assert (reports[0].bytes_up, reports[0].bytes_down) == (len(data), len(data))
    assert relay.stats.bytes_up == relay.stats.bytes_down == len(data)
    assert relay.stats.accepted == 1 and relay.stats.active == 0
    await relay.aclose()
    await server.aclose()
    assert list(short_tmp.iterdir()) == []
