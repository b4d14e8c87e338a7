"""Which of an instance's addresses this caller should dial, best first, and why.

Order on the same host (measured here, see benchmarks/README.md "Services by name"):

    abstract name  <  Unix path  <  FIFO pair  <  loopback TCP  <  loopback TLS

Per round trip (`trunkline bench pingpong`, same CPU, trunkline p50) a FIFO pair is the
fastest (11.8-12.8 us) against 13.6-16.6 us for the Unix sockets and 19.0-24.4 us for TCP;
but a new FIFO connection (rendezvous, two pipes) plus one round trip takes ~3-4 ms against
~0.1 ms for an abstract name or a Unix path and ~0.25 ms for TCP (benchmarks/registry.py),
so it pays only after some 300 round trips on one connection: it ranks after the Unix
sockets and before TCP; ``prefer="fifo"`` picks it for long-lived connections. Abstract name
and path tie on both counts (within the noise); the name goes first: no file to look up or
to go stale.

From another host (another network namespace): TLS where the instance registered
``tls://``, else TCP, on a non-loopback address; an address on a network this caller has an
interface on comes first. Loopback addresses, abstract names, paths and FIFOs are skipped,
each with the reason.

Datagrams: abstract ``unixgram:@`` < ``unixgram:`` path < loopback UDP < UDP on an address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..address import Address, FifoAddress, TcpAddress, UdpAddress, UnixAddress, parse_address
from ..errors import AddressError
from .hostid import HostIdentity
from .interfaces import Interface
from .model import Instance

#: the names ``prefer=`` takes
KINDS = ("abstract", "unix", "fifo", "tcp", "tls", "unixgram", "udp")
STREAM_KINDS = frozenset({"abstract", "unix", "fifo", "tcp", "tls"})
DATAGRAM_KINDS = frozenset({"abstract", "unixgram", "udp"})

# tiers: lower is better; a preferred kind goes before all of them
_PREFERRED = -1
_ABSTRACT, _UNIX_PATH, _FIFO, _LOOPBACK_TCP, _LOOPBACK_TLS = 0, 1, 2, 3, 4
_OWN_TCP, _OWN_TLS = 5, 6  # same network namespace, an address of its own interfaces
_NEAR_TLS, _NEAR_TCP, _FAR_TLS, _FAR_TCP = 7, 8, 9, 10  # other host


@dataclass(frozen=True, slots=True)
class Candidate:
    """One address of one instance that this caller can dial, and why it ranks where."""

    instance: Instance
    url: str
    address: Address
    kind: str
    tier: int
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """An address this caller cannot use, and why."""

    instance: Instance
    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to "where is service NAME for me": candidates best first (instances with
    equal best tiers take turns at the front), what was skipped, and where it came from."""

    service: str
    candidates: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...]
    instances: int  # live instances seen for the name
    backend: str  # the registry URL
    stale: bool  # the backend is unreachable: this is the last view it gave
    prefer: str | None = None

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


def kind_of(address: Address) -> str:
    if isinstance(address, UnixAddress):
        if address.abstract:
            return "abstract"
        return "unixgram" if address.datagram else "unix"
    return address.scheme


def check_prefer(prefer: str | None) -> str | None:
    if prefer is not None and prefer not in KINDS:
        raise AddressError(f"prefer={prefer}", f"kind {prefer!r}",
                           f"is not one of {', '.join(KINDS)}", "--prefer unix")
    return prefer


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host == "localhost" if ip is None else ip.is_loopback


def _local_tier(address: Address, kind: str, caller: HostIdentity, instance: Instance
                ) -> tuple[int, str] | str:
    """(tier, reason) for a Unix or FIFO address, or the reason it is skipped."""
    if kind == "abstract":
        if caller.same_network(instance.host):
            return _ABSTRACT, "same network namespace: abstract name reachable"
        return "other network namespace: abstract name skipped"
    what = "FIFO pair" if kind == "fifo" else "Unix path"
    if caller.same_filesystem(instance.host):
        return (_FIFO if kind == "fifo" else _UNIX_PATH), f"same mount namespace: {what} reachable"
    return f"other mount namespace: {what} skipped"


def _ip_tier(address: TcpAddress | UdpAddress, kind: str, caller: HostIdentity,
             instance: Instance, networks: Sequence[Interface]) -> tuple[int, str] | str:
    tls = kind == "tls"
    what = kind.upper()
    if _is_loopback(address.host):
        if caller.same_network(instance.host):
            return (_LOOPBACK_TLS if tls else _LOOPBACK_TCP), \
                f"same network namespace: loopback {what} reachable"
        return "other host: loopback skipped"
    if caller.same_network(instance.host):
        return (_OWN_TLS if tls else _OWN_TCP), \
            f"same network namespace: {what} on an address of this host"
    ip = _ip(address.host)
    near = next((n.network for n in networks if ip is not None and ip in n.network
                 and not n.ip.is_loopback), None)
    if near is not None:
        return (_NEAR_TLS if tls else _NEAR_TCP), \
            f"other host: {what} on {near}, a network this caller is on"
    return (_FAR_TLS if tls else _FAR_TCP), f"other host: {what} on a non-loopback address"


def rank_instance(instance: Instance, caller: HostIdentity, *, prefer: str | None = None,
                  datagram: bool = False, networks: Sequence[Interface] = ()
                  ) -> tuple[list[Candidate], list[Skipped]]:
    """The instance's addresses this caller can dial, best first, and those it cannot."""
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    wanted = DATAGRAM_KINDS if datagram else STREAM_KINDS
    for url in instance.urls:
        try:
            address = parse_address(url)
        except AddressError:
            skipped.append(Skipped(instance, url, "not an address this trunkline reads"))
            continue
        kind = kind_of(address)
        is_dgram = isinstance(address, UdpAddress) or (
            isinstance(address, UnixAddress) and address.datagram)
        if kind not in wanted or is_dgram != datagram:
            skipped.append(Skipped(instance, url, "datagram socket: this call needs a stream"
                                   if is_dgram else "stream socket: this call sends datagrams"))
            continue
        if isinstance(address, TcpAddress | UdpAddress):
            ranked = _ip_tier(address, kind, caller, instance, networks)
        elif isinstance(address, UnixAddress | FifoAddress):
            ranked = _local_tier(address, kind, caller, instance)
        else:  # registration refuses fd:// and svc://; a foreign record might hold one
            ranked = f"{kind}:// addresses cannot be dialled by others"
        if isinstance(ranked, str):
            skipped.append(Skipped(instance, url, ranked))
            continue
        tier, reason = ranked
        if prefer is not None and kind == prefer:
            tier, reason = _PREFERRED, f"preferred ({prefer}); {reason}"
        candidates.append(Candidate(instance, url, address, kind, tier, reason))
    candidates.sort(key=lambda c: c.tier)  # stable: registration order breaks ties
    return candidates, skipped


def rank(instances: Iterable[Instance], caller: HostIdentity, *, prefer: str | None = None,
         datagram: bool = False, networks: Sequence[Interface] = ()
         ) -> tuple[list[list[Candidate]], list[Skipped]]:
    """Per instance its candidates best first; instances ordered by their best tier (equal
    tiers in a stable order: the resolver rotates them), those with none left out."""
    groups: list[list[Candidate]] = []
    skipped: list[Skipped] = []
    for instance in instances:
        candidates, lost = rank_instance(instance, caller, prefer=prefer, datagram=datagram,
                                         networks=networks)
        skipped.extend(lost)
        if candidates:
            groups.append(candidates)
    groups.sort(key=lambda g: (g[0].tier, g[0].instance.started, g[0].instance.id))
    return groups, skipped


def rotations(groups: list[list[Candidate]], limit: int = 64) -> list[tuple[Candidate, ...]]:
    """The flat candidate lists the resolver hands out in turn: the instances that share
    the best tier take turns at the front (round-robin); the rest follow in rank order.
    Precomputed, so serving one is an index, not a sort."""
    if not groups:
        return [()]
    best = groups[0][0].tier
    ties = sum(1 for g in groups if g[0].tier == best)
    rest = [c for g in groups[ties:] for c in g]
    out = []
    for turn in range(min(ties, limit)):
        order = groups[turn:ties] + groups[:turn]
        out.append(tuple(c for g in order for c in g) + tuple(rest))
    return out
