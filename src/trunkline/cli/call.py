"""``trunkline call [METHOD] URL``: one HTTP request, curl-like, over any transport.

This module is the command line: its options, their checks (usage errors exit 2, a bad URL
3), and the exit. What is sent comes from ``call_request`` (curl's data rules), how it is
carried out from ``call_run.perform`` (redirects, retries, output), which options that trace
or format a summary (``--trace``, ``-w``) wrap without touching.
"""

from __future__ import annotations

import os
import sys

import click

from .. import _loop
from ..address import parse_address, parse_http_url
from ..errors import AddressError
from ..registry.ranking import KINDS
from ..registry.url import RegistryURL
from ..trace.events import Tracer
from . import call_trace
from .call_request import (
    InputError,
    basic_auth,
    choose_method,
    in_command_line_order,
    join_data,
    remote_file_name,
    split_userinfo,
)
from .call_run import CallOptions, CallResult, perform
from .exits import Exit, exit_help
from .hints import suggest_http_url, with_suggestion
from .main import cli
from .registry import registry_option

EPILOG = """\b
Examples:
  trunkline call GET http://127.0.0.1:8000/users
  trunkline call http+unix://%2Frun%2Fapp.sock/health          (METHOD defaults to GET)
  trunkline call GET http://unix:/run/app.sock:/health
  trunkline call GET http://api.internal/users --unix-socket /run/api.sock
  trunkline call POST http://api.internal/users --via unix:@api --json '{"name": "ada"}'
  trunkline call http://127.0.0.1:8000/form -d a=1 -d b=2      (sends a=1&b=2, as curl)
  trunkline call PUT https://localhost:8443/f --cacert ca.pem -T big.iso
  tar c dir | trunkline call PUT http://127.0.0.1:8000/up -T -  (chunked, from stdin)
  trunkline call -L -u ada:secret http://127.0.0.1:8000/private -O
  trunkline call GET http://127.0.0.1:8000/x -v -o body.bin --fail --retry 3

\b
URL forms: http://host:port/p  https://host/p  http+unix://%2Fpath.sock/p
           http+unix://%40abstract/p  http://unix:/path.sock:/p  http+fifo://%2Fpath/p
           host:port/p (http:// is assumed, as curl does)
--unix-socket and --via send the request to another address and keep the URL's Host.

\b
Output: the body goes to stdout as it arrives, byte for byte. On a terminal a JSON body is
shown indented and coloured, as httpie does (--no-color or NO_COLOR: no colour); piped or
with -o it is never changed. -o/-O to a file on a terminal shows a progress meter (-s or
--no-progress-meter: none). Trace headers (x-trunkline-trace-id, traceparent) are sent only
with --trace-headers or --server-trace, never because of -w or --trace."""

EXITS = exit_help(Exit.OK, Exit.USAGE, Exit.BAD_ADDRESS, Exit.RESOLVE, Exit.CONNECT,
                  Exit.WEIRD_REPLY, Exit.PARTIAL, Exit.HTTP_ERROR, Exit.WRITE, Exit.READ,
                  Exit.TIMEOUT, Exit.TLS, Exit.TOO_MANY_REDIRECTS, Exit.EMPTY_REPLY,
                  Exit.RECEIVE, Exit.CERTIFICATE, Exit.BAD_ENCODING, Exit.SEND_REWIND,
                  Exit.INTERRUPTED)


class _CallCommand(click.Command):
    """Keeps the raw arguments: curl joins -d/--data-* pieces in command-line order, which
    click's per-option lists do not keep."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["call.argv"] = list(args)
        return super().parse_args(ctx, args)


@cli.command("call", cls=_CallCommand,
             epilog=EPILOG + "\n\n" + EXITS + "\n\n" + call_trace.TRACE_HELP)
# not required=True: a bare --trace may have swallowed the URL (call_trace.parse_trace)
@click.argument("args", nargs=-1, metavar="[METHOD] URL")
@click.option("-X", "--request", "method_option", metavar="METHOD",
              help="The method (instead of the METHOD argument).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="Add a request header (repeatable).")
@click.option("-d", "--data", "--data-ascii", "data", multiple=True, metavar="DATA",
              help="Send DATA (@file reads a file without its newlines, @- stdin); repeats "
                   "join with '&'. Form-encoded unless -H sets Content-Type. Implies POST.")
@click.option("--data-raw", "data_raw", multiple=True, metavar="DATA",
              help="Like -d, but '@' is just a character.")
@click.option("--data-binary", "data_binary", multiple=True, metavar="DATA",
              help="Like -d, but @file is sent byte for byte.")
@click.option("--data-urlencode", "data_urlencode", multiple=True, metavar="[NAME]=TEXT",
              help="Percent-encode TEXT (also NAME@file, @file); joins with '&' like -d.")
@click.option("--json", "json_data", multiple=True, metavar="JSON",
              help="Send JSON (@file, @- too; repeats are concatenated) with Content-Type and "
                   "Accept application/json. Implies POST.")
@click.option("-G", "--get", "get", is_flag=True,
              help="Put the -d data in the URL's query and send GET.")
@click.option("-T", "--upload-file", metavar="FILE",
              help="Stream FILE as the body ('-': stdin, chunked). Implies PUT.")
@click.option("-u", "--user", metavar="USER[:PASSWORD]",
              help="Basic credentials (a missing password is asked for on the terminal).")
@click.option("-i", "--include", is_flag=True, help="Put the response head before the body.")
@click.option("-I", "--head", "head_only", is_flag=True,
              help="Send HEAD and show the response head only.")
@click.option("-o", "--output", metavar="FILE", help="Write the body to FILE ('-': stdout).")
@click.option("-O", "--remote-name", is_flag=True,
              help="Write the body to a file named as the URL's last path segment.")
@click.option("-L", "--location", "follow", is_flag=True,
              help="Follow redirects (curl's rules: 301/302 POST and 303 become GET).")
@click.option("--location-trusted", is_flag=True,
              help="Like -L, and send credentials to the hosts redirected to as well.")
@click.option("--max-redirs", type=click.IntRange(0), default=50, show_default=True,
              metavar="N", help="Follow at most N redirects (exit 47 beyond).")
@click.option("--compressed", is_flag=True,
              help="Ask for a gzip or deflate body and write it decoded.")
@click.option("--retry", type=click.IntRange(0), default=0, metavar="N",
              help="Retry transient errors N times (timeouts; HTTP 408/429/500/502/503/504).")
@click.option("--retry-delay", type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long between retries (default: 1 s, doubling).")
@click.option("--retry-max-time", type=click.FloatRange(0), metavar="SECONDS",
              help="No retry starts after this long since the first try.")
@click.option("--retry-connrefused", is_flag=True,
              help="Count a refused connection as transient too (with --retry).")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the connection's steps and both header blocks on stderr.")
@click.option("-f", "--fail", is_flag=True,
              help="Exit 22, writing no body, when the status is 400 or above.")
@click.option("--unix-socket", metavar="PATH",
              help="Connect to this Unix socket; the URL still gives Host and path.")
@click.option("--abstract-unix-socket", metavar="NAME",
              help="Connect to this Linux abstract socket (like --unix-socket).")
@click.option("--via", metavar="ADDRESS",
              help="Connect to ADDRESS (unix:///p, unix:@name, tcp://h:p, fifo:///p); "
                   "the URL still gives Host and path.")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True,
              metavar="SECONDS", help="Give up connecting after this long (exit 28).")
@click.option("--prefer", type=click.Choice(KINDS), default=None,
              help="http+svc://NAME: put this socket kind first where reachable.")
@registry_option
@click.option("-m", "--max-time", type=float, metavar="SECONDS",
              help="Give up on the whole call after this long (exit 28).")
@click.option("--cacert", type=click.Path(exists=True), metavar="FILE",
              help="Trust this CA bundle (PEM) instead of the system's.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the TLS certificate.")
@click.option("-A", "--user-agent", metavar="TEXT", help="The User-Agent header.")
@click.option("-s", "--silent", is_flag=True, help="No error message, no progress meter.")
@click.option("-S", "--show-error", is_flag=True, help="With -s, still show errors.")
@click.option("--no-progress-meter", is_flag=True, help="No progress meter, errors still.")
@click.option("--trace", "trace", is_flag=False, flag_value="text", default=None,
              metavar="[=FORMAT]",
              help="Trace the call's steps to stderr: text (httpstat-like, the default), "
                   "json, mermaid, or html (a page: --trace=html:PATH or --trace-file).")
@click.option("--trace-file", metavar="PATH",
              help="Write the --trace output to PATH instead of stderr.")
@click.option("--trace-headers", is_flag=True,
              help="Send the trace id (x-trunkline-trace-id, and a traceparent that is not "
                   "sampled) so a trunkline server can record it.")
@click.option("-w", "--write-out", "write_out", metavar="FORMAT",
              help="curl's -w: print FORMAT after the body, e.g. '%{time_total}\\n' "
                   "(@file reads it from a file, @- from stdin). The time_* figures mean "
                   "what curl's do (time_pretransfer: before the request is sent), plus "
                   "time_requestsent (the whole request written).")
@click.option("--dns", metavar="HOST:PORT",
              help="Look host names up at this DNS server (UDP), as its own traced step.")
@click.option("--server-trace", metavar="FILE",
              help="Merge the server's side of this call from FILE (JSON lines from "
                   "'trunkline serve --trace-file FILE'; same host). Sends the trace id.")
def call_command(args: tuple[str, ...], method_option: str | None, headers: tuple[str, ...],
                 data: tuple[str, ...], data_raw: tuple[str, ...],
                 data_binary: tuple[str, ...], data_urlencode: tuple[str, ...],
                 json_data: tuple[str, ...], get: bool, upload_file: str | None,
                 user: str | None, include: bool, head_only: bool, output: str | None,
                 remote_name: bool, follow: bool, location_trusted: bool, max_redirs: int,
                 compressed: bool, retry: int, retry_delay: float | None,
                 retry_max_time: float | None, retry_connrefused: bool, verbose: bool,
                 fail: bool, unix_socket: str | None, abstract_unix_socket: str | None,
                 via: str | None, connect_timeout: float, max_time: float | None,
                 cacert: str | None, insecure: bool, user_agent: str | None, silent: bool,
                 show_error: bool, no_progress_meter: bool, trace: str | None,
                 trace_file: str | None, trace_headers: bool, write_out: str | None,
                 dns: str | None, server_trace: str | None, prefer: str | None,
                 registry: RegistryURL | None) -> None:
    """Send one HTTP request to URL over any transport and write the response body."""
    choice, args = call_trace.parse_trace(trace, trace_file, args)
    if not args:
        raise click.UsageError("Missing argument '[METHOD] URL'.")
    call_trace.check_dns(dns)
    wout = call_trace.read_write_out(write_out)
    ctx = click.get_current_context()
    pieces = in_command_line_order(ctx.meta.get("call.argv", []), {
        "data": data, "raw": data_raw, "binary": data_binary, "urlencode": data_urlencode,
        "json": json_data})
    if len(args) > 2:
        raise click.UsageError(f"expected [METHOD] URL, got {len(args)} arguments: "
                               + " ".join(args))
    url, userinfo = split_userinfo(args[-1])
    if "://" not in url and not url.startswith(("/", ".")):
        url = "http://" + url  # curl's guess for a URL without a scheme
    method_arg = args[0] if len(args) == 2 else None
    if method_arg and method_option and method_option.upper() != method_arg.upper():
        raise click.UsageError(f"two methods given: {method_arg} and -X {method_option}")
    if pieces and upload_file is not None:
        raise click.UsageError("give either data (-d, --data-*, --json) or -T, not both")
    if sum(x is not None for x in (unix_socket, abstract_unix_socket, via)) > 1:
        raise click.UsageError("give only one of --unix-socket, --abstract-unix-socket, --via")
    if output is not None and remote_name:
        raise click.UsageError("give -o FILE or -O, not both")
    _check_url(url, args[-1])
    transport = via
    if unix_socket is not None:
        transport = "unix://" + os.path.abspath(unix_socket)
    elif abstract_unix_socket is not None:
        transport = "unix:@" + abstract_unix_socket
    if transport is not None:
        try:
            parse_address(transport)
        except AddressError as exc:
            _bad_url(str(exc))
    header_pairs = [_parse_header(h) for h in headers]
    names = {n.lower() for n, _ in header_pairs}
    if (user is not None or userinfo is not None) and "authorization" not in names:
        header_pairs.append(("Authorization", basic_auth(user or userinfo or "")))
    if compressed and "accept-encoding" not in names:
        header_pairs.append(("Accept-Encoding", "deflate, gzip"))
    try:
        body = join_data(pieces)
    except InputError as exc:
        if not silent or show_error:
            click.echo(f"trunkline call: {exc}", err=True)
        sys.exit(Exit.READ)
    body_headers: list[tuple[str, str]] = []
    if get and body is not None:
        url += ("&" if "?" in url else "?") + body.decode("latin-1")
        body = None
    elif body is not None and any(p.kind == "json" for p in pieces):
        if "content-type" not in names:
            body_headers.append(("Content-Type", "application/json"))
        if "accept" not in names:
            header_pairs.append(("Accept", "application/json"))
    elif body is not None and "content-type" not in names:
        body_headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    method = choose_method(method_arg or method_option, head=head_only,
                           upload=upload_file is not None, data=body is not None, get=get)
    if remote_name:
        output = remote_file_name(url)
    options = CallOptions(
        method=method, url=url, headers=tuple(header_pairs), body=body,
        body_headers=tuple(body_headers), upload_file=upload_file, include=include,
        head_only=head_only, output=None if output == "-" else output, verbose=verbose,
        transport=transport, fail=fail, connect_timeout=connect_timeout, max_time=max_time,
        cacert=cacert, insecure=insecure, user_agent=user_agent, dns=dns,
        follow=follow or location_trusted, location_trusted=location_trusted,
        max_redirs=max_redirs, compressed=compressed, retry=retry, retry_delay=retry_delay,
        retry_max_time=retry_max_time, retry_connrefused=retry_connrefused,
        progress=not (silent or no_progress_meter), pretty=True,
        trace_headers=trace_headers or server_trace is not None,
        silent=silent, prefer=prefer, registry=None if registry is None else str(registry))
    tracer = Tracer() if choice is not None or wout is not None else None
    # --trace-headers alone: a tracer only to carry the id onto the wire
    result = run(options, tracer or (Tracer(keep=False) if options.trace_headers else None))
    if not silent or show_error:
        for message in result.messages:
            click.echo(f"trunkline call: {message}", err=True)
    code = result.exit_code
    if tracer is not None:
        events = call_trace.gather(tracer, server_trace, None if silent else sys.stderr)
        facts = call_trace.facts(options.method, options.url, options.transport,
                                 result.response, code, result.messages, events,
                                 result.redirects)
        title = f"trunkline call {options.method} {options.url}"
        written = call_trace.emit(choice, wout, events, tracer, facts, title, silent=silent,
                                  stdout=sys.stdout, stderr=sys.stderr)
        code = code or written
    sys.exit(code)


def run(options: CallOptions, tracer: Tracer | None = None) -> CallResult:
    try:
        return _loop.run(perform(options, tracer))
    except KeyboardInterrupt:
        return CallResult(Exit.INTERRUPTED, messages=["interrupted"])


def _check_url(url: str, typed: str) -> None:
    try:
        parse_http_url(url)
    except AddressError as exc:
        _bad_url(str(with_suggestion(exc, suggest_http_url(typed))))


def _bad_url(message: str) -> None:
    click.echo(f"trunkline call: {message}", err=True)
    sys.exit(Exit.BAD_ADDRESS)


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r} is not 'Name: value'", param_hint="-H")
    return name.strip(), value.strip()


__all__ = ["CallOptions", "CallResult", "call_command", "perform", "run"]
