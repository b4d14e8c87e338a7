"""The kernel's socket tables of this network namespace, read over sock_diag with pyroute2.

One netlink interface for every kind the map shows: inet_diag for TCP and UDP (IPv4 and
IPv6), unix_diag for Unix stream, datagram and seqpacket sockets. Each row carries the
socket's inode (the key that joins it to the processes holding it, see ``procfs``) and its
owner uid; Unix rows carry the peer's inode (UNIX_DIAG_PEER), which is how the map pairs
Unix sockets. sock_diag works without root and shows every socket of the namespace.

pyroute2's stock Unix message decodes the name as a C string, which drops the leading NUL
of an abstract name (``@name`` and the path ``name`` would look alike), and it does not know
UNIX_DIAG_UID; ``_UnixDiagMessage`` reads the name as bytes and adds the uid.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import TransportError, UnsupportedError

# ss's names for the kernel's TCP states (include/net/tcp_states.h)
TCP_STATES = {1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
              6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW-SYN-RECV"}
_UNIX_KINDS = {socket.SOCK_STREAM: "unix", socket.SOCK_DGRAM: "unixgram",
               socket.SOCK_SEQPACKET: "unixseq"}
_UDIAG_SHOW_NAME, _UDIAG_SHOW_VFS, _UDIAG_SHOW_PEER, _UDIAG_SHOW_UID = 0x01, 0x02, 0x04, 0x40
_ALL_STATES = (1 << 13) - 1


@dataclass(frozen=True)
class InetRow:
    kind: str  # "tcp" or "udp"
    family: str  # "ipv4" or "ipv6"
    state: str
    local_ip: str  # v4-mapped IPv6 addresses are given as IPv4
    local_port: int
    remote_ip: str
    remote_port: int  # 0: no remote (listening, unconnected UDP)
    inode: int
    uid: int


@dataclass(frozen=True)
class UnixRow:
    kind: str  # "unix", "unixgram" or "unixseq"
    state: str
    name: str  # "/path", "@abstract", or "" when unnamed
    inode: int
    peer_inode: int | None
    uid: int | None


def _pyroute2() -> Any:
    try:
        from pyroute2.netlink.diag import DiagSocket, MarshalDiag, unix_diag_msg
    except ImportError as exc:
        raise UnsupportedError(
            "trunkline map needs pyroute2 to read the kernel's socket tables (sock_diag): "
            "pip install 'trunkline[map]'") from exc

    class _UnixDiagMessage(unix_diag_msg):  # type: ignore[misc]
        nla_map = (
            ("UNIX_DIAG_NAME", "cdata"),  # raw bytes: keeps an abstract name's leading NUL
            ("UNIX_DIAG_VFS", "unix_diag_vfs"),
            ("UNIX_DIAG_PEER", "uint32"),
            ("UNIX_DIAG_ICONS", "hex"),
            ("UNIX_DIAG_RQLEN", "unix_diag_rqlen"),
            ("UNIX_DIAG_MEMINFO", "hex"),
            ("UNIX_DIAG_SHUTDOWN", "uint8"),
            ("UNIX_DIAG_UID", "uint32"),
        )

    class _Marshal(MarshalDiag):  # type: ignore[misc]
        msg_map = {**MarshalDiag.msg_map, socket.AF_UNIX: _UnixDiagMessage}

    return DiagSocket, _Marshal


def read_tables() -> tuple[list[InetRow], list[UnixRow]]:
    """Every TCP, UDP and Unix socket of the caller's network namespace."""
    diag_socket, marshal = _pyroute2()
    try:
        with diag_socket() as diag:
            diag.set_marshal(marshal())
            diag.bind()
            inet = [row for family in (socket.AF_INET, socket.AF_INET6)
                    for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP)
                    for row in _inet_rows(diag, family, proto)]
            unix = [_unix_row(m) for m in diag.get_sock_stats(
                family=socket.AF_UNIX, states=_ALL_STATES,
                show=_UDIAG_SHOW_NAME | _UDIAG_SHOW_VFS | _UDIAG_SHOW_PEER | _UDIAG_SHOW_UID)]
    except OSError as exc:
        raise TransportError(exc.errno, "cannot read the kernel's socket tables over "
                             f"sock_diag: {exc.strerror or exc}") from exc
    return inet, [row for row in unix if row is not None]


def _inet_rows(diag: Any, family: int, proto: int) -> list[InetRow]:
    rows = []
    kind = "tcp" if proto == socket.IPPROTO_TCP else "udp"
    for m in diag.get_sock_stats(family=family, protocol=proto, states=_ALL_STATES):
        state = TCP_STATES.get(m["idiag_state"], str(m["idiag_state"]))
        rows.append(InetRow(
            kind=kind, family="ipv4" if family == socket.AF_INET else "ipv6", state=state,
            local_ip=plain_ip(m["idiag_src"]), local_port=m["idiag_sport"],
            remote_ip=plain_ip(m["idiag_dst"]), remote_port=m["idiag_dport"],
            inode=m["idiag_inode"], uid=m["idiag_uid"]))
    return rows


def _unix_row(m: Any) -> UnixRow | None:
    kind = _UNIX_KINDS.get(m["udiag_type"])
    if kind is None:
        return None
    peer = m.get_attr("UNIX_DIAG_PEER") or None
    state = TCP_STATES.get(m["udiag_state"], str(m["udiag_state"]))
    if kind == "unixgram":
        # connect() on a datagram socket marks both ends ESTABLISHED (since Linux 5.x); only
        # the one that connected has a peer
        state = "ESTAB" if peer else "UNCONN"
    return UnixRow(kind=kind, state=state, name=unix_name(m.get_attr("UNIX_DIAG_NAME")),
                   inode=m["udiag_ino"], peer_inode=peer, uid=m.get_attr("UNIX_DIAG_UID"))


def unix_name(raw: bytes | None) -> str:
    """A Unix socket name as trunkline's URLs write it: "/path", "@abstract" or ""."""
    if not raw:
        return ""
    if raw[:1] == b"\0":  # abstract: every byte counts, NULs inside shown as '@' (as ss does)
        return "@" + raw[1:].replace(b"\0", b"@").decode("utf-8", "backslashreplace")
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def plain_ip(text: str) -> str:
    """``::ffff:127.0.0.1`` as ``127.0.0.1``, so both ends of a v4 connection compare equal
    whether a socket is IPv4 or dual-stack IPv6."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def endpoint(ip: str, port: int) -> str:
    """``127.0.0.1:7000`` or ``[::1]:7000``."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
