"""Name resolution through a named DNS server, as a timed, traceable step.

    resolver = DnsResolver("127.0.0.1:5353")
    stream = await trunkline.connect("tcp://api.test:8000", resolver=resolver, tracer=tracer)

``DnsResolver`` asks one DNS server over UDP for A and AAAA records (dnspython's async
messages and async UDP query; ``pip install 'trunkline[dns]'``) and fits the ``Resolver`` seam of
``trunkline.transport.tcp``: ``await resolver(host, port)`` returns ``[(family, (ip, port))]``.
It records its own RESOLVE event (``records_trace = True``), naming the DNS server it asked,
the query name, the answers and any error, so a trace shows which server answered what.

Errors are trunkline's: NXDOMAIN, no records and an unreachable server raise
``ResolveError``; no answer in time raises ``TrunklineTimeoutError``. The UDP socket is
connected, so a server that is not there ("port unreachable") fails at once rather than
after the timeout.
"""

from __future__ import annotations

import asyncio
import socket
import time

from .errors import ResolveError, TrunklineTimeoutError, UnsupportedError
from .trace.events import Step, Tracer

__all__ = ["DnsResolver", "parse_dns_server"]

_RESEND_AFTER = 1.0  # seconds before a UDP query is sent again


def parse_dns_server(server: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"``, ``"[::1]:53"``, ``"127.0.0.1"`` (port 53) or ``"udp://…"`` to
    (ip, port). The server must be an IP address: resolving the resolver would need a resolver."""
    text = server.strip()
    if text.startswith("udp://"):
        text = text[len("udp://"):]
    host, port_text = text, "53"
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ResolveError(f"bad DNS server {server!r}: missing ']' (example: [::1]:53)")
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ResolveError(f"bad DNS server {server!r}: expected ':port' after ']' "
                                   "(example: [::1]:5353)")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ResolveError(f"bad DNS server {server!r}: port {port_text!r} is not 1-65535 "
                           "(example: 127.0.0.1:5353)") from None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return host, port
        except OSError:
            pass
    raise ResolveError(f"bad DNS server {server!r}: {host!r} is not an IP address "
                       "(example: 127.0.0.1:5353 or [::1]:53)")


class DnsResolver:
    """Resolves names by asking one DNS server over UDP (A, then AAAA answers).

    ``timeout`` bounds the whole lookup (both queries, retries included). ``tracer`` is a
    default for calls that pass none; ``trunkline.transport.tcp.open_tcp`` passes its own.
    """

    #: Tells ``transport.tcp.open_tcp`` that this resolver records its own RESOLVE event.
    records_trace = True

    def __init__(self, server: str, *, timeout: float = 2.0,
                 tracer: Tracer | None = None) -> None:
        try:
            import dns.asyncquery  # noqa: F401  (fail here, not at the first lookup)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UnsupportedError("DnsResolver needs dnspython: pip install 'trunkline[dns]'"
                                   ) from exc
        self.ip, self.port = parse_dns_server(server)
        self.timeout = timeout
        self.tracer = tracer

    @property
    def server(self) -> str:
        """The DNS server's identity, as trace events and error messages show it."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"udp {host}:{self.port}"

    def __repr__(self) -> str:
        return f"DnsResolver({self.server!r})"

    async def __call__(self, host: str, port: int, *, tracer: Tracer | None = None,
                       conn: int = 0) -> list[tuple[int, tuple[str, int]]]:
        tracer = tracer if tracer is not None else self.tracer
        start = time.monotonic_ns()
        try:
            answers = await self.lookup(host)
        except (ResolveError, TrunklineTimeoutError) as exc:
            if tracer is not None:
                tracer.record(Step.RESOLVE, "client", start, conn, host=host,
                              server=self.server, resolver="dns", error=str(exc))
            raise
        if tracer is not None:
            tracer.record(Step.RESOLVE, "client", start, conn, host=host, server=self.server,
                          resolver="dns", answers=answers,
                          addresses=answers["A"] + answers["AAAA"])
        targets: list[tuple[int, tuple[str, int]]] = [
            (socket.AF_INET, (ip, port)) for ip in answers["A"]]
        targets += [(socket.AF_INET6, (ip, port)) for ip in answers["AAAA"]]
        return targets

    async def lookup(self, host: str) -> dict[str, list[str]]:
        """``{"A": [...], "AAAA": [...]}`` for ``host``; raises when there is neither."""
        results = await asyncio.gather(self._query(host, "A"), self._query(host, "AAAA"),
                                       return_exceptions=True)
        answers: dict[str, list[str]] = {"A": [], "AAAA": []}
        errors: list[BaseException] = []
        for rdtype, result in zip(("A", "AAAA"), results, strict=True):
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                answers[rdtype] = result
        if answers["A"] or answers["AAAA"]:
            return answers
        if not errors:
            raise ResolveError(f"{host!r} has no A or AAAA record at DNS server {self.server}")
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # e.g. CancelledError
        ours: list[Exception] = [e for e in errors if isinstance(e, ResolveError)]
        ours += [e for e in errors if isinstance(e, TrunklineTimeoutError)]
        if ours:
            raise ours[0]  # NXDOMAIN or refused says more than a timeout
        raise ResolveError(f"could not resolve {host!r} with DNS server {self.server}: "
                           f"{errors[0]}") from errors[0]

    async def _query(self, host: str, rdtype: str) -> list[str]:
        """One question over a connected UDP socket (so an ICMP 'port unreachable' surfaces
        at once as 'connection refused' instead of a timeout), resent every second."""
        import dns.asyncbackend
        import dns.asyncquery
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        query = dns.message.make_query(host.rstrip(".") + ".", rdtype)
        family = socket.AF_INET6 if ":" in self.ip else socket.AF_INET
        backend = dns.asyncbackend.get_backend("asyncio")
        try:
            sock = await backend.make_socket(  # type: ignore[no-untyped-call]
                family, socket.SOCK_DGRAM, 0, None, (self.ip, self.port))
            response: dns.message.Message | None = None
            async with sock:
                while response is None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TrunklineTimeoutError(
                            f"DNS server {self.server} did not answer for {host!r} within "
                            f"{self.timeout} s; is it running and reachable over UDP?")
                    try:
                        response = await dns.asyncquery.udp(
                            query, self.ip, timeout=min(remaining, _RESEND_AFTER),
                            port=self.port, sock=sock)
                    except dns.exception.Timeout:
                        continue  # resend: a lost datagram is not an answer
            if response.flags & dns.flags.TC:  # too big for UDP: ask again over TCP
                response = await dns.asyncquery.tcp(query, self.ip, port=self.port,
                                                    timeout=max(0.1, deadline - loop.time()))
        except TrunklineTimeoutError:
            raise  # a TimeoutError, hence an OSError too: already says what happened
        except OSError as exc:
            raise ResolveError(f"DNS server {self.server} could not be asked about {host!r}: "
                               f"{(exc.strerror or str(exc)).lower()}; is a DNS server "
                               "running there?") from exc
        except dns.exception.DNSException as exc:
            raise ResolveError(f"DNS server {self.server} sent a bad answer for {host!r}: "
                               f"{exc}") from exc
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise ResolveError(f"{host!r} does not exist (NXDOMAIN from DNS server "
                               f"{self.server}); check the name")
        if rcode != dns.rcode.NOERROR:
            raise ResolveError(f"DNS server {self.server} answered {dns.rcode.to_text(rcode)} "
                               f"for {host!r}")
        wanted = dns.rdatatype.from_text(rdtype)
        # CNAME chains arrive in the same answer section; take every record of the type.
        return [rdata.address for rrset in response.answer if rrset.rdtype == wanted
                for rdata in rrset]
