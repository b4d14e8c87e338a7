"""``hello``: plain text, the smallest useful app (and the benchmark's workload)."""

from __future__ import annotations

from ..server.cycle import Receive, Scope, Send

BODY = b"Hello, world!\n"
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                      (b"content-length", str(len(BODY)).encode())]}
_BODY = {"type": "http.response.body", "body": BODY}


async def hello_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    await send(_START)
    await send(_BODY)
