"""``Client``: the async HTTP/1.1 client over every stream transport trunkline knows.

    async with trunkline.Client() as client:
        r = await client.get("http+unix://%2Frun%2Fapp.sock/users", params={"page": 2})
        r = await client.post("http://127.0.0.1:8000/users", json={"name": "ada"})
        r = await client.get("http://api.internal/users", transport="unix:///run/api.sock")
        async with client.stream("GET", "https://example.test/big") as r:
            async for chunk in r.aiter_bytes(): ...

Rules:
- URLs take every HTTP form of the address grammar; ``transport=`` (per client or per
  request) sends the request to another address while keeping the URL's Host header, as
  curl's ``--unix-socket`` does.
- One pool per resolved address; keep-alive reuse; limits from ``Limits``.
- A request is sent again only when it is idempotent, its body can be replayed, and its
  connection failed before a single response byte arrived (a stale pooled connection).
- TLS verification is on unless ``verify=False``.
- Which headers a request carries, what its body is and how it is framed (Content-Length,
  chunked, none) are the sans-I/O core's rules (``protocol.http_client`` ``ClientHeaders``,
  ``request_body``, ``body_framing``); this module sends what they decide.
- The parse of a URL and its encoded Host line and target are cached, so a repeated call
  costs one ``join`` to build its head and one ``write`` to send it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode

from ..address import (
    Address,
    HttpTarget,
    ServiceAddress,
    StreamAddress,
    TcpAddress,
    UdpAddress,
    is_datagram,
    parse_address,
    parse_http_url,
)
from ..errors import UnsupportedError
from ..protocol.http_client import (
    CHUNK_END,
    IDEMPOTENT_METHODS,
    Body,
    ClientHeaders,
    HeadersInput,
    asks_close,
    body_framing,
    check_method,
    encode_chunk,
    encode_request_head,
    encode_target,
    request_body,
)
from ..registry.resolver import Resolver as NameResolver
from ..trace.events import Step, Tracer
from ..transport.tcp import Resolver
from .connect import http_client_tls_context
from .errors import ServerDisconnectedError
from .models import Limits, Response, Timeout
from .named import NamedRoutes
from .pool import Pool, PoolKey

ParamsInput = Mapping[str, Any] | Iterable[tuple[str, Any]] | str
TransportInput = str | Address | None

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trunkline")
    except PackageNotFoundError:
        return "0"


USER_AGENT = f"trunkline/{_version()}"
#: Bodies up to this size go out in the same write as the head.
SMALL_BODY = 64 * 1024
_URL_CACHE_SIZE = 512
DEFAULT_TIMEOUT = Timeout()
DEFAULT_LIMITS = Limits()


class _Unset:
    pass


UNSET: Any = _Unset()


class StreamOptions(TypedDict, total=False):
    """The keyword arguments of ``Client.request`` (and so of ``get``, ``post``, ...) but
    ``stream``: typed, so a misspelt one is a TypeError and mypy names it."""

    params: ParamsInput | None
    headers: HeadersInput | None
    content: Body | None
    json: Any
    data: Mapping[str, Any] | None
    timeout: Timeout | float | None
    transport: TransportInput
    tracer: Tracer | None


class RequestOptions(StreamOptions, total=False):
    """``StreamOptions`` plus ``stream`` (prefer ``Client.stream``)."""

    stream: bool


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a URL goes and the pre-encoded pieces of its request head."""

    key: PoolKey | None  # None for a service name: the pool is chosen per request
    host_line: bytes
    target: str
    target_bytes: bytes
    url: str
    service: str | None = None  # http+svc://NAME/...


class Client:
    """An async HTTP/1.1 client with a connection pool per address.

    ``transport``: an address (``unix:///run/app.sock``, ``unix:@name``, ``tcp://host:port``,
    ``fifo:///path``) every request goes to instead of the URL's host; the URL still names the
    Host header and, for https, the TLS server name.
    ``verify``: True (system CAs), a CA file/dir path, an ``ssl.SSLContext``, or False.
    ``retries``: how many times an idempotent request is sent again after a connection
    failed before any response byte (a server closing an idle keep-alive connection).
    ``resolver``: looks TCP host names up instead of the system resolver, e.g.
    ``trunkline.DnsResolver("127.0.0.1:5353")`` (a traced, timed DNS step of its own).
    ``trace_headers``: with a tracer, send its id (``x-trunkline-trace-id`` and a W3C
    ``traceparent`` that is not sampled) so a trunkline server records it and both sides
    merge; False traces this side only and leaves the request as it would be untraced.
    ``registry``: where ``http+svc://NAME/...`` names are looked up (a registry URL or a
    ``trunkline.Resolver``; default ``$TRUNKLINE_REGISTRY`` / the user's registry file);
    ``prefer``: a socket kind to put first (``"tcp"``, ``"unix"``, ...). A name is read from
    the registry once and then served from the resolver's cache, which the registry keeps
    fresh; an address that refuses is skipped for the next (``trunkline.aio.by_name``)."""

    def __init__(self, base_url: str | None = None, *, headers: HeadersInput | None = None,
                 timeout: Timeout | float | None = DEFAULT_TIMEOUT,
                 limits: Limits = DEFAULT_LIMITS,
                 verify: bool | str | Any = True, cert: str | tuple[str, str] | None = None,
                 transport: TransportInput = None, tracer: Tracer | None = None,
                 retries: int = 1, user_agent: str | None = USER_AGENT,
                 resolver: Resolver | None = None, trace_headers: bool = True,
                 registry: str | NameResolver | None = None, prefer: str | None = None
                 ) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = Timeout.of(timeout)
        self.limits = limits
        self.tracer = tracer
        self.retries = retries
        self.trace_headers = trace_headers
        self.resolver = resolver  # host names over TCP/TLS, e.g. trunkline.resolve.DnsResolver
        self.transport = _as_transport(transport)
        self._verify = verify
        self._cert = cert
        self._ssl: Any = None
        builtin = [("User-Agent", user_agent)] if user_agent else []
        self._headers = ClientHeaders(builtin + [("Accept", "*/*")], headers)
        self._pools: dict[PoolKey, Pool] = {}
        self._routes: dict[tuple[str, TransportInput], _Route] = {}
        self._closed = False
        self._named = NamedRoutes(registry, prefer, self._pool_for)

    # ------------------------------------------------------------------ verbs

    def get(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("GET", url, **options)

    def head(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("OPTIONS", url, **options)

    def delete(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("DELETE", url, **options)

    def post(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Unpack[RequestOptions]
            ) -> Coroutine[Any, Any, Response]:
        return self.request("PATCH", url, **options)

    async def request(self, method: str, url: str, *, params: ParamsInput | None = None,
                      headers: HeadersInput | None = None, content: Body | None = None,
                      json: Any = UNSET, data: Mapping[str, Any] | None = None,
                      timeout: Timeout | float | None | _Unset = UNSET,
                      transport: TransportInput = None, tracer: Tracer | None = None,
                      stream: bool = False) -> Response:
        """Send one request; the returned response has its whole body read unless
        ``stream`` (prefer ``Client.stream``, which also closes it)."""

        if self._closed:
            raise UnsupportedError("this Client is closed; make a new one")
        loop = asyncio.get_running_loop()
        t = self.timeout if isinstance(timeout, _Unset) else Timeout.of(timeout)
        deadline = None if t.total is None else loop.time() + t.total
        tracer = tracer if tracer is not None else self.tracer
        route = self._route(url, transport if transport is not None else self.transport)

        method_b = check_method(method)
        method = method_b.decode()
        target = route.target
        target_bytes = route.target_bytes
        if params:
            query = params if isinstance(params, str) else urlencode(
                list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True)
            target = f"{target}{'&' if '?' in target else '?'}{query}"
            target_bytes = encode_target(target)

        body = request_body(content, data, json, has_json=json is not UNSET)
        header_block, names = self._headers.for_request(headers, body.content_type)
        trace_id = None
        if tracer is not None:
            trace_id = getattr(tracer, "trace_id", None) or uuid.uuid4().hex
        if tracer is not None and self.trace_headers:
            # the server records the id, so both sides' events can be merged
            assert trace_id is not None
            header_block += b"x-trunkline-trace-id: %s\r\n" % trace_id.encode()
            traceparent = getattr(tracer, "traceparent", None)
            if traceparent is not None and b"traceparent" not in names:  # W3C, for OpenTelemetry
                header_block += b"traceparent: %s\r\n" % traceparent().encode()

        host_line = b"" if b"host" in names else route.host_line
        framing = body_framing(method, names, header_block, body)
        head = encode_request_head(method_b, target_bytes, host_line, header_block,
                                   framing.line)
        must_close = asks_close(names, header_block)
        body_stream = body.stream

        pool = None
        if route.key is not None:
            pool = self._pools.get(route.key)
            if pool is None:
                pool = self._pool(route.key)
        retries = self.retries if method in IDEMPOTENT_METHODS and body.replayable else 0
        payload = body.data
        attempt = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            if pool is not None:
                conn, _ = await pool.acquire(
                    connect_timeout=_least(t.connect, remaining),
                    pool_timeout=_least(t.pool, remaining), tracer=tracer)
            else:
                assert route.service is not None
                conn = await self._named.acquire(route.service, _least(t.connect, remaining),
                                                 _least(t.pool, remaining), tracer)
            if conn.tracer is not tracer:
                conn.tracer = tracer
                if tracer is not None:
                    conn.conn_id = tracer.new_connection()
            response = Response(method, route.url, head)
            response.trace_id = trace_id
            waiter: asyncio.Future[None] | None = None
            try:
                # curl's pretransfer: just before the request's first byte is written
                sent_ns = time.monotonic_ns() if tracer is not None else 0
                if body_stream is None:
                    small = payload is None or len(payload) <= SMALL_BODY
                    waiter = conn.start(
                        response, head + payload if small and payload else head,
                        head=method == "HEAD", stream=stream, read_timeout=t.read,
                        deadline=deadline, must_close=must_close,
                        body=None if small else payload)
                    if tracer is not None:
                        # both writes are done: head and body are in the kernel's hands
                        written = conn.written_ns
                        tracer.record(Step.REQUEST_HEADERS, "client", sent_ns, conn.conn_id,
                                      written, method=method, target=target, bytes=len(head),
                                      trace_id=trace_id)
                        if payload:
                            tracer.record(Step.REQUEST_BODY, "client", sent_ns, conn.conn_id,
                                          written, bytes=len(payload))
                else:
                    waiter = conn.start(response, head, head=method == "HEAD", stream=stream,
                                        read_timeout=t.read, deadline=deadline,
                                        must_close=must_close,
                                        waiting=False)
                    if tracer is not None:
                        tracer.record(Step.REQUEST_HEADERS, "client", sent_ns, conn.conn_id,
                                      conn.written_ns, method=method, target=target,
                                      bytes=len(head), trace_id=trace_id)
                    body_ns = time.monotonic_ns() if tracer is not None else 0
                    sent = await _send_stream(conn, body_stream, framing.chunked, t.write)
                    if conn.exchange_open:
                        conn.wait_response()
                    if tracer is not None:
                        conn.written_ns = time.monotonic_ns()
                        tracer.record(Step.REQUEST_BODY, "client", body_ns, conn.conn_id,
                                      conn.written_ns, bytes=sent, chunked=framing.chunked)
                await waiter
            except BaseException as exc:
                if waiter is not None and waiter.done() and not waiter.cancelled():
                    waiter.exception()  # retrieved: the error is raised here, once
                if not response._complete:
                    conn.abandon()
                if (isinstance(exc, ServerDisconnectedError) and exc.before_response
                        and attempt < retries):
                    attempt += 1
                    continue
                raise
            return response

    @asynccontextmanager
    async def stream(self, method: str, url: str, **options: Unpack[StreamOptions]
                     ) -> AsyncIterator[Response]:
        """``async with client.stream("GET", url) as r: async for chunk in r.aiter_bytes()``."""
        response = await self.request(method, url, stream=True, **options)
        try:
            yield response
        finally:
            await response.aclose()

    def _route(self, url: str, transport: TransportInput) -> _Route:
        cache_key = (url, transport)
        route = self._routes.get(cache_key)
        if route is not None:
            return route
        full = url
        if self.base_url is not None and "://" not in url:
            full = self.base_url + (url if url.startswith("/") else "/" + url)
        target: HttpTarget = parse_http_url(full)
        given = target.transport if transport is None else _as_transport(transport)
        assert given is not None and not isinstance(given, UdpAddress)
        if isinstance(given, ServiceAddress):
            route = _Route(None, b"Host: %s\r\n" % given.name.encode("ascii"), target.target,
                           encode_target(target.target), full, given.name)
            self._routes[cache_key] = route
            return route
        address: StreamAddress = given
        server_hostname = None
        if target.tls:
            server_hostname = _hostname(target)
            if isinstance(address, TcpAddress) and not address.tls:
                address = TcpAddress(address.host, address.port, tls=True)
        elif isinstance(address, TcpAddress) and address.tls:
            server_hostname = address.host  # tls://host:port as transport for an http URL
        key: PoolKey = (address, target.tls or (isinstance(address, TcpAddress)
                                                and address.tls), server_hostname)
        route = _Route(key, b"Host: %s\r\n" % target.host.encode("idna" if not
                                                                   target.host.isascii()
                                                                   else "ascii"),
                       target.target, encode_target(target.target), full)
        if len(self._routes) >= _URL_CACHE_SIZE:
            self._routes.clear()
        self._routes[cache_key] = route
        return route

    def _pool_for(self, key: PoolKey) -> Pool:
        return self._pools.get(key) or self._pool(key)

    def _pool(self, key: PoolKey) -> Pool:
        ssl_context = None
        if key[1]:
            if self._ssl is None:
                self._ssl = http_client_tls_context(self._verify, self._cert)
            ssl_context = self._ssl
        pool = self._pools[key] = Pool(key, self.limits, ssl_context, self.resolver)
        return pool

    # ------------------------------------------------------------------ lifecycle

    @property
    def pools(self) -> dict[PoolKey, Pool]:
        return self._pools

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        await self._named.aclose()  # the resolver, when it made its own
        await asyncio.sleep(0)  # let the transports run their close callbacks

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- helpers


async def _send_stream(conn: Any, body: Iterable[bytes] | AsyncIterable[bytes], chunked: bool,
                       write_timeout: float | None) -> int:
    sent = 0
    if isinstance(body, AsyncIterable):
        async for part in body:
            if not conn.exchange_open:
                return sent  # the server answered already; the connection will be closed
            if part:
                await conn.write_body_part(encode_chunk(part) if chunked else bytes(part),
                                           write_timeout)
                sent += len(part)
    else:
        for part in body:
            if not conn.exchange_open:
                return sent
            if part:
                await conn.write_body_part(encode_chunk(part) if chunked else bytes(part),
                                           write_timeout)
                sent += len(part)
    if chunked and conn.exchange_open:
        await conn.write_body_part(CHUNK_END, write_timeout)
    return sent


def _as_transport(transport: TransportInput) -> Address | None:
    if transport is None:
        return None
    address = parse_address(transport) if isinstance(transport, str) else transport
    if is_datagram(address):
        raise UnsupportedError(f"{transport}: HTTP needs a stream transport, not datagrams")
    return address


def _hostname(target: HttpTarget) -> str:
    host = target.host
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _least(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


__all__ = ["Client", "Limits", "Response", "Timeout"]
