"""Opening an HTTP client connection: the TLS context, the transport, errors in our words.

Rules:
- TLS verification is on unless ``verify=False``; ``verify=path`` takes a CA file or
  directory; ALPN offers ``http/1.1`` only.
- TLS over a kind other than TCP (a Unix socket, a FIFO) is started on the open transport.
- Every failure is a ``trunkline.errors`` class saying where: a connect or handshake that
  takes too long is a ``ConnectTimeoutError``, a kernel error a ``TransportError``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from ..address import StreamAddress, TcpAddress, format_address
from ..errors import HandshakeError, ResolveError, TransportError, TrunklineTimeoutError
from ..trace.events import Step, Tracer
from ..transport import ConnectOptions, open_transport
from ..transport.tcp import Resolver
from .connection import HttpClientConnection
from .errors import ConnectTimeoutError, tls_handshake_error


def http_client_tls_context(verify: bool | str | ssl.SSLContext = True,
                            cert: str | tuple[str, str] | None = None) -> ssl.SSLContext:
    """A client TLS context: system CAs (verification on) by default, a CA bundle file or
    directory for ``verify=path``, no verification only for ``verify=False``."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        ctx = (ssl.create_default_context(capath=verify) if os.path.isdir(verify)
               else ssl.create_default_context(cafile=verify))
    else:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        ctx.load_cert_chain(certfile, keyfile)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def open_connection(address: StreamAddress, *, tls: bool, server_hostname: str | None,
                          ssl_context: ssl.SSLContext | None, timeout: float | None,
                          tracer: Tracer | None, resolver: Resolver | None = None
                          ) -> HttpClientConnection:
    """Connect to ``address`` (TLS on top when ``tls``) and return an idle connection;
    ``resolver`` looks up a TCP host name instead of the system resolver."""
    loop = asyncio.get_running_loop()
    conn_id = tracer.new_connection() if tracer is not None else 0
    conn = HttpClientConnection(loop, tracer, conn_id)
    where = format_address(address)
    tcp_tls = isinstance(address, TcpAddress)
    if tls and tcp_tls:
        assert isinstance(address, TcpAddress)
        address = TcpAddress(address.host, address.port, tls=True)
    options = ConnectOptions(timeout=timeout, ssl=ssl_context if tls else None,
                             server_hostname=server_hostname)
    try:
        transport, _ = await open_transport(address, lambda: conn, options, tracer, conn_id,
                                            resolver)
        if tls and not tcp_tls:
            assert ssl_context is not None
            t_tls = time.monotonic_ns()
            async with asyncio.timeout(timeout):
                new = await loop.start_tls(transport, conn, ssl_context,
                                           server_hostname=server_hostname)
            if new is None:
                raise HandshakeError(f"TLS over {where} is not possible on this transport")
            conn.transport = new
            if tracer is not None:
                tracer.record(Step.TLS, "client", t_tls, conn_id,
                              version=new.get_extra_info("ssl_object").version())
    except TrunklineTimeoutError as exc:
        raise ConnectTimeoutError(f"connecting to {where} took longer than {timeout} s "
                                  "(connect timeout)") from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(f"the TLS handshake over {where} took longer than "
                                  f"{timeout} s (connect timeout)") from exc
    except HandshakeError as exc:
        raise tls_handshake_error(exc, where) from exc
    except ssl.SSLError as exc:
        raise tls_handshake_error(exc, where) from exc
    except OSError as exc:
        if isinstance(exc, TransportError | ResolveError):
            raise  # already ours (a name that did not resolve says so, exit status 6)
        raise TransportError(exc.errno, f"could not connect to {where}: "
                             f"{exc.strerror or exc}") from exc
    return conn
