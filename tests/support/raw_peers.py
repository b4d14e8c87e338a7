"""Scripted TCP peers on real loopback sockets, for the misbehaviours a real server shows
rarely on cue: a reset, a body cut short, a body that trickles, an early 413 while the client
is still uploading. Each runs its script per accepted connection in a thread; the listener
binds port 0 and is closed (threads joined) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

Script = Callable[[socket.socket], None]


class ScriptedServer:
    """``with ScriptedServer(script) as server:`` then talk to ``server.url``."""

    def __init__(self, script: Script, *, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.hostport = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"tcp://{self.hostport}"
        self.http = f"http://{self.hostport}"
        self.script = script
        self.connections = 0
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        try:
            self.script(conn)
        except OSError:
            pass  # the client went away mid-script: that is the client's business
        except BaseException as exc:  # noqa: BLE001  (reported by the test through .errors)
            self.errors.append(exc)
        finally:
            conn.close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.listener.close()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)


def reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def read_head(conn: socket.socket) -> bytes:
    """Read up to the end of an HTTP request head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def drain(conn: socket.socket) -> None:
    """Read until the client closes (or the socket times out)."""
    while conn.recv(65536):
        pass
