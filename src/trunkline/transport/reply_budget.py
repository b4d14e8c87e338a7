"""How much of a unixgram server's send buffer one peer may hold (issue 10.3).

A datagram sent over a Unix socket stays charged to the *sender's* send buffer until the
receiver reads it. A peer that never reads its replies therefore fills our buffer, and then
every send fails with EAGAIN: one client stalls replies to all the others. The kernel bounds
how many datagrams an unconnected peer queues (``net.unix.max_dgram_qlen``), but not bytes,
and not at all for a peer connected to us.

So each destination gets a budget: at most ``per_peer`` bytes (a quarter of the buffer) of
our datagrams it has not been seen to read. A send beyond it is refused (the caller drops
and counts it) unless the peer is shown to have read what it had:

- nothing at all is unread (``SIOCOUTQ`` on our socket is 0): every budget is whole again;
- what is unread in total bounds what any one peer holds (a cheap ``SIOCOUTQ`` read);
- the kernel's view of the peer's receive queue (sock_diag, ``unix_diag``) is empty.

When the unread total nears the buffer (``pressure``: three quarters), every send needs that
showing, so any number of non-reading peers hold at most that much, and a peer that reads
still gets its replies. Amounts are estimates of the kernel's charge (``skb->truesize``),
so budgets are close, not exact. Without sock_diag (some sandboxes) only the first two
showings exist, and under a non-reading peer the others lose replies past their budget.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import termios
import time
from typing import Any

from .unix_diag import SocketRef, UnixDiag

_INT = struct.Struct("i")
_SHINFO = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64
_SKB = 256  # SKB_TRUESIZE overhead: struct sk_buff and its alignment
_MAX_LINEAR = 16 * 1024 - _SHINFO  # SKB_MAX_ALLOC: beyond it the kernel adds pages
_MAX_PAGED = 17 * 4096  # MAX_SKB_FRAGS * PAGE_SIZE
_PEERS_KEPT = 1024  # past this many destinations with a balance, forget the settled ones
_DUMPS_PER_SECOND = 20.0  # dumps of every Unix socket (to find a new peer's), on average,
_DUMP_BURST = 8.0  # ... and at most this many at once


def charge(size: int) -> int:
    """What the kernel charges our send buffer for one ``size``-byte unixgram datagram."""
    if size <= _MAX_LINEAR:
        return _LINEAR[(size + _SHINFO - 1).bit_length()]
    paged = min(size - _MAX_LINEAR, _MAX_PAGED)
    paged = (paged + 4095) & ~4095
    return (1 << (size - paged + _SHINFO - 1).bit_length()) + _SKB + paged


# a linear datagram's data buffer is a power of two (kmalloc): one charge per bit length
_LINEAR = [(1 << bits) + _SKB for bits in range((_MAX_LINEAR + _SHINFO).bit_length() + 1)]


class PeerBacklogError(BlockingIOError):
    """A datagram to ``peer`` was not sent: it has not read enough of what it was sent."""

    def __init__(self, peer: Any) -> None:
        super().__init__(errno.EAGAIN, "the peer has not read the datagrams it was sent")
        self.peer = peer


class ReplyBudget:
    """Per-destination send budgets for one unconnected unixgram socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._fd = sock.fileno()
        self.sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.per_peer = self.sndbuf // 4
        self.pressure = self.sndbuf * 3 // 4
        self._held: dict[Any, int] = {}  # destination -> upper bound of its unread bytes
        self._empty_sent: set[Any] = set()  # sent an empty datagram: diag cannot see it
        self._unread = 0  # upper bound of our unread bytes in total (SIOCOUTQ plus since)
        self._diag: UnixDiag | None = None
        self._refs: dict[Any, SocketRef] = {}
        self._dump_tokens = _DUMP_BURST
        self._dump_time = time.monotonic()

    def take(self, peer: Any, size: int) -> int:
        """Charge ``peer`` for a ``size``-byte datagram if it may be sent now: the charge, else
        0. One call per send: a send that then fails gives the charge back (``refund``)."""
        cost = _LINEAR[(size + _SHINFO - 1).bit_length()] if size <= _MAX_LINEAR else (
            charge(size))
        held = self._held
        before = held.get(peer, 0)
        if not ((before == 0 or before + cost <= self.per_peer)
                and self._unread + cost <= self.pressure):
            if not self._allows_after_all(peer, cost):
                return 0
            before = held.get(peer, 0)  # (the showing may have settled it)
        held[peer] = before + cost
        self._unread += cost
        if before == 0 and len(held) > _PEERS_KEPT:  # a new destination
            self._settle_all()
        return cost

    def refund(self, peer: Any, cost: int) -> None:
        """``take`` charged ``cost`` for a datagram that was not sent after all."""
        self._unread = max(0, self._unread - cost)
        left = self._held.get(peer, 0) - cost
        if left > 0:
            self._held[peer] = left
        else:
            self._held.pop(peer, None)

    def sent_empty(self, peer: Any) -> None:
        """An empty datagram went to ``peer``: sock_diag cannot see it in its queue."""
        self._empty_sent.add(peer)

    def _allows_after_all(self, peer: Any, cost: int) -> bool:
        unread = self._measure()  # the estimates said no: look at the real figures
        self._clamp(peer, unread)
        if self._fits(peer, cost, unread):
            return True
        if self._held.get(peer, 0) == 0:
            # Nothing of ours is unread there (a new peer, or one seen to read): keep a
            # peer's budget in reserve for peers seen to read, then ask the kernel.
            return unread + cost <= self.sndbuf - self.per_peer or self._read_everything(peer)
        if self._read_everything(peer):
            self._held.pop(peer, None)
            return True
        return False

    def _fits(self, peer: Any, cost: int, unread: int) -> bool:
        held = self._held.get(peer, 0)
        return (held == 0 or held + cost <= self.per_peer) and unread + cost <= self.pressure

    def forget(self, peer: Any) -> None:
        """``peer`` is gone (the kernel refused to send to it): so is what it held."""
        self._held.pop(peer, None)
        self._empty_sent.discard(peer)
        self._refs.pop(peer, None)

    def close(self) -> None:
        if self._diag is not None:
            self._diag.close()

    # ---- showing that peers have read

    def _measure(self) -> int:
        """Our unread total from the kernel; budgets clamped to it (none can hold more)."""
        try:
            unread: int = _INT.unpack(fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return self._unread
        self._unread = unread
        if unread == 0:
            self._held.clear()
            self._empty_sent.clear()
        return unread

    def _clamp(self, peer: Any, unread: int) -> None:
        if self._held.get(peer, 0) > unread:
            self._held[peer] = unread

    def _read_everything(self, peer: Any) -> bool:
        """Whether ``peer``'s receive queue is empty now (or the peer is gone)."""
        self._clamp(peer, self._unread)
        if peer in self._empty_sent:
            return False  # an unread empty datagram looks like an empty queue
        diag = self._diag_socket()
        if diag is None or not isinstance(peer, str | bytes) or not peer:
            return False
        ref = self._refs.get(peer)
        if ref is None:
            self._dump(peer)
            ref = self._refs.get(peer)
            if ref is None:
                return False  # not found by a dump just now, or too soon to dump again
        queued = diag.queued(ref)
        if queued is None:  # that socket is gone, and its queue with it
            self.forget(peer)
            return True
        return not queued

    def _diag_socket(self) -> UnixDiag | None:
        if self._diag is None:
            self._diag = UnixDiag()
        return self._diag if self._diag.available else None

    def _dump(self, also: Any = None) -> dict[Any, tuple[SocketRef, bool]]:
        """The kernel's view of our destinations (and ``also``); those it does not know are
        gone (or in another network namespace, where sock_diag cannot see: then we cannot
        bound them) and are forgotten. A dump walks every Unix socket of the namespace, so
        they are rationed (a token bucket): a flood of new peers cannot make us spin."""
        now = time.monotonic()
        self._dump_tokens = min(_DUMP_BURST, self._dump_tokens
                                + (now - self._dump_time) * _DUMPS_PER_SECOND)
        self._dump_time = now
        diag = self._diag_socket()
        if diag is None or self._dump_tokens < 1:
            return {}
        self._dump_tokens -= 1
        wanted = {p for p in (*self._held, also) if isinstance(p, str | bytes) and p}
        found = diag.dump(wanted)
        self._refs = {name: ref for name, (ref, _) in found.items()}
        for peer in wanted - found.keys():  # no such socket in this network namespace
            self._held.pop(peer, None)
        return found

    def _settle_all(self) -> None:
        """Forget destinations whose queues are empty (or that are gone): the table of
        balances stays small however many peers come and go."""
        found = self._dump()
        for peer, (_, queued) in found.items():
            if not queued and peer not in self._empty_sent:
                self._held.pop(peer, None)
        if len(self._held) > _PEERS_KEPT:  # no dump possible: keep the largest debtors
            keep = sorted(self._held.items(), key=lambda item: item[1])[-_PEERS_KEPT // 2:]
            self._held = dict(keep)


__all__ = ["PeerBacklogError", "ReplyBudget", "charge"]
