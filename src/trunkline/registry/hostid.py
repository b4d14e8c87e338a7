"""Who "this host" is, for each socket kind: boot id and namespace inodes from /proc.

Two processes can reach each other's sockets of a kind when the kernel object behind the
name is shared between them:

- abstract Unix names and loopback TCP/UDP live in a network namespace;
- Unix socket paths and FIFOs are files, so they need the same filesystem view (mount
  namespace);
- a pid names a process only within one pid namespace.

Namespace inode numbers are unique only while the machine runs, so every comparison also
needs the same boot id. A process whose /proc lacks these files gets empty values, which
never match: it is treated as another host (TCP on a non-loopback address only).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _namespace(kind: str, pid: int | str = "self") -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """Where a process stands: the machine's boot, its namespaces and its host name."""

    hostname: str
    boot_id: str
    net_ns: int
    mnt_ns: int
    pid_ns: int

    @classmethod
    def current(cls) -> HostIdentity:
        """This process's identity (read afresh: a process may have changed namespace)."""
        return cls(socket.gethostname(), _read(_BOOT_ID), _namespace("net"), _namespace("mnt"),
                   _namespace("pid"))

    def same_boot(self, other: HostIdentity) -> bool:
        return bool(self.boot_id) and self.boot_id == other.boot_id

    def same_network(self, other: HostIdentity) -> bool:
        """Abstract Unix names and loopback addresses reach across."""
        return self.same_boot(other) and self.net_ns != 0 and self.net_ns == other.net_ns

    def same_filesystem(self, other: HostIdentity) -> bool:
        """Unix socket paths and FIFOs reach across."""
        return self.same_boot(other) and self.mnt_ns != 0 and self.mnt_ns == other.mnt_ns

    def same_pids(self, other: HostIdentity) -> bool:
        """A pid of ``other`` names the same process here."""
        return self.same_boot(other) and self.pid_ns != 0 and self.pid_ns == other.pid_ns

    def describe(self) -> str:
        """Short form for tables: ``hostname (net 4026531840)``."""
        return f"{self.hostname} (net {self.net_ns})"

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "boot_id": self.boot_id, "net_ns": self.net_ns,
                "mnt_ns": self.mnt_ns, "pid_ns": self.pid_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostIdentity:
        return cls(str(data["hostname"]), str(data["boot_id"]), int(data["net_ns"]),
                   int(data["mnt_ns"]), int(data["pid_ns"]))


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (state) on, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and ')' itself: split after its last ')'
    return stat[stat.rfind(b")") + 2:].split()


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, /proc/PID/stat field 22), or
    None when there is no such process. With the boot id it tells a reused pid apart."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether the process that registered (``pid``, started at ``start_ticks``) still runs
    here. Only meaningful for a record from the same pid namespace (``same_pids``)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False  # gone, or a zombie: it accepts nothing any more
    if start_ticks is None:
        return True
    try:
        return int(fields[19]) == start_ticks  # else the pid was reused by another process
    except (IndexError, ValueError):
        return True
