"""``trunkline serve``'s HTTP server options, named as uvicorn names them where it has them.

Each option sets one ``ServerConfig`` field (defaults read from it, so a default changes in
one place); ``http_options`` adds them to the command and ``server_config(params)`` turns
the parsed values back into a ``ServerConfig``. ``--log-level`` and ``--env-file`` are here
too, with the code that applies them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from ..server.config import ServerConfig
from ..server.run import DEFAULT_CONFIG

F = TypeVar("F", bound=Callable[..., Any])

#: uvicorn's levels; "trace" is below DEBUG (uvicorn's 5): everything.
LOG_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR,
              "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG,
              "trace": 5}

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """``1048576``, ``64k``, ``10M``, ``1GiB`` (powers of 1024); ``0`` means no limit when
    ``zero_is_none``."""

    name = "BYTES"

    def __init__(self, zero_is_none: bool = False) -> None:
        self.zero_is_none = zero_is_none

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int | None:
        if value is None or isinstance(value, int):
            return None if value == 0 and self.zero_is_none else value
        match = _SIZE.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a size; write bytes, or with a unit: 64k, 10M, 1G",
                      param, ctx)
        size = int(match.group(1)) * _UNITS[(match.group(2) or "")[:1].lower()]
        if size == 0:
            if self.zero_is_none:
                return None
            self.fail("0 is not allowed here", param, ctx)
        return size


def _positive(kind: type[int] | type[float]) -> click.ParamType:  # type: ignore[type-arg]
    return (click.IntRange(min=1) if kind is int
            else click.FloatRange(min=0, min_open=True))


def http_options(command: F) -> F:
    """The HTTP server's limits, timeouts, logging and ASGI options."""
    d = DEFAULT_CONFIG
    options = [
        click.option("--limit-body", type=ByteSize(zero_is_none=True),
                     default=d.max_body_bytes or 0, show_default=True,
                     help="Largest request body (413 beyond); 0: no limit. Units: 64k, 10M."),
        click.option("--limit-request-line", type=ByteSize(), default=d.max_request_line,
                     show_default=True, help="Longest request line (414 beyond)."),
        click.option("--limit-header-size", type=ByteSize(), default=d.max_header_bytes,
                     show_default=True,
                     help="Largest header block of a request (431 beyond)."),
        click.option("--limit-header-count", type=_positive(int), default=d.max_header_count,
                     show_default=True, help="Most header fields in a request (431 beyond)."),
        click.option("--limit-concurrency", type=click.IntRange(min=0),
                     default=d.max_connections or 0, show_default=True, metavar="N",
                     help="Most open connections; one more gets 503 and is closed. 0: no "
                          "limit (uvicorn's option of this name)."),
        click.option("--limit-pipelined", type=_positive(int), default=d.max_pipelined,
                     show_default=True, metavar="N",
                     help="Parsed requests allowed to wait behind the one in flight on a "
                          "connection before reading pauses."),
        click.option("--timeout-keep-alive", type=_positive(float),
                     default=d.keepalive_timeout, show_default=True, metavar="SECONDS",
                     help="Close a keep-alive connection idle this long between requests."),
        click.option("--timeout-header", type=_positive(float), default=d.header_timeout,
                     show_default=True, metavar="SECONDS",
                     help="Close a connection whose request head has not all arrived this "
                          "long after its first byte (a trickle does not reset it)."),
        click.option("--timeout-body", type=_positive(float), default=d.body_timeout,
                     show_default=True, metavar="SECONDS",
                     help="Close a connection whose request body stops arriving for this "
                          "long (408 if no answer started; nginx's client_body_timeout)."),
        click.option("--timeout-send", type=_positive(float), default=d.send_timeout,
                     show_default=True, metavar="SECONDS",
                     help="Abort a connection whose client takes none of the output waiting "
                          "for it for this long (nginx's send_timeout)."),
        click.option("--ws-max-size", type=ByteSize(zero_is_none=True),
                     default=d.ws_max_size or 0, show_default=True,
                     help="Largest WebSocket message accepted; a bigger one closes with "
                          "1009 (uvicorn's option of this name). 0: no limit."),
        click.option("--ws-max-fragments", type=click.IntRange(min=0),
                     default=d.ws_max_fragments or 0, show_default=True, metavar="N",
                     help="Most frames one WebSocket message may come in (1009 beyond). "
                          "0: no limit."),
        click.option("--access-log/--no-access-log", default=d.access_log, show_default=True,
                     help="One line per request on stderr (logger trunkline.access, INFO), "
                          "written in batches at most 0.1 s late."),
        click.option("--log-level", type=click.Choice(list(LOG_LEVELS)), default=None,
                     help="Log level (default info; -q is warning)."),
        click.option("--root-path", default=d.root_path, metavar="PATH",
                     help="ASGI root_path, for an app mounted below a URL prefix by a proxy "
                          "(path and raw_path start with it, as uvicorn does)."),
        click.option("--proxy-headers/--no-proxy-headers", default=d.proxy_headers,
                     show_default=True,
                     help="Take the client address and scheme from X-Forwarded-For/-Proto, "
                          "sent by a peer in --forwarded-allow-ips only. Off by default (see "
                          "below)."),
        click.option("--forwarded-allow-ips", metavar="LIST",
                     envvar=["TRUNKLINE_SERVE_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"],
                     default=",".join(d.forwarded_allow_ips), show_default=True,
                     help="Comma-separated IPs, networks (10.0.0.0/8), listening socket "
                          "paths, or * (everyone), trusted with --proxy-headers. Also read "
                          "from $FORWARDED_ALLOW_IPS, as uvicorn does."),
        click.option("--lifespan", type=click.Choice(["auto", "on", "off"]),
                     default=d.lifespan, show_default=True,
                     help="ASGI lifespan: on (must work: a failed startup exits 1), auto "
                          "(skipped if the app does not speak it), off (never sent)."),
        click.option("--server-header/--no-server-header",
                     default=d.server_header is not None, show_default=True,
                     help="Send 'Server: trunkline' on responses."),
        click.option("--env-file", type=click.Path(exists=True, dir_okay=False),
                     metavar="PATH",
                     help="Load environment variables from PATH (a .env file, python-dotenv) "
                          "before the app is imported; variables already set win."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def server_config(params: dict[str, Any], base: ServerConfig = DEFAULT_CONFIG) -> ServerConfig:
    """The ``ServerConfig`` the parsed ``http_options`` ask for."""
    return replace(
        base, max_body_bytes=params["limit_body"], max_request_line=params["limit_request_line"],
        max_header_bytes=params["limit_header_size"],
        max_header_count=params["limit_header_count"],
        max_connections=params["limit_concurrency"] or None,
        max_pipelined=params["limit_pipelined"], keepalive_timeout=params["timeout_keep_alive"],
        header_timeout=params["timeout_header"], body_timeout=params["timeout_body"],
        send_timeout=params["timeout_send"], ws_max_size=params["ws_max_size"],
        ws_max_fragments=params["ws_max_fragments"] or None, access_log=params["access_log"],
        root_path=params["root_path"].rstrip("/"), proxy_headers=params["proxy_headers"],
        forwarded_allow_ips=tuple(p.strip() for p in params["forwarded_allow_ips"].split(",")
                                  if p.strip()),
        lifespan=params["lifespan"],
        server_header=base.server_header if params["server_header"] else None)


def check_forwarded(ctx: click.Context, params: dict[str, Any]) -> None:
    """``--forwarded-allow-ips`` given without ``--proxy-headers`` would do nothing: say so
    (a trust setting must never be ignored in silence). uvicorn's own variable
    ``FORWARDED_ALLOW_IPS`` alone is not an error: it may be set for other servers."""
    source = ctx.get_parameter_source("forwarded_allow_ips")
    explicit = source is click.core.ParameterSource.COMMANDLINE or (
        source is click.core.ParameterSource.ENVIRONMENT
        and "TRUNKLINE_SERVE_FORWARDED_ALLOW_IPS" in os.environ)
    if explicit and not params["proxy_headers"]:
        raise click.UsageError("--forwarded-allow-ips only matters with --proxy-headers (off "
                               "by default); add --proxy-headers")


def log_level(level: str | None, quiet: bool) -> int:
    if level is not None:
        return LOG_LEVELS[level]
    return logging.WARNING if quiet else logging.INFO


def load_env_file(path: str | None) -> None:
    """Variables from a .env file into ``os.environ`` (those already set are kept), as
    uvicorn's ``--env-file`` does with python-dotenv."""
    if path is None:
        return
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise click.UsageError("--env-file needs python-dotenv: pip install "
                               "'trunkline[dotenv]'") from None
    load_dotenv(dotenv_path=path, override=False)


ENV_HELP = """\b
Every option can also come from the environment: TRUNKLINE_SERVE_ and the option's
name in capitals with _ for -, e.g. TRUNKLINE_SERVE_LIMIT_BODY=10M,
TRUNKLINE_SERVE_ON="tcp://0.0.0.0:8000 unix:///run/app.sock" (repeatable options:
separated by spaces), TRUNKLINE_SERVE_PROXY_HEADERS=1. The command line wins over the
environment, the environment over the defaults. --env-file is for the app: it is
loaded after the options are read, so it does not set trunkline's own (as uvicorn)."""

__all__ = ["ENV_HELP", "LOG_LEVELS", "ByteSize", "check_forwarded", "http_options",
           "load_env_file", "log_level", "server_config"]
