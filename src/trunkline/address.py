"""The one address grammar: endpoint URLs to typed values and back. Pure: no I/O.

Rules:
- ``parse_address(format_address(a)) == a`` for every valid address value.
- Every value is validated when it is built, so an invalid one cannot exist.
- Every error names the offending part and shows an accepted example.

    tcp://host:port  tcp://[::1]:port  tls://host:port  udp://host:port
    unix:///abs/path.sock  unix:rel.sock  unix:@abstract
    unixgram:///abs/path  unixgram:@abstract
    fifo:///abs/path  fifo:rel
    fd://3  fd://NAME (systemd LISTEN_FDNAMES)
    svc://name

HTTP and WebSocket URLs (``parse_http_url``) name a transport address plus a Host header and a
request target: ``http://host:port/p``, ``https://…``, ``http+unix://%2Fpath.sock/p``,
``http://unix:/path.sock:/p``, ``http+fifo://%2Fpath/p``, ``ws://``, ``wss://``, ``ws+unix://``,
``ws+fifo://``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from .errors import AddressError, PathTooLongError

#: sun_path is 108 bytes on Linux, one of which is the terminating NUL (or the leading NUL of
#: an abstract name), so 107 bytes of name are usable.
MAX_UNIX_PATH_BYTES = 107

_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
# A service name is one DNS label (RFC 1123, lower case as in Kubernetes service names), so
# it can also serve as a DNS name later; the registry keys its records by it.
_SERVICE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SERVICE_NAME_RULE = ("must be a DNS label: 1 to 63 of a-z, 0-9 and '-', starting and ending "
                     "with a letter or digit")
# systemd FileDescriptorName: no ":" (the LISTEN_FDNAMES separator); a name never looks
# like a number, so fd://3 is always descriptor 3.
_FD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,254}$")

EXAMPLES = {
    "tcp": "tcp://127.0.0.1:8000 or tcp://[::1]:8000",
    "tls": "tls://localhost:8443",
    "udp": "udp://127.0.0.1:9000",
    "unix": "unix:///run/app.sock, unix:app.sock or unix:@app",
    "unixgram": "unixgram:///run/app.dgram or unixgram:@app",
    "fifo": "fifo:///tmp/app.fifo",
    "fd": "fd://3 or fd://web (a systemd LISTEN_FDNAMES name)",
    "svc": "svc://users or svc://billing-v2",
    "http": "http://127.0.0.1:8000/users, http+unix://%2Frun%2Fapp.sock/users "
    "or http://unix:/run/app.sock:/users",
}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class TcpAddress:
    """A TCP (or, with ``tls``, TLS over TCP) endpoint. ``host`` is unbracketed."""

    host: str
    port: int
    tls: bool = False

    def __post_init__(self) -> None:
        scheme = "tls" if self.tls else "tcp"
        _check_host(self.host, scheme)
        _check_port(self.port, scheme)

    @property
    def scheme(self) -> str:
        return "tls" if self.tls else "tcp"


@dataclass(frozen=True)
class UdpAddress:
    host: str
    port: int

    def __post_init__(self) -> None:
        _check_host(self.host, "udp")
        _check_port(self.port, "udp")

    scheme = "udp"


@dataclass(frozen=True)
class UnixAddress:
    """A Unix domain socket: a filesystem path, or (``abstract``) a Linux abstract name."""

    path: str
    abstract: bool = False
    datagram: bool = False

    def __post_init__(self) -> None:
        scheme = self.scheme
        _check_path(self.path, scheme, allow_at=self.abstract)
        object.__setattr__(self, "path", _canonical_path(self.path))

    @property
    def scheme(self) -> str:
        return "unixgram" if self.datagram else "unix"

    @property
    def sockaddr(self) -> str | bytes:
        """What ``socket.bind``/``connect`` take: a path, or NUL-prefixed bytes if abstract."""
        return b"\0" + os.fsencode(self.path) if self.abstract else self.path


@dataclass(frozen=True)
class FifoAddress:
    """Named pipes: a rendezvous FIFO at ``path`` plus a FIFO pair per connection."""

    path: str

    def __post_init__(self) -> None:
        _check_path(self.path, "fifo", allow_at=False)
        object.__setattr__(self, "path", _canonical_path(self.path))

    scheme = "fifo"


@dataclass(frozen=True)
class FdAddress:
    """An inherited socket: a descriptor number, or a systemd ``LISTEN_FDNAMES`` name."""

    fd: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        url = format_address(self)
        if (self.fd is None) == (self.name is None):
            raise AddressError(url, "fd address", "needs exactly one of a number or a name",
                               EXAMPLES["fd"])
        if self.fd is not None and self.fd < 0:
            raise AddressError(url, f"descriptor {self.fd}", "must be >= 0", EXAMPLES["fd"])
        if self.name is not None and not _FD_NAME.match(self.name):
            raise AddressError(url, f"name {self.name!r}",
                               "is not a valid systemd FileDescriptorName", EXAMPLES["fd"])

    scheme = "fd"


@dataclass(frozen=True)
class ServiceAddress:
    """A service name, resolved through the registry to one of the addresses above."""

    name: str

    def __post_init__(self) -> None:
        check_service_name(self.name)

    scheme = "svc"


def check_service_name(name: str) -> str:
    """``name`` if it is a valid service name, else ``AddressError`` naming the rule."""
    if not isinstance(name, str) or not _SERVICE.match(name):
        hint = ""
        if isinstance(name, str) and _SERVICE.match(name.lower().replace("_", "-").replace(
                ".", "-")):
            hint = f" ({name.lower().replace('_', '-').replace('.', '-')!r} would do)"
        raise AddressError(f"svc://{name}", f"service name {name!r}",
                           SERVICE_NAME_RULE + hint, EXAMPLES["svc"])
    return name


Address = TcpAddress | UdpAddress | UnixAddress | FifoAddress | FdAddress | ServiceAddress
StreamAddress = TcpAddress | UnixAddress | FifoAddress | FdAddress


def is_datagram(address: Address) -> bool:
    return isinstance(address, UdpAddress) or (
        isinstance(address, UnixAddress) and address.datagram
    )


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class SocketIdentity:
    """What identifies an IP socket: address, port and transport protocol."""

    ip: str
    port: int
    protocol: Literal["tcp", "udp"]

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.protocol} {host}:{self.port}"


@dataclass(frozen=True)
class UnixIdentity:
    """One end of a Unix socket. ``path`` is empty for an unnamed (unbound client) socket."""

    path: str
    abstract: bool = False
    datagram: bool = False

    def __str__(self) -> str:
        kind = "unixgram" if self.datagram else "unix"
        if not self.path:
            return f"{kind} (unnamed)"
        return f"{kind} @{self.path}" if self.abstract else f"{kind} {self.path}"


@dataclass(frozen=True)
class FifoIdentity:
    """One end of a FIFO connection: the pipe it reads from and the one it writes to."""

    read_path: str
    write_path: str

    def __str__(self) -> str:
        return f"fifo {self.read_path} / {self.write_path}"


@dataclass(frozen=True)
class PeerCredentials:
    """The peer process of a local connection (SO_PEERCRED, or FIFO file ownership)."""

    pid: int | None
    uid: int
    gid: int


Identity = SocketIdentity | UnixIdentity | FifoIdentity


# --------------------------------------------------------------------------- parsing


def parse_address(url: str) -> Address:
    """Parse an endpoint URL into its typed address; raises ``AddressError``."""
    if not isinstance(url, str) or not url:
        raise AddressError(str(url), "address", "is empty", EXAMPLES["tcp"])
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise AddressError(url, "scheme", "is missing", EXAMPLES["tcp"])
    scheme = scheme.lower()
    if scheme in ("tcp", "tls", "udp"):
        host, port = _parse_authority(url, scheme, rest)
        if scheme == "udp":
            return UdpAddress(host, port)
        return TcpAddress(host, port, tls=scheme == "tls")
    if scheme in ("unix", "unixgram"):
        path, abstract = _parse_local_path(url, scheme, rest, allow_abstract=True)
        return UnixAddress(path, abstract=abstract, datagram=scheme == "unixgram")
    if scheme == "fifo":
        path, _ = _parse_local_path(url, scheme, rest, allow_abstract=False)
        return FifoAddress(path)
    if scheme == "fd":
        body = _strip_slashes(url, scheme, rest)
        if _is_number(body):
            return FdAddress(fd=int(body))
        return FdAddress(name=body)
    if scheme == "svc":
        return ServiceAddress(_strip_slashes(url, scheme, rest))
    if scheme in _HTTP_SCHEMES or "+" in scheme:
        raise AddressError(url, f"scheme {scheme!r}",
                           "is an HTTP/WebSocket URL; use it where a URL to call is expected",
                           EXAMPLES["tcp"])
    raise AddressError(url, f"scheme {scheme!r}", "is not one trunkline knows",
                       "; ".join(EXAMPLES[k] for k in ("tcp", "unix", "fifo")))


def format_address(address: Address) -> str:
    """The canonical URL of an address (the inverse of ``parse_address``)."""
    if isinstance(address, TcpAddress | UdpAddress):
        return f"{address.scheme}://{format_hostport(address.host, address.port)}"
    if isinstance(address, UnixAddress):
        if address.abstract:
            return f"{address.scheme}:@{address.path}"
        return _format_path(address.scheme, address.path)
    if isinstance(address, FifoAddress):
        return _format_path("fifo", address.path)
    if isinstance(address, FdAddress):
        return f"fd://{address.fd if address.fd is not None else address.name}"
    if isinstance(address, ServiceAddress):
        return f"svc://{address.name}"
    raise TypeError(f"not an address: {address!r}")


def format_hostport(host: str, port: int) -> str:
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{port}"
    return f"{host}:{port}"


def _format_path(scheme: str, path: str) -> str:
    return f"{scheme}://{path}" if path.startswith("/") else f"{scheme}:{path}"


def _strip_slashes(url: str, scheme: str, rest: str) -> str:
    if not rest.startswith("//") or len(rest) == 2:
        raise AddressError(url, "authority", "must follow '//'", EXAMPLES[scheme])
    return rest[2:]


def _parse_authority(url: str, scheme: str, rest: str) -> tuple[str, int]:
    body = _strip_slashes(url, scheme, rest)
    if "@" in body:  # never drop it silently: it would look as if it were sent somewhere
        raise AddressError(url, f"userinfo {body.rpartition('@')[0] + '@'!r}",
                           f"has no place in a {scheme} address (a socket carries no "
                           "credentials; give them to the protocol, e.g. call -u USER:PASS)",
                           EXAMPLES[scheme])
    if "/" in body or "?" in body or "#" in body:
        raise AddressError(url, f"{body!r}", "must be host:port with no path", EXAMPLES[scheme])
    if body.startswith("["):
        end = body.find("]")
        if end < 0:
            raise AddressError(url, "IPv6 host", "is missing its closing ']'", EXAMPLES[scheme])
        host, tail = body[1:end].replace("%25", "%"), body[end + 1 :]
        if not _is_ipv6(host):
            raise AddressError(url, f"host [{host}]", "is not an IPv6 address", EXAMPLES[scheme])
        if not tail.startswith(":"):
            raise AddressError(url, "port", "is missing", EXAMPLES[scheme])
        port_text = tail[1:]
    else:
        host, sep, port_text = body.rpartition(":")
        if not sep:
            raise AddressError(url, "port", "is missing", EXAMPLES[scheme])
        if ":" in host:
            raise AddressError(url, f"host {host!r}", "is IPv6 and must be in brackets",
                               EXAMPLES[scheme])
    if not _is_number(port_text, max_digits=5):
        raise AddressError(url, f"port {port_text!r}", "is not a number from 0 to 65535",
                           EXAMPLES[scheme])
    return host, int(port_text)


def _parse_local_path(url: str, scheme: str, rest: str, *, allow_abstract: bool
                      ) -> tuple[str, bool]:
    if rest.startswith("//"):
        path = rest[2:]
        if not path.startswith("/"):
            raise AddressError(url, f"{path!r}",
                               "after '//' must be an absolute path (three slashes in all)",
                               EXAMPLES[scheme])
        return path, False
    if rest.startswith("@"):
        if not allow_abstract:
            raise AddressError(url, "'@' name", f"is an abstract socket; {scheme} needs a path",
                               EXAMPLES[scheme])
        return rest[1:], True
    return rest, False


def _check_host(host: str, scheme: str) -> None:
    url = f"{scheme}://{format_hostport(host, 0) if host else ''}"
    if not host:
        raise AddressError(url, "host", "is empty", EXAMPLES[scheme])
    if ":" in host:
        if not _is_ipv6(host):
            raise AddressError(url, f"host {host!r}", "is not an IPv6 address", EXAMPLES[scheme])
        return
    if not _HOSTNAME.match(host):
        raise AddressError(url, f"host {host!r}", "is not a hostname or IP address",
                           EXAMPLES[scheme])


def _check_port(port: int, scheme: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise AddressError(f"{scheme}://…:{port}", f"port {port!r}",
                           "is not a number from 0 to 65535", EXAMPLES[scheme])


def _check_path(path: str, scheme: str, *, allow_at: bool) -> None:
    url = f"{scheme}:@{path}" if allow_at else _format_path(scheme, path)
    if not path:
        raise AddressError(url, "path", "is empty", EXAMPLES[scheme])
    if "\0" in path:
        raise AddressError(url, "path", "contains a NUL byte", EXAMPLES[scheme])
    if not allow_at and path.startswith("@"):
        raise AddressError(url, f"relative path {path!r}",
                           "starts with '@', which means an abstract name; write './" + path + "'",
                           EXAMPLES[scheme])
    try:
        size = len(path.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError as exc:
        raise AddressError(url, "path", "is not valid Unicode (a lone surrogate)",
                           EXAMPLES[scheme]) from exc
    if scheme != "fifo" and size > MAX_UNIX_PATH_BYTES:
        raise PathTooLongError(url, f"path ({size} bytes)",
                               f"is longer than the kernel's {MAX_UNIX_PATH_BYTES}-byte limit "
                               "for socket paths; use a shorter path or an abstract name",
                               EXAMPLES[scheme])


def _canonical_path(path: str) -> str:
    """One spelling per byte string: paths are bytes to the kernel, and bytes that are not
    UTF-8 come as surrogate escapes (os.fsdecode), so "\\udcc3\\udca9" is the same file as
    "é". Decoding the bytes again gives the spelling every other path has."""
    return path if path.isascii() else os.fsdecode(os.fsencode(path))


def _is_number(text: str, max_digits: int = 10) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() rejects or
    silently converts; the length cap keeps int() within its digit limit."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- HTTP URLs

_HTTP_SCHEMES = {"http": (80, False), "https": (443, True), "ws": (80, False), "wss": (443, True)}


@dataclass(frozen=True)
class HttpTarget:
    """An HTTP or WebSocket URL split into where to connect and what to ask for."""

    scheme: Literal["http", "https", "ws", "wss"]
    transport: StreamAddress | ServiceAddress
    host: str  # the Host header value
    target: str  # the request target: path plus query, always starting with '/'

    @property
    def is_websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def tls(self) -> bool:
        return self.scheme in ("https", "wss")


def parse_http_url(url: str) -> HttpTarget:
    """Parse an HTTP/WebSocket URL of any form in the grammar into an ``HttpTarget``."""
    scheme_text, sep, rest = url.partition("://")
    if not sep:
        raise AddressError(url, "scheme", "is missing", EXAMPLES["http"])
    scheme_text = scheme_text.lower()
    base, _, via = scheme_text.partition("+")
    if base not in _HTTP_SCHEMES:
        raise AddressError(url, f"scheme {scheme_text!r}", "is not http, https, ws or wss",
                           EXAMPLES["http"])
    default_port, tls = _HTTP_SCHEMES[base]
    rest = rest.split("#", 1)[0]  # the fragment never goes on the wire (http://h#top too)
    authority, slash, path = rest.partition("/")
    target = "/" + path if slash else "/"
    if "?" in authority and not slash:  # http://host?x=1
        authority, _, query = authority.partition("?")
        target = "/?" + query
    transport: StreamAddress | ServiceAddress
    if via in ("unix", "fifo"):
        # surrogateescape: a byte that is not UTF-8 (%FF) is that byte of the path, as
        # os.fsdecode spells it, not U+FFFD (another file)
        local = unquote(authority, errors="surrogateescape")
        if not local:
            raise AddressError(url, "socket path", "is empty (percent-encode it as the host)",
                               EXAMPLES["http"])
        if via == "unix":
            abstract = local.startswith("@")
            transport = UnixAddress(local[1:] if abstract else local, abstract=abstract)
        else:
            transport = FifoAddress(local)
        host = "localhost"
    elif via == "svc":  # a service name: the registry picks the socket for this caller
        if not authority:
            raise AddressError(url, "service name", "is empty", "http+svc://users/path")
        transport = ServiceAddress(authority)
        host = authority
    elif via:
        raise AddressError(url, f"'+{via}'", "is not a transport (use +unix, +fifo or +svc)",
                           EXAMPLES["http"])
    elif authority.startswith("unix:") and not authority[5:].isdigit():  # not host "unix":port
        # http://unix:/path.sock:/p -- the form used by got, docker-modem and others.
        sock, colon, request = rest[len("unix:"):].partition(":")
        if not colon or not sock:
            raise AddressError(url, "unix socket path", "must be followed by ':/path'",
                               "http://unix:/run/app.sock:/users")
        transport = UnixAddress(sock)
        host = "localhost"
        target = request if request.startswith("/") else "/" + request
    else:
        if "@" in authority:
            raise AddressError(url, "userinfo", "is not supported in the URL; send an "
                               "Authorization header instead", EXAMPLES["http"])
        if not authority:
            raise AddressError(url, "host", "is empty", EXAMPLES["http"])
        if authority.startswith("["):
            h, p = _parse_authority(url, "tcp", "//" + (authority if "]:" in authority
                                                        else f"{authority}:{default_port}"))
        elif ":" in authority:
            h, p = _parse_authority(url, "tcp", "//" + authority)
        else:
            h, p = authority, default_port
        transport = TcpAddress(h, p, tls=tls)
        host = authority
    if "#" in target:
        target = target.split("#", 1)[0]
    return HttpTarget(base, transport, host, target)  # type: ignore[arg-type]


def _quote_path(path: str) -> str:
    """A socket path as a URL host: every byte but unreserved ones percent-encoded, bytes
    that are not UTF-8 included (parse_http_url decodes them back the same way)."""
    return quote(os.fsencode(path), safe="")


def format_http_url(target: HttpTarget) -> str:
    """A URL for the target in the grammar's canonical form."""
    t = target.transport
    if isinstance(t, TcpAddress):
        return f"{target.scheme}://{target.host}{target.target}"
    if isinstance(t, UnixAddress):
        name = ("@" + t.path) if t.abstract else t.path
        return f"{target.scheme}+unix://{_quote_path(name)}{target.target}"
    if isinstance(t, FifoAddress):
        return f"{target.scheme}+fifo://{_quote_path(t.path)}{target.target}"
    if isinstance(t, ServiceAddress):
        return f"{target.scheme}+svc://{t.name}{target.target}"
    return f"{target.scheme}://{format_address(t)}{target.target}"
