"""``X-Forwarded-For`` / ``X-Forwarded-Proto`` from trusted proxies (``--proxy-headers``).

The rules are uvicorn's (``ProxyHeadersMiddleware``), so an app moved between the two servers
sees the same ``client`` and ``scheme``:

- Only a request whose peer is trusted is looked at; anyone else's headers are ignored.
  Trusted: an IP in the list, an IP inside a listed network (``10.0.0.0/8``), or everyone
  with ``*``.
- ``X-Forwarded-Proto`` (``http``, ``https``, ``ws``, ``wss``; anything else is ignored)
  becomes the scope's ``scheme``. An HTTP scope gets ``http``/``https`` (uvicorn would put
  ``wss`` in an HTTP scope, which ASGI does not define); the websocket scope turns them into
  ``ws``/``wss`` as it always does.
- ``X-Forwarded-For`` (all such headers, joined with ``,``): read from the right, the first
  address that is not trusted is the client (each proxy appends the peer it saw); when every
  one is trusted, the leftmost. ``host:port`` and ``[v6]:port`` keep their port, a bare
  address gets port 0. An empty value leaves ``client`` alone.
- Unix socket and FIFO peers have no IP (their scope ``client`` is None). uvicorn trusts them
  only with ``*``: its help names "literals (e.g. UNIX socket path)", but its scope never
  carries a Unix peer's address, so a path in the list matches nothing there. Here a listed
  path that is the listening socket's own (``/run/app.sock``, ``@name`` for an abstract one,
  a FIFO's path) trusts every peer that comes through that socket: the file mode or admit
  list already decides who that is.

Pure functions over the scope dict: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class TrustedProxies:
    """The peers whose forwarding headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        items = [e.strip() for entry in entries for e in entry.split(",") if e.strip()]
        self.everyone = "*" in items
        self.addresses: set[IPAddress] = set()
        self.networks: list[IPNetwork] = []
        self.literals: set[str] = set()  # socket paths and other non-IP names
        for item in items:
            try:
                if "/" in item and not item.startswith(("/", "@")):
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    self.addresses.add(ipaddress.ip_address(item))
            except ValueError:
                self.literals.add(item)
        self._trusts_ip = functools.lru_cache(maxsize=1024)(self._compute)

    def _compute(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host in self.literals
        return ip in self.addresses or any(ip in net for net in self.networks)

    def trusts(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if not host or len(host) > 253:
            return False
        return self._trusts_ip(host)

    def trusts_peer(self, scope: dict[str, Any]) -> bool:
        client = scope.get("client")
        if client:
            return self.trusts(client[0])
        if self.everyone:
            return True
        server = scope.get("server")  # a Unix/FIFO peer: trusted through a listed socket
        return bool(server and server[1] is None and server[0] in self.literals)

    def client_from(self, forwarded_for: str) -> tuple[str, int] | None:
        hosts = [h.strip() for h in forwarded_for.split(",")]
        if not self.everyone:
            for item in reversed(hosts):
                host, port = _host_port(item)
                if not self.trusts(host):
                    return (host, port) if host else None
        host, port = _host_port(hosts[0])
        return (host, port) if host else None


def _host_port(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``; anything odd comes back whole,
    without a port (never normalised into something that might be trusted)."""
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, 0
        host, rest = value[1:end], value[end + 1:]
        if not rest:
            return host, 0
        if not rest.startswith(":"):
            return value, 0
        return (host, int(rest[1:])) if rest[1:].isdigit() else (host, 0)
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return (host, int(port)) if port.isdigit() else (value, 0)
    return value, 0


def apply_forwarded(scope: dict[str, Any], trusted: TrustedProxies) -> None:
    """Set ``scope``'s ``scheme`` and ``client`` from a trusted peer's forwarding headers."""
    if not trusted.trusts_peer(scope):
        return
    proto: bytes | None = None
    forwarded_for: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-proto":
            proto = value
        elif name == b"x-forwarded-for":
            forwarded_for.append(value)
    if proto is not None:
        scheme = _SCHEMES.get(proto.decode("latin-1").strip())
        if scheme is not None:
            scope["scheme"] = scheme
    if forwarded_for:
        client = trusted.client_from(b", ".join(forwarded_for).decode("latin-1"))
        if client is not None:
            scope["client"] = client


__all__ = ["TrustedProxies", "apply_forwarded"]
