"""How ``trunkline call`` carries out one call: retries, redirects, one exchange each, by
curl's rules.

- ``perform(options, tracer=None)`` never raises for network errors: it returns a
  ``CallResult`` with curl's exit status and the message to show (``exits.failure``).
- ``-L``: 301/302 turn POST into GET, 303 turns anything but HEAD into GET (the body is
  dropped, with the Content-Type we added for it); 307/308 keep the method and the body (a
  ``-T -`` body cannot be sent twice: exit 65, as curl). Credentials (``-u``, an
  Authorization or Cookie header) go only to the host they were given for, unless
  ``--location-trusted``. More than ``--max-redirs`` hops: exit 47.
- ``--retry N``: curl's transient errors are retried (a timeout, HTTP 408, 429, 500, 502, 503,
  504; a refused connection with ``--retry-connrefused``), waiting ``--retry-delay`` seconds
  or 1, 2, 4... s (a Retry-After header wins), within ``--retry-max-time``. As curl, the
  body of an answer that is retried is written too (not with ``--fail``); a file given with
  ``-o`` starts over.
- Failures while the body arrives are the network's (28 timeout, 18 cut short, 56 reset),
  never "cannot write the output" (23), which is only for the output itself.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any
from urllib.parse import urljoin

from ..address import StreamAddress, format_http_url, parse_address, parse_http_url
from ..client import Client, Response, Timeout
from ..client.client import USER_AGENT
from ..errors import AddressError, ConnectError, TrunklineError
from ..resolve import DnsResolver
from ..trace.events import Tracer
from .call_output import BodyOutput, Decoder, verbose_sink
from .exits import Exit, failure

REDIRECTS = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (408, 429, 500, 502, 503, 504)
CHUNK = 256 * 1024
#: A redirect's own body is read (so its connection can be reused) up to this much.
REDIRECT_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class CallOptions:
    """Everything ``trunkline call`` was asked to do."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: headers that describe the body we built (-d, --json): dropped with it on a redirect
    body_headers: tuple[tuple[str, str], ...] = ()
    upload_file: str | None = None  # a path, or "-" for stdin
    include: bool = False
    head_only: bool = False  # -I
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
    follow: bool = False
    location_trusted: bool = False
    max_redirs: int = 50
    compressed: bool = False
    retry: int = 0
    retry_delay: float | None = None
    retry_max_time: float | None = None
    retry_connrefused: bool = False
    progress: bool = True
    pretty: bool = True
    trace_headers: bool = False
    silent: bool = False  # -s: no retry warnings (-S brings back errors only, as curl)
    prefer: str | None = None  # http+svc://: a socket kind to put first
    registry: str | None = None  # http+svc://: the registry URL (default: the usual one)


@dataclass
class CallResult:
    exit_code: int
    response: Response | None = None
    error: BaseException | None = None
    messages: list[str] = field(default_factory=list)
    redirects: int = 0  # followed (-L)


class _Stop(Exception):
    """Ends the call with a status and a message (not a network error)."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


def dial_address(options: CallOptions) -> StreamAddress | None:
    """Where the first request goes (for messages): ``--via``, or the URL's own address."""
    try:
        if options.transport is not None:
            address = parse_address(options.transport)
        else:
            address = parse_http_url(options.url).transport
    except AddressError:
        return None
    return address  # type: ignore[return-value]


async def perform(options: CallOptions, tracer: Tracer | None = None, *,
                  stdout: IO[bytes] | None = None, stderr: IO[str] | None = None) -> CallResult:
    """Send the request (again, if retries allow), write the response where asked."""
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    dial = dial_address(options)
    if options.verbose and dial is not None:
        sink = verbose_sink(err, dial)
        if tracer is None:
            tracer = Tracer(sink, keep=False)
        else:
            tracer.add_sink(sink)
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = 0
    while True:
        result, wait = await _attempt(options, tracer, out, err, dial, attempt)
        if wait is None or attempt >= options.retry:
            return result
        if options.retry_max_time and loop.time() - started + wait > options.retry_max_time:
            if result.exit_code == Exit.OK:
                result.messages = []  # the answer stands: it was only a reason to retry
            return result
        left = options.retry - attempt
        if not options.silent:
            err.write(f"Warning: Problem : {result.messages[0] if result.messages else 'error'}. "
                      f"Will retry in {wait:g} seconds. {left} retr{'y' if left == 1 else 'ies'} "
                      "left.\n")
            err.flush()
        await asyncio.sleep(wait)
        attempt += 1


async def _attempt(options: CallOptions, tracer: Tracer | None, out: IO[bytes], err: IO[str],
                   dial: StreamAddress | None, attempt: int) -> tuple[CallResult, float | None]:
    """One transfer (with its redirects); the result, and how long to wait before a retry
    (None: do not retry)."""
    resolver = None
    if options.dns is not None:
        try:
            resolver = DnsResolver(options.dns, timeout=options.connect_timeout)
        except TrunklineError as exc:
            return CallResult(Exit.USAGE, error=exc, messages=[str(exc)]), None
    verify: bool | str = False if options.insecure else (options.cacert or True)
    timeout = Timeout(connect=options.connect_timeout, read=None, write=None, pool=None,
                      total=options.max_time)
    client = Client(verify=verify, timeout=timeout, retries=1,
                    user_agent=options.user_agent or USER_AGENT, resolver=resolver,
                    trace_headers=options.trace_headers, registry=options.registry,
                    prefer=options.prefer)
    output = BodyOutput(options.output, out, err, pretty=options.pretty,
                        progress=options.progress)
    exchange = _Exchange(options, client, tracer, output, err, attempt)
    try:
        result = await exchange.run()
        result.redirects = exchange.redirects
        return result, exchange.retry_wait
    except _Stop as stop:
        return CallResult(stop.code, exchange.response, stop, [str(stop)],
                          exchange.redirects), None
    except (TrunklineError, OSError) as exc:
        found = failure(exc, address=dial, timeout_hint="")
        message = found.message
        response = exchange.response
        length = response.headers.get("content-length") if response is not None else None
        if found.code == Exit.PARTIAL and response is not None and length and length.isdigit():
            message = (f"transfer closed with {int(length) - response.num_bytes} bytes "
                       f"remaining to read ({message})")
        wait = None
        if options.retry and (found.code == Exit.TIMEOUT or (
                options.retry_connrefused and isinstance(exc, ConnectError)
                and exc.errno == errno.ECONNREFUSED)):
            wait = exchange.backoff()
        return CallResult(found.code, response, exc, [message], exchange.redirects), wait
    finally:
        output.close()
        await client.aclose()


class _Exchange:
    """One transfer: the request, and each redirect it is told to follow."""

    def __init__(self, options: CallOptions, client: Client, tracer: Tracer | None,
                 output: BodyOutput, err: IO[str], attempt: int) -> None:
        self.options = options
        self.client = client
        self.tracer = tracer
        self.output = output
        self.err = err
        self.attempt = attempt
        # a retry may follow: do not write the body of an answer that will be asked again
        self.retrying = attempt < options.retry
        self.response: Response | None = None
        self.retry_wait: float | None = None
        self.redirects = 0

    def backoff(self) -> float:
        """curl's wait before retry N: --retry-delay, else 1 s doubling each time."""
        if self.options.retry_delay:
            return self.options.retry_delay
        return float(min(2 ** self.attempt, 600))

    async def run(self) -> CallResult:
        o = self.options
        url, method, body, headers = o.url, o.method, o.body, list(o.headers + o.body_headers)
        upload = o.upload_file
        for hop in range(o.max_redirs + 2):
            content, headers = self._content(body, upload, headers)
            async with self.client.stream(method, url, headers=headers, content=content,
                                          transport=o.transport, tracer=self.tracer
                                          ) as response:
                self.response = response
                if o.verbose:
                    _show_head(">", response.request_head, self.err)
                    _show_head("<", response.head_bytes, self.err)
                    self.err.flush()
                status = response.status_code
                location = response.headers.get("location")
                redirect = o.follow and status in REDIRECTS and location
                transient = bool(o.retry and self.retrying and status in TRANSIENT_STATUSES)
                if transient:  # curl writes this answer as any other, then tries again
                    self.retry_wait = _retry_after(response) or self.backoff()
                if o.include or o.head_only:
                    self._write(lambda: self.output.write_head(response.head_bytes))
                if redirect:
                    assert location is not None
                    if hop >= o.max_redirs:
                        raise _Stop(Exit.TOO_MANY_REDIRECTS,
                                    f"maximum ({o.max_redirs}) redirects followed")
                    await _discard(response)
                    url, method, body, upload, headers = self._follow(
                        url, location, status, method, body, upload, headers)
                    self.redirects += 1
                    continue
                if o.fail and status >= 400:
                    message = f"the server answered {status} {response.reason_phrase}"
                    if transient:
                        return CallResult(Exit.HTTP_ERROR, response, messages=[message])
                    raise _Stop(Exit.HTTP_ERROR, message)
                if not o.head_only and method != "HEAD":
                    await self._write_body(response)
                self._write(self.output.finish)
                if transient:
                    return CallResult(Exit.OK, response, messages=[f"HTTP error {status}"])
                return CallResult(Exit.OK, response)
        raise AssertionError("unreachable: the loop returns or raises")

    def _content(self, body: bytes | None, upload: str | None,
                 headers: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
        if upload is None:
            return body, headers
        if upload == "-":
            return _stdin_parts(), headers  # chunked: the length is not known (curl too)
        try:
            size = os.path.getsize(upload)
        except OSError as exc:
            raise _Stop(Exit.READ, f"cannot read {upload}: {exc.strerror}") from None
        if not any(n.lower() == "content-length" for n, _ in headers):
            headers = [*headers, ("Content-Length", str(size))]
        return _file_parts(upload), headers

    def _follow(self, url: str, location: str, status: int, method: str, body: bytes | None,
                upload: str | None, headers: list[tuple[str, str]]
                ) -> tuple[str, str, bytes | None, str | None, list[tuple[str, str]]]:
        o = self.options
        try:
            new_url = next_url(url, location)
        except AddressError as exc:
            raise _Stop(Exit.BAD_ADDRESS, f"the redirect to {location!r} is not a URL we can "
                                          f"follow: {exc}") from None
        if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
            method, body, upload = "GET", None, None
            dropped = {n.lower() for n, _ in o.body_headers} | {"content-length"}
            headers = [(n, v) for n, v in headers if n.lower() not in dropped]
        elif upload == "-":
            raise _Stop(Exit.SEND_REWIND, f"the redirect ({status}) needs the body sent again, "
                                          "and stdin cannot be read twice")
        if not o.location_trusted and not same_origin(url, new_url):
            headers = [(n, v) for n, v in headers
                       if n.lower() not in ("authorization", "cookie")]
        if o.verbose:
            self.err.write(f"* Issue another request to this URL: '{new_url}'\n")
        return new_url, method, body, upload, headers

    async def _write_body(self, response: Response) -> None:
        o = self.options
        encoding = (response.headers.get("content-encoding") or "").strip().lower()
        decoder = None
        if o.compressed and encoding and encoding != "identity":
            if encoding not in Decoder.SUPPORTED:
                raise _Stop(Exit.BAD_ENCODING, f"unrecognized content encoding {encoding!r}")
            decoder = Decoder(encoding)
        length = response.headers.get("content-length")
        self._write(lambda: self.output.start(
            response.headers.get("content-type") or "",
            int(length) if length and length.isdigit() and decoder is None else None))
        async for chunk in response.aiter_bytes():  # network errors go to the caller
            data = chunk
            if decoder is not None:
                try:
                    data = decoder.decode(chunk)
                except Exception as exc:  # zlib.error
                    raise _Stop(Exit.BAD_ENCODING, f"the {encoding} body does not decode: "
                                                   f"{exc}") from None
            self._put(data)
        if decoder is not None:
            self._put(decoder.flush())

    def _put(self, data: bytes) -> None:
        try:
            self.output.write(data)
        except OSError as exc:
            raise _Stop(Exit.WRITE, f"cannot write the output: "
                                    f"{exc.strerror or exc}") from None

    @staticmethod
    def _write(action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:  # the output only: the network's errors never pass here
            raise _Stop(Exit.WRITE, f"cannot write the output: "
                                    f"{exc.strerror or exc}") from None


def next_url(current: str, location: str) -> str:
    """The URL a Location header points to, from ``current`` (absolute, scheme-relative or
    relative; every URL form of the grammar, including http+unix)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        parse_http_url(location)
        return location
    here = parse_http_url(current)
    if location.startswith("//"):
        return f"{here.scheme}:{location}"
    target = urljoin("http://h" + here.target, location).removeprefix("http://h")
    return format_http_url(replace(here, target=target or "/"))


def same_origin(a: str, b: str) -> bool:
    """Whether credentials given for ``a`` may go to ``b`` (scheme, host and address)."""
    first, second = parse_http_url(a), parse_http_url(b)
    return (first.tls, first.host.lower(), first.transport) == (
        second.tls, second.host.lower(), second.transport)


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


async def _discard(response: Response) -> None:
    read = 0
    async for chunk in response.aiter_bytes():
        read += len(chunk)
        if read > REDIRECT_BODY_LIMIT:
            return  # closing the response drops the connection instead


def _file_parts(path: str, size: int = CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


async def _stdin_parts() -> AsyncIterator[bytes]:
    """stdin in chunks, read in a thread so the loop keeps reading the response meanwhile."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    while chunk := await loop.run_in_executor(None, os.read, fd, CHUNK):
        yield chunk


def _show_head(prefix: str, head: bytes, err: IO[str]) -> None:
    for line in head.decode("latin-1").split("\r\n")[:-1]:
        err.write(f"{prefix} {line}".rstrip() + "\n")


__all__ = ["CallOptions", "CallResult", "dial_address", "next_url", "perform", "same_origin"]
