"""``echo``: answers every request with what it saw, as JSON.

    {"method": "POST", "path": "/a b", "raw_path": "/a%20b", "query": "x=1",
     "http_version": "1.1", "scheme": "http", "headers": [["host", "..."], ...],
     "body": "...", "body_encoding": "utf-8" | "base64",
     "client": [...], "server": [...], "transport": {"kind": "unix", ...}}

Header values and the body are decoded as UTF-8 when they are (Latin-1 for headers
otherwise; base64 for a body that is not text, said by ``body_encoding``).
A WebSocket gets every message back as sent (``websocket_echo``).
"""

from __future__ import annotations

import base64
from typing import Any

from ..server.cycle import Receive, Scope, Send
from ._respond import read_body, respond_json
from .websocket_echo import websocket_echo


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await websocket_echo(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if body is None:
        return
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    reply: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": _text(scope.get("raw_path") or scope["path"].encode()),
        "query": _text(scope["query_string"]),
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "headers": [[_text(k), _text(v)] for k, v in scope["headers"]],
        "body": text,
        "body_encoding": encoding,
        "client": scope.get("client"),
        "server": scope.get("server"),
        "transport": scope.get("extensions", {}).get("trunkline.transport"),
    }
    await respond_json(send, 200, reply)
