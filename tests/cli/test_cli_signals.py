"""Stopping a server process with signals, for every server class on the service host:
``trunkline serve module:app`` (AppServer), ``trunkline serve echo`` (EchoServer),
``trunkline relay`` (Relay) and a script around ``trunkline.serve`` (Server).

SIGTERM with a conversation in flight: new connections are refused, the conversation goes on
to its end, the process exits 0. A second SIGTERM aborts the conversation at once and the
process exits 0. Readiness and each step come from the process's own stderr lines (the
host logs "stopping", "waiting ... in flight" and "aborting"), never from sleeps.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_helpers import Service

BOUND = 15  # seconds for any one socket operation

APP = '''
async def app(scope, receive, send):
    """Streams each request body chunk back as it comes; "done" after the body's end."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            await send({"type": "http.response.body", "body": message["body"],
                        "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b"done"})
'''

SERVE = '''
import logging, sys
import trunkline
from trunkline._loop import run
from trunkline.apps.echo_service import echo_bytes

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

async def main():
    server = await trunkline.serve(echo_bytes, sys.argv[1], shutdown_timeout=600)
    remove = server.install_signal_handlers()
    sys.stderr.write(f"listening on {server.urls[0]}\\n")
    sys.stderr.flush()
    await server.serve_forever()
    remove()

run(main())
'''


class Conversation:
    """A conversation in flight over a blocking socket: a byte echo, or (``http``) a streamed
    request whose app echoes each body chunk."""

    def __init__(self, url: str, http: bool) -> None:
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=BOUND)
        self.http = http
        self.received = b""
        if http:
            self.sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
        self.exchange(b"ping")

    def _until(self, token: bytes) -> None:
        while token not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before {token!r} came back: {self.received!r}"
            self.received += chunk

    def _rest(self) -> bytes:
        rest = b""
        with contextlib.suppress(ConnectionError):
            while chunk := self.sock.recv(65536):
                rest += chunk
        return rest

    def exchange(self, token: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(token), token) if self.http else token)
        self._until(token)

    def end(self) -> None:
        """The client ends it; the server answers the end, then closes (it is stopping)."""
        if self.http:
            self.sock.sendall(b"0\r\n\r\n")
            assert self._rest().endswith(b"done\r\n0\r\n\r\n")
        else:
            self.sock.sendall(b"late")
            self.sock.shutdown(socket.SHUT_WR)
            assert self._rest() == b"late"
        self.sock.close()

    def cut(self) -> None:
        """The server cut it without finishing."""
        assert b"done" not in self._rest()
        self.sock.close()


def refused(url: str) -> bool:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=BOUND).close()
    except ConnectionRefusedError:
        return True
    return False


@contextlib.contextmanager
def running(kind: str, tmp: Path) -> Iterator[tuple[Service, str]]:
    """The server of ``kind`` on tcp://127.0.0.1:0 with a grace far longer than any test."""
    with contextlib.ExitStack() as stack:
        if kind == "app":
            (tmp / "tl_signals_app.py").write_text(APP)
            service = Service(["serve", "tl_signals_app:app", "--app-dir", str(tmp), "--on",
                               "tcp://127.0.0.1:0", "--grace", "600"])
        elif kind == "echo":
            service = Service(["serve", "echo", "--on", "tcp://127.0.0.1:0", "--grace", "600"])
        elif kind == "relay":
            target = stack.enter_context(Service(["serve", "echo", "--on",
                                                  f"unix://{tmp}/target.sock"]))
            (target_url,) = target.wait_ready()
            service = Service(["relay", "tcp://127.0.0.1:0", target_url, "--grace", "600"])
        else:
            (tmp / "serve.py").write_text(SERVE)
            service = Service(["tcp://127.0.0.1:0"],
                              command=[sys.executable, str(tmp / "serve.py")])
        stack.enter_context(service)
        (url,) = service.wait_ready()
        yield service, url


KINDS = ["app", "echo", "relay", "serve"]


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_finishes_work_in_flight_then_exits_0(kind: str, short_tmp: Path) -> None:
    with running(kind, short_tmp) as (service, url):
        work = Conversation(url, http=kind == "app")
        service.proc.send_signal(signal.SIGTERM)
        service.wait_for_line(r"stopping \(SIGTERM\)")
        # not accepting
        service.wait_for_line(r"waiting for .* \(up to 600 s\), send SIGTERM again")
        assert refused(url)
        work.exchange(b"more")  # still served while the grace lasts
        work.end()
        assert service.proc.wait(timeout=BOUND) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_signal_aborts_at_once(kind: str, short_tmp: Path) -> None:
    with running(kind, short_tmp) as (service, url):
        work = Conversation(url, http=kind == "app")
        service.proc.send_signal(signal.SIGTERM)
        service.wait_for_line(r"waiting for .* \(up to 600 s\), send SIGTERM again")
        service.proc.send_signal(signal.SIGINT)
        service.wait_for_line(r"aborting \(SIGINT\)")
        work.cut()  # long before the 600 s grace
        assert service.proc.wait(timeout=BOUND) == 0
