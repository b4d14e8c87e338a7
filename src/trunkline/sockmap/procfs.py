"""Who holds what: processes (psutil) and their open sockets and FIFOs (/proc/PID/fd).

psutil gives the processes (pid, name, command line, user) but not what their descriptors
point at: ``Process.open_files()`` lists regular files only, and ``net_connections()`` gives no
inode to join on. So this module reads the descriptors itself, and only them:

- ``readlink /proc/PID/fd/N`` is ``socket:[INODE]`` for a socket (joined to the kernel's
  tables by inode) or a path for a named FIFO (``stat`` says S_ISFIFO; ``(deleted)`` is
  stripped: trunkline unlinks a connection's FIFO pair once both ends are open);
- ``/proc/PID/fdinfo/N`` ``flags`` says which end of a FIFO the process holds (O_ACCMODE);
- ``/proc/PID/ns/net`` names the process's network namespace.

Another user's process refuses all three without root: it is counted, never guessed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import UnsupportedError
from .model import Holder, Process

_MODES = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}
COMMAND_WIDTH = 60  # a command line is shortened to this for display
_INTERPRETER = re.compile(r"^(python|perl|ruby|node|bash|sh)[\d.]*$")


@dataclass(frozen=True)
class Fifo:
    dev: int
    inode: int
    path: str  # as the holders opened it; the name may be gone since (unlinked)
    holders: tuple[Holder, ...]

    @property
    def id(self) -> str:
        return f"fifo:{self.dev}:{self.inode}"


@dataclass
class Scan:
    """What the descriptor scan found."""

    processes: dict[int, Process] = field(default_factory=dict)
    socket_holders: dict[int, list[Holder]] = field(default_factory=lambda: defaultdict(list))
    fifos: list[Fifo] = field(default_factory=list)
    unreadable: set[int] = field(default_factory=set)  # pids whose descriptors were refused


def own_netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def named_netns(directory: str = "/run/netns") -> dict[int, str]:
    """Namespace inode -> the name ``ip netns`` gave it (its bind mounts under /run/netns)."""
    names: dict[int, str] = {}
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                names.setdefault(os.stat(entry.path).st_ino, entry.name)
    return names


def scan() -> Scan:
    """Every process this user may see, with the sockets and FIFOs it holds open."""
    try:
        import psutil
    except ImportError as exc:
        raise UnsupportedError("trunkline map needs psutil to list processes: "
                               "pip install 'trunkline[map]'") from exc
    found = Scan()
    fifo_holders: dict[tuple[int, int], list[Holder]] = defaultdict(list)
    fifo_paths: dict[tuple[int, int], str] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "username"]):
        info = proc.info
        pid = info["pid"]
        try:
            entries = list(os.scandir(f"/proc/{pid}/fd"))
        except PermissionError:
            found.unreadable.add(pid)
            entries = []
        except OSError:
            continue  # gone since psutil listed it
        held_any = False
        for entry in entries:
            held_any |= _take(pid, entry, found, fifo_holders, fifo_paths)
        if held_any:
            found.processes[pid] = Process(
                pid=pid, name=info["name"] or "?", command=_command(info["cmdline"], info["name"]),
                user=info["username"], netns=_netns(pid))
    found.fifos = [Fifo(dev, ino, fifo_paths[(dev, ino)], tuple(holders))
                   for (dev, ino), holders in fifo_holders.items()]
    return found


def _take(pid: int, entry: os.DirEntry[str], found: Scan,
          fifo_holders: dict[tuple[int, int], list[Holder]],
          fifo_paths: dict[tuple[int, int], str]) -> bool:
    """Record descriptor ``entry`` of ``pid`` if it is a socket or a named FIFO."""
    try:
        fd = int(entry.name)
        target = os.readlink(entry.path)
    except (ValueError, OSError):
        return False
    if target.startswith("socket:["):
        found.socket_holders[int(target[8:-1])].append(Holder(pid, fd))
        return True
    if not target.startswith("/"):
        return False  # anonymous pipes, eventfds, epoll...: not a named FIFO
    try:
        st = os.stat(entry.path)  # the open file itself, even if its name was removed
        if not stat.S_ISFIFO(st.st_mode):
            return False
        mode = _MODES.get(_open_flags(pid, fd) & os.O_ACCMODE, "")
    except OSError:
        return False
    key = (st.st_dev, st.st_ino)
    fifo_holders[key].append(Holder(pid, fd, mode))
    fifo_paths.setdefault(key, target.removesuffix(" (deleted)"))
    return True


def _open_flags(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    return 0


def _netns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _command(cmdline: list[str] | None, name: str | None) -> str:
    """``python3 -m trunkline serve echo --on ...`` with argv[0] as its base name, shortened."""
    if not cmdline:
        return f"[{name or '?'}]"  # kernel threads and zombies have no command line
    words = [os.path.basename(cmdline[0]), *cmdline[1:]]
    if _INTERPRETER.match(words[0]) and len(words) > 1 and not words[1].startswith("-"):
        words = [os.path.basename(words[1]), *words[2:]]  # a script: name it, not python
    text = shlex.join(words)
    return text if len(text) <= COMMAND_WIDTH else text[:COMMAND_WIDTH - 1] + "…"
