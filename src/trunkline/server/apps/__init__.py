"""Built-in ASGI apps: ``hello``, ``echo``, ``static DIR`` and ``demo`` (the tour's users API);
``chat`` (a WebSocket broadcast room).

Each is a plain ASGI 3 callable, so any ASGI server can run them and ours runs any other.
"""

from __future__ import annotations

from .chat import ChatRoom, chat_app
from .demo import UsersApp, demo_app
from .echo import echo_app
from .hello import hello_app
from .static import StaticApp

__all__ = ["StaticApp", "UsersApp", "demo_app", "echo_app", "hello_app"]
__all__ += ["ChatRoom", "chat_app"]
