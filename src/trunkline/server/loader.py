"""Find the ASGI app an app spec names: a built-in, or ``module:attribute`` like uvicorn.

    load_app("hello")                    # built-ins: hello, echo, demo, static DIR
    load_app("static ./public")          # or load_app("static", ["./public"])
    load_app("myproject.main:app")       # the current directory is importable, like uvicorn
    load_app("main:create_app", factory=True, app_dir="src")
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import AppLoadError
from .cycle import ASGIApp


def builtin_apps() -> dict[str, tuple[str, str, Callable[[Sequence[str]], ASGIApp]]]:
    """name -> (usage, summary, builder from the app's arguments). The table lives with the
    apps (the tool side, ``trunkline.apps.builtin``) and is imported on first use only."""
    from ..apps.builtin import BUILTIN_APPS

    return BUILTIN_APPS


def is_import_spec(spec: str) -> bool:
    module, sep, attr = spec.partition(":")
    return bool(sep and module and attr and " " not in spec)


def load_app(spec: str, args: Sequence[str] = (), *, app_dir: str | None = None,
             factory: bool = False) -> ASGIApp:
    """The ASGI app for ``spec``: a built-in name (its arguments in ``args`` or after the
    name, shell-quoted) or ``module.path:attribute`` (``factory``: call it to get the app).
    Raises ``AppLoadError`` with what to fix."""
    words = shlex.split(spec) if " " in spec.strip() else [spec.strip()]
    if not words:
        raise AppLoadError("empty app spec; name a built-in app (hello, echo, static DIR, "
                           "demo) or module:app")
    name, rest = words[0], [*words[1:], *args]
    builtins = builtin_apps()
    if name in builtins:
        return builtins[name][2](rest)
    if is_import_spec(name):
        if rest:
            raise AppLoadError(f"{name} is an import spec and takes no arguments")
        return import_app(name, app_dir=app_dir, factory=factory)
    raise AppLoadError(f"unknown app {spec!r}: use one of {', '.join(builtins)} or "
                       "'module:attribute' (e.g. 'main:app')")


def import_app(spec: str, *, app_dir: str | None = None, factory: bool = False) -> ASGIApp:
    module_name, _, attr_path = spec.partition(":")
    directory = os.path.abspath(app_dir if app_dir is not None else os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(f"cannot import module {module_name!r} (looked in "
                               f"{directory} and sys.path); check the name or pass "
                               "--app-dir") from exc
        raise  # the module exists but an import inside it failed: show the real error
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr_path!r}") \
                from exc
    if factory:
        if not callable(obj):
            raise AppLoadError(f"{spec} is not callable, so it cannot be an app factory")
        obj = obj()
    if not callable(obj):
        raise AppLoadError(f"{spec} is {type(obj).__name__}, not an ASGI app (a callable "
                           "taking scope, receive, send)")
    return obj  # type: ignore[no-any-return]


__all__ = ["AppLoadError", "builtin_apps", "import_app", "is_import_spec", "load_app"]
