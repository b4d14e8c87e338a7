"""The addresses of this host's network interfaces (psutil), for two jobs:

- a server bound to a wildcard (``tcp://0.0.0.0:PORT``, ``tcp://[::]:PORT``) is registered
  with one URL per interface address, because a wildcard is not an address a caller can dial;
- a caller on another host prefers a registered address on a network it is on itself.

IPv6 link-local addresses (fe80::/10) are left out: they need a zone (interface) that is
meaningful only on the host that named it.
"""

from __future__ import annotations

import ipaddress
import socket

from ..address import Address, TcpAddress, UdpAddress, format_address

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

WILDCARDS = {"0.0.0.0": 4, "::": 6}


def local_interfaces() -> list[Interface]:
    """Every IPv4 and (non link-local) IPv6 address of this network namespace, with its
    network, loopback first."""
    import psutil  # imported here: only registration of wildcards and remote ranking need it

    found: list[Interface] = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = addr.address.split("%", 1)[0]
            try:
                interface = ipaddress.ip_interface(f"{ip}/{addr.netmask}" if addr.netmask
                                                   else ip)
            except ValueError:
                continue
            if interface.ip.is_link_local and interface.version == 6:
                continue
            found.append(interface)
    found.sort(key=lambda i: (not i.ip.is_loopback, i.version, int(i.ip)))
    return found


def _dual_stack() -> bool:
    """Whether a socket bound to [::] takes IPv4 too (Linux net.ipv6.bindv6only = 0)."""
    try:
        with open("/proc/sys/net/ipv6/bindv6only", encoding="ascii") as f:
            return f.read().strip() == "0"
    except OSError:
        return True


def expand_wildcard(address: Address, interfaces: list[Interface] | None = None
                    ) -> list[Address]:
    """``address`` itself, or for a TCP/TLS/UDP wildcard one address per interface address
    it accepts connections on (IPv4 ones for 0.0.0.0; IPv6, plus IPv4 when dual-stack, for
    ::)."""
    if not isinstance(address, TcpAddress | UdpAddress) or address.host not in WILDCARDS:
        return [address]
    family = WILDCARDS[address.host]
    versions = {4} if family == 4 else ({4, 6} if _dual_stack() else {6})
    out: list[Address] = []
    for interface in interfaces if interfaces is not None else local_interfaces():
        if interface.version not in versions:
            continue
        host = str(interface.ip)
        if isinstance(address, TcpAddress):
            out.append(TcpAddress(host, address.port, tls=address.tls))
        else:
            out.append(UdpAddress(host, address.port))
    return out or [address]


def expand_urls(addresses: list[Address]) -> list[str]:
    """The registered URL list: wildcards expanded, duplicates dropped, order kept."""
    interfaces: list[Interface] | None = None
    seen: dict[str, None] = {}
    for address in addresses:
        if isinstance(address, TcpAddress | UdpAddress) and address.host in WILDCARDS:
            if interfaces is None:
                interfaces = local_interfaces()
            expanded = expand_wildcard(address, interfaces)
        else:
            expanded = [address]
        for one in expanded:
            seen.setdefault(format_address(one), None)
    return list(seen)
