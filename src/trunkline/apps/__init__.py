"""The tool side of serving: what ``trunkline serve`` and the tour run, not the library.

- Built-in ASGI apps: ``hello``, ``echo``, ``static DIR`` and ``demo`` (the tour's users
  API); ``chat`` (a WebSocket broadcast room). Each is a plain ASGI 3 callable, so any ASGI
  server can run them and ours runs any other. ``builtin`` names them for ``load_app``.
- ``echo_service``: ``trunkline serve echo``, bytes or datagrams back as sent, HTTP for a
  connection whose first bytes are an HTTP request line (``sniff``).
- ``cli_apps``: the HTTP apps as ``trunkline serve`` lists and starts them.

The library never imports this package at module level (tests/test_layers.py).
"""

from __future__ import annotations

from .chat import ChatRoom, chat_app
from .demo import UsersApp, demo_app
from .echo import echo_app
from .hello import hello_app
from .static import StaticApp

__all__ = ["StaticApp", "UsersApp", "demo_app", "echo_app", "hello_app"]
__all__ += ["ChatRoom", "chat_app"]
