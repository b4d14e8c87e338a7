"""The HTTP apps for ``trunkline serve``: built-ins and ``module:app`` specs.

``trunkline serve`` keeps a registry of servable apps; this module fills in the HTTP ones
without the command knowing about HTTP::

    register_http_apps(register_app, SPEC_LOADERS, ServeApp)

registers ``hello``, ``http-echo`` (HTTP only: plain ``echo`` is ``echo_service``, which
sniffs each connection for HTTP or bytes), ``static DIR`` and ``demo``, and teaches the
command ``module:app`` specs (uvicorn's form, the current directory importable). Each
starts an ``AppServer`` with the command's ``ListenOptions`` (mode, admit lists, TLS
context) and the default ``ServerConfig``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..address import Address
from ..host import Hook
from ..server.config import ServerConfig
from ..server.loader import is_import_spec, load_app
from ..server.run import DEFAULT_CONFIG, AppServer
from ..trace.events import Tracer
from ..transport.base import ListenOptions
from .builtin import BUILTIN_APPS

#: CLI name -> built-in app name (``echo`` on the command line is ``EchoServer``: HTTP or bytes)
CLI_NAMES = {"hello": "hello", "http-echo": "echo", "static": "static", "demo": "demo",
             "chat": "chat"}


def starter(spec: str, config: ServerConfig = DEFAULT_CONFIG, *, app_dir: str | None = None,
            factory: bool = False) -> Callable[..., Any]:
    """``start(args, addresses, options, tracer=None, config=None, hooks=())`` for the
    command (``hooks``: the host's, e.g. --name registration): load
    the app, bind, serve (traced when ``trunkline serve --trace`` passes a tracer; with the
    command's limits and timeouts when it passes a config)."""

    async def start(args: tuple[str, ...], addresses: Sequence[Address],
                    options: ListenOptions, *, tracer: Tracer | None = None,
                    config: ServerConfig | None = None, hooks: Sequence[Hook] = ()
                    ) -> AppServer:
        app = load_app(spec, args, app_dir=app_dir, factory=factory)
        server_config = replace(config or default, listen=options)
        server = AppServer(app, *addresses, config=server_config, tracer=tracer, hooks=hooks)
        await server.start()
        return server

    default = config
    return start


def register_http_apps(register_app: Callable[[Any], None], spec_loaders: list[Any],
                       serve_app_type: Callable[..., Any],
                       config: ServerConfig = DEFAULT_CONFIG) -> None:
    """Register the HTTP apps with ``trunkline serve`` (its ``register_app``,
    ``SPEC_LOADERS`` and ``ServeApp``)."""
    for cli_name, name in CLI_NAMES.items():
        usage, summary, _ = BUILTIN_APPS[name]
        usage = usage.replace(name, cli_name, 1)
        register_app(serve_app_type(cli_name, usage, f"HTTP: {summary}",
                                    starter(name, config)))

    def from_spec(spec: str, app_dir: str | None, factory: bool) -> Any:
        if not is_import_spec(spec):
            return None
        return serve_app_type(spec, "module:app", "an ASGI app imported like uvicorn does",
                              starter(spec, config, app_dir=app_dir, factory=factory))

    spec_loaders.append(from_spec)


__all__ = ["CLI_NAMES", "register_http_apps", "starter"]
