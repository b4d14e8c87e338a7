"""``trunkline call [METHOD] URL``: one HTTP request, curl-like, over any transport.

The request path is ``perform(options, tracer=None)``: it takes the options the command line
gave and an optional tracer, and returns a ``CallResult`` (response, error, exit status), so
options that trace or format a summary (``--trace``, ``-w``) can wrap it without touching it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

import click

from .. import _loop
from ..address import parse_address, parse_http_url
from ..client import CertificateVerifyError, Client, Response, ServerDisconnectedError, Timeout
from ..client.client import USER_AGENT
from ..errors import (
    AddressError,
    ConnectError,
    HandshakeError,
    ProtocolError,
    ResolveError,
    TrunklineError,
    TrunklineTimeoutError,
)
from ..resolve import DnsResolver
from ..trace.events import Tracer
from . import call_trace
from .main import cli

# Exit statuses: curl's numbers, so scripts written for curl read them the same way.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BAD_URL = 3
EXIT_RESOLVE = 6
EXIT_CONNECT = 7
EXIT_WEIRD_REPLY = 8
EXIT_HTTP_ERROR = 22
EXIT_WRITE = 23
EXIT_READ = 26
EXIT_TIMEOUT = 28
EXIT_TLS = 35
EXIT_EMPTY_REPLY = 52
EXIT_RECEIVE = 56
EXIT_CERTIFICATE = 60
EXIT_INTERRUPTED = 130

EPILOG = """\b
Examples:
  trunkline call GET http://127.0.0.1:8000/users
  trunkline call http+unix://%2Frun%2Fapp.sock/health          (METHOD defaults to GET)
  trunkline call GET http://unix:/run/app.sock:/health
  trunkline call GET http://api.internal/users --unix-socket /run/api.sock
  trunkline call POST http://api.internal/users --via unix:@api --json '{"name": "ada"}'
  trunkline call PUT https://localhost:8443/f --cacert ca.pem -T big.iso
  trunkline call GET http://127.0.0.1:8000/x -v -o body.bin --fail

\b
URL forms: http://host:port/p  https://host/p  http+unix://%2Fpath.sock/p
           http+unix://%40abstract/p  http://unix:/path.sock:/p  http+fifo://%2Fpath/p
--unix-socket and --via send the request to another address and keep the URL's Host.

\b
Exit status (curl's numbers):
   0  success: a response arrived (any status without --fail, below 400 with it)
   2  bad usage
   3  malformed URL or address
   6  could not resolve the host name
   7  could not connect (refused, no such socket)
   8  the server's reply was not valid HTTP
  22  HTTP status 400 or above, with --fail
  23  could not write the output
  26  could not read the request body file
  28  timed out (--connect-timeout, --max-time)
  35  TLS handshake failed
  52  the server closed the connection without replying
  56  the connection broke while receiving
  60  the server's TLS certificate is not trusted (use --cacert, or -k)"""


@dataclass(frozen=True)
class CallOptions:
    """Everything ``trunkline call`` was asked to do."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    upload_file: str | None = None
    include: bool = False
    output: str | None = None
    verbose: bool = False
    transport: str | None = None
    fail: bool = False
    connect_timeout: float = 10.0
    max_time: float | None = None
    cacert: str | None = None
    insecure: bool = False
    user_agent: str | None = None
    dns: str | None = None  # a DNS server (HOST:PORT) for host names, asked over UDP


@dataclass
class CallResult:
    exit_code: int
    response: Response | None = None
    error: BaseException | None = None
    messages: list[str] = field(default_factory=list)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, AddressError):
        return EXIT_BAD_URL
    if isinstance(exc, TrunklineTimeoutError | TimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, ResolveError):
        return EXIT_RESOLVE
    if isinstance(exc, CertificateVerifyError):
        return EXIT_CERTIFICATE
    if isinstance(exc, HandshakeError):
        return EXIT_TLS
    if isinstance(exc, ConnectError):
        return EXIT_CONNECT
    if isinstance(exc, ServerDisconnectedError):
        return EXIT_EMPTY_REPLY if exc.before_response else EXIT_RECEIVE
    if isinstance(exc, ProtocolError):
        return EXIT_WEIRD_REPLY
    return EXIT_RECEIVE


def _file_parts(path: str, size: int = 256 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def _verbose(prefix: str, head: bytes, err: IO[str]) -> None:
    for line in head.decode("latin-1").split("\r\n")[:-1]:
        err.write(f"{prefix} {line}".rstrip() + "\n")


async def perform(options: CallOptions, tracer: Tracer | None = None, *,
                  stdout: IO[bytes] | None = None, stderr: IO[str] | None = None) -> CallResult:
    """Send the request, write the response where asked; never raises for network errors."""
    out_stream = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    verify: bool | str = False if options.insecure else (options.cacert or True)
    timeout = Timeout(connect=options.connect_timeout, read=None, write=None, pool=None,
                      total=options.max_time)
    content: Any = options.body
    headers = list(options.headers)
    if options.upload_file is not None:
        try:
            size = os.path.getsize(options.upload_file)
        except OSError as exc:
            return CallResult(EXIT_READ, error=exc,
                              messages=[f"cannot read {options.upload_file}: {exc.strerror}"])
        content = _file_parts(options.upload_file)
        if not any(n.lower() == "content-length" for n, _ in headers):
            headers.append(("Content-Length", str(size)))
    resolver = None
    if options.dns is not None:
        try:
            resolver = DnsResolver(options.dns, timeout=options.connect_timeout)
        except TrunklineError as exc:
            return CallResult(EXIT_USAGE, error=exc, messages=[str(exc)])
    client = Client(verify=verify, timeout=timeout, retries=1,
                    user_agent=options.user_agent or USER_AGENT, resolver=resolver)
    output: IO[bytes] | None = None
    try:
        if options.verbose:
            where = options.transport or options.url
            err.write(f"* {options.method} {options.url}"
                      + (f" via {where}" if options.transport else "") + "\n")
        async with client.stream(options.method, options.url, headers=headers,
                                 content=content, transport=options.transport,
                                 tracer=tracer) as response:
            if options.verbose:
                _verbose(">", response.request_head, err)
                _verbose("<", response.head_bytes, err)
                err.flush()
            if options.fail and response.status_code >= 400:
                return CallResult(EXIT_HTTP_ERROR, response, messages=[
                    f"the server answered {response.status_code} {response.reason_phrase}"])
            try:
                output = out_stream if options.output in (None, "-") else \
                    open(options.output, "wb")  # noqa: SIM115  (closed below)
                if options.include:
                    output.write(response.head_bytes)
                async for chunk in response.aiter_bytes():
                    output.write(chunk)
                output.flush()
            except OSError as exc:
                return CallResult(EXIT_WRITE, response, exc,
                                  [f"cannot write the output: {exc.strerror or exc}"])
        return CallResult(EXIT_OK, response)
    except (TrunklineError, OSError) as exc:
        return CallResult(exit_code_for(exc), error=exc, messages=[str(exc) or repr(exc)])
    finally:
        if output is not None and output is not out_stream:
            output.close()
        await client.aclose()


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r} is not 'Name: value'", param_hint="-H")
    return name.strip(), value.strip()


def _read_data(value: str, what: str) -> bytes:
    if value == "@-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        try:
            with open(value[1:], "rb") as f:
                return f.read()
        except OSError as exc:
            click.echo(f"trunkline call: cannot read {value[1:]} for {what}: {exc.strerror}",
                       err=True)
            sys.exit(EXIT_READ)
    return value.encode()


@cli.command("call", epilog=EPILOG + "\n\n" + call_trace.TRACE_HELP)
# not required=True: a bare --trace may have swallowed the URL (call_trace.parse_trace)
@click.argument("args", nargs=-1, metavar="[METHOD] URL")
@click.option("-X", "--request", "method_option", metavar="METHOD",
              help="The method (instead of the METHOD argument).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="Add a request header (repeatable).")
@click.option("-d", "--data", metavar="DATA",
              help="Send DATA as the body (@file reads a file, @- stdin); "
                   "form-encoded unless -H sets Content-Type. Implies POST.")
@click.option("--json", "json_data", metavar="JSON",
              help="Send JSON (@file, @- too) with Content-Type and Accept application/json. "
                   "Implies POST.")
@click.option("-T", "--upload-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Stream FILE as the body. Implies PUT.")
@click.option("-i", "--include", is_flag=True, help="Put the response head before the body.")
@click.option("-o", "--output", metavar="FILE", help="Write the body to FILE ('-': stdout).")
@click.option("-v", "--verbose", is_flag=True,
              help="Show both sides' header blocks on stderr ('>' sent, '<' received).")
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
@click.option("-m", "--max-time", type=float, metavar="SECONDS",
              help="Give up on the whole call after this long (exit 28).")
@click.option("--cacert", type=click.Path(exists=True), metavar="FILE",
              help="Trust this CA bundle (PEM) instead of the system's.")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify the TLS certificate.")
@click.option("-A", "--user-agent", metavar="TEXT", help="The User-Agent header.")
@click.option("-s", "--silent", is_flag=True, help="No error message on stderr.")
@click.option("--trace", "trace", is_flag=False, flag_value="text", default=None,
              metavar="[=FORMAT]",
              help="Trace the call's steps to stderr: text (httpstat-like, the default), "
                   "json, mermaid, or html (a page: --trace=html:PATH or --trace-file).")
@click.option("--trace-file", metavar="PATH",
              help="Write the --trace output to PATH instead of stderr.")
@click.option("-w", "--write-out", "write_out", metavar="FORMAT",
              help="curl's -w: print FORMAT after the body, e.g. '%{time_total}\\n' "
                   "(@file reads it from a file, @- from stdin).")
@click.option("--dns", metavar="HOST:PORT",
              help="Look host names up at this DNS server (UDP), as its own traced step.")
@click.option("--server-trace", metavar="FILE",
              help="Merge the server's side of this call from FILE (JSON lines from "
                   "'trunkline serve --trace-file FILE'; same host).")
def call_command(args: tuple[str, ...], method_option: str | None, headers: tuple[str, ...],
                 data: str | None, json_data: str | None, upload_file: str | None,
                 include: bool, output: str | None, verbose: bool, fail: bool,
                 unix_socket: str | None, abstract_unix_socket: str | None, via: str | None,
                 connect_timeout: float, max_time: float | None, cacert: str | None,
                 insecure: bool, user_agent: str | None, silent: bool, trace: str | None,
                 trace_file: str | None, write_out: str | None, dns: str | None,
                 server_trace: str | None) -> None:
    """Send one HTTP request to URL over any transport and write the response body."""
    choice, args = call_trace.parse_trace(trace, trace_file, args)
    if not args:
        raise click.UsageError("Missing argument '[METHOD] URL'.")
    call_trace.check_dns(dns)
    wout = call_trace.read_write_out(write_out)
    options = build_options(args, method_option, headers, data, json_data, upload_file,
                            include, output, verbose, fail, unix_socket, abstract_unix_socket,
                            via, connect_timeout, max_time, cacert, insecure, user_agent)
    if dns is not None:
        options = replace(options, dns=dns)
    tracer = Tracer() if choice is not None or wout is not None else None
    result = run(options, tracer)
    if not silent:
        for message in result.messages:
            click.echo(f"trunkline call: {message}", err=True)
    code = result.exit_code
    if tracer is not None:
        events = call_trace.gather(tracer, server_trace, None if silent else sys.stderr)
        facts = call_trace.facts(options.method, options.url, options.transport,
                                 result.response, code, result.messages, events)
        title = f"trunkline call {options.method} {options.url}"
        written = call_trace.emit(choice, wout, events, tracer, facts, title, silent=silent,
                                  stdout=sys.stdout, stderr=sys.stderr)
        code = code or written
    sys.exit(code)


def run(options: CallOptions, tracer: Tracer | None = None) -> CallResult:
    try:
        return _loop.run(perform(options, tracer))
    except KeyboardInterrupt:
        return CallResult(EXIT_INTERRUPTED, messages=["interrupted"])


def build_options(args: tuple[str, ...], method_option: str | None, headers: tuple[str, ...],
                  data: str | None, json_data: str | None, upload_file: str | None,
                  include: bool, output: str | None, verbose: bool, fail: bool,
                  unix_socket: str | None, abstract_unix_socket: str | None, via: str | None,
                  connect_timeout: float, max_time: float | None, cacert: str | None,
                  insecure: bool, user_agent: str | None) -> CallOptions:
    """Check the command line and turn it into ``CallOptions`` (usage errors exit 2)."""
    if len(args) > 2:
        raise click.UsageError(f"expected [METHOD] URL, got {len(args)} arguments: "
                               + " ".join(args))
    url = args[-1]
    method = (args[0] if len(args) == 2 else method_option or
              ("PUT" if upload_file else "POST" if data is not None or json_data is not None
               else "GET")).upper()
    if len(args) == 2 and method_option and method_option.upper() != method:
        raise click.UsageError(f"two methods given: {args[0]} and -X {method_option}")
    if sum(x is not None for x in (data, json_data, upload_file)) > 1:
        raise click.UsageError("give only one of -d, --json and -T")
    if sum(x is not None for x in (unix_socket, abstract_unix_socket, via)) > 1:
        raise click.UsageError("give only one of --unix-socket, --abstract-unix-socket, --via")
    try:
        parse_http_url(url)
    except AddressError as exc:
        click.echo(f"trunkline call: {exc}", err=True)
        sys.exit(EXIT_BAD_URL)
    transport = via
    if unix_socket is not None:
        transport = "unix://" + os.path.abspath(unix_socket)
    elif abstract_unix_socket is not None:
        transport = "unix:@" + abstract_unix_socket
    if transport is not None:
        try:
            parse_address(transport)
        except AddressError as exc:
            click.echo(f"trunkline call: {exc}", err=True)
            sys.exit(EXIT_BAD_URL)
    header_pairs = [_parse_header(h) for h in headers]
    names = {n.lower() for n, _ in header_pairs}
    body = None
    if data is not None:
        body = _read_data(data, "-d")
        if "content-type" not in names:
            header_pairs.append(("Content-Type", "application/x-www-form-urlencoded"))
    elif json_data is not None:
        body = _read_data(json_data, "--json")
        if "content-type" not in names:
            header_pairs.append(("Content-Type", "application/json"))
        if "accept" not in names:
            header_pairs.append(("Accept", "application/json"))
    return CallOptions(method=method, url=url, headers=tuple(header_pairs), body=body,
                       upload_file=upload_file, include=include, output=output,
                       verbose=verbose, transport=transport, fail=fail,
                       connect_timeout=connect_timeout, max_time=max_time, cacert=cacert,
                       insecure=insecure, user_agent=user_agent)


__all__ = ["CallOptions", "CallResult", "build_options", "exit_code_for", "perform", "run"]
