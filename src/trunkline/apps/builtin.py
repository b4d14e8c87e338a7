"""The built-in apps by the names ``load_app`` and ``trunkline serve`` know them.

The library's loader (``server.loader.builtin_apps``) imports this table only when an app
spec is looked up, so ``import trunkline`` loads no app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import AppLoadError
from ..server.cycle import ASGIApp


def _static(args: Sequence[str]) -> ASGIApp:
    from .static import StaticApp

    if len(args) != 1:
        raise AppLoadError("static takes one directory, e.g. 'static ./public'")
    try:
        return StaticApp(args[0])
    except NotADirectoryError as exc:
        raise AppLoadError(str(exc)) from exc


def _no_args(name: str, make: Callable[[], ASGIApp]) -> Callable[[Sequence[str]], ASGIApp]:
    def build(args: Sequence[str]) -> ASGIApp:
        if args:
            raise AppLoadError(f"{name} takes no arguments (got {' '.join(args)})")
        return make()
    return build


def _hello() -> ASGIApp:
    from .hello import hello_app
    return hello_app


def _echo() -> ASGIApp:
    from .echo import echo_app
    return echo_app


def _chat() -> ASGIApp:
    from .chat import chat_app
    return chat_app()


def _demo() -> ASGIApp:
    from .demo import demo_app
    return demo_app()


#: name -> (usage, summary, builder from the app's arguments)
BUILTIN_APPS: dict[str, tuple[str, str, Callable[[Sequence[str]], ASGIApp]]] = {
    "hello": ("hello", "plain-text hello world", _no_args("hello", _hello)),
    "echo": ("echo", "the request back as JSON; WebSocket messages back as sent",
             _no_args("echo", _echo)),
    "static": ("static DIR", "the files under DIR (GET, HEAD)", _static),
    "demo": ("demo", "the tour's users API (GET/POST /users, GET /users/{id})",
             _no_args("demo", _demo)),
    "chat": ("chat", "a WebSocket broadcast room (every message to every member)",
             _no_args("chat", _chat)),
}


__all__ = ["BUILTIN_APPS"]
