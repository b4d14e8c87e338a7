"""Named pipes (FIFOs) as a duplex, multi-client stream transport: ``fifo:///path``.

How a connection is made::

    server                                    client
    mkfifo PATH (the rendezvous) and keep     mkdtemp DIR (0700) beside PATH, else in $TMPDIR;
    it open for reading AND writing, so it    mkfifo DIR/c2s DIR/s2c; open s2c for reading
    never reads EOF as clients come and go
                              <-- "trunkline-fifo 1 PID DIR\\n"   one atomic write to PATH
    check DIR; open c2s (read), s2c (write)
                              --> "+PID\\n"  (or "!why\\n": refused)
                                              open c2s (write)
                              <-- "+"
    both ends of both pipes are open: the names are removed, bytes flow.

Rules:
- Every open is O_NONBLOCK and readiness is awaited, so no open blocks the loop or deadlocks.
- Each handshake runs in its own task, bounded by ``HANDSHAKE_TIMEOUT``: a client that announces
  and then stalls or dies costs one task for that long, never the listener.
- The server trusts nothing in an announcement. DIR must be a 0700 directory (not a symlink)
  whose name carries this rendezvous' device and inode, so a pair meant for another server
  cannot be redirected here; c2s and s2c must be FIFOs owned by DIR's owner, whose uid/gid are
  the peer's credentials (the pid is as claimed by the client). Garbage lines are skipped,
  and an announcement is found by its prefix wherever it lands (after someone's
  unterminated junk too), so no writer can cost an announced client its connection.
- Rendezvous hygiene, as for Unix sockets: a live one (it has a reader) is never stolen, a stale
  one is reclaimed, a non-FIFO is never removed, the file is never looser than ``mode``, and it
  is unlinked on close only if it is still ours (same inode).
- The per-connection names are removed as soon as both ends are open (by both sides, either
  order), so nothing is left behind even if a process is killed later.
- A connection is the loop's own read-pipe and write-pipe transports (libuv on uvloop) joined
  into one ``asyncio.Transport`` with half-close (``write_eof`` closes our write pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import stat
import tempfile
import time

from ..address import FifoAddress, FifoIdentity, PeerCredentials, format_address
from ..errors import (
    AddressInUseError,
    ConnectError,
    HandshakeError,
    NotASocketError,
    PeerNotAllowedError,
    TransportError,
    TrunklineError,
    os_error_words,
)
from ..trace.events import Step, Tracer
from .base import (
    CREDENTIALS,
    KIND,
    LOCAL,
    PEER,
    Admission,
    ConnectOptions,
    Listener,
    ListenOptions,
    ProtocolFactory,
    file_owner,
)
from .pipepair import PIPE_READ_SIZE, attach_pipes
from .unix import path_claim, unlink_if_ours

log = logging.getLogger("trunkline.transport.fifo")

HANDSHAKE_TIMEOUT = 5.0  # seconds a server waits for an announced client to open its end
MAGIC = b"trunkline-fifo 1"
ACK = b"+"
_NB = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
_MAX_LINE = select.PIPE_BUF  # writes up to PIPE_BUF bytes are atomic: announcements never mix


def _pair_prefix(st: os.stat_result) -> str:
    """Directory-name prefix that binds a FIFO pair to one rendezvous (device and inode)."""
    return f"trunkline-{st.st_dev:x}-{st.st_ino:x}-"


# --------------------------------------------------------------------------- small helpers


async def _ready(fd: int, *, write: bool = False) -> None:
    """Wait until ``fd`` is readable (or writable)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await fut
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


def _remove_pair(pair_dir: str, dfd: int | None = None) -> None:
    """Remove a connection's two FIFOs and their directory; whatever is gone already is fine."""
    for name in ("c2s", "s2c"):
        try:
            if dfd is None:
                os.unlink(os.path.join(pair_dir, name))
            else:
                os.unlink(name, dir_fd=dfd)
        except OSError:
            pass  # gone already: the peer removed it
    with contextlib.suppress(OSError):
        os.rmdir(pair_dir)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


# --------------------------------------------------------------------------- client


async def open_fifo(address: FifoAddress, factory: ProtocolFactory, options: ConnectOptions,
               tracer: Tracer | None = None, conn: int = 0
               ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    url = format_address(address)
    fds: list[int] = []
    pair_dir = ""
    try:
        rendezvous = _open_rendezvous(address)
        fds.append(rendezvous)
        rst = os.fstat(rendezvous)
        parent = os.path.dirname(os.path.abspath(address.path))
        if not os.access(parent, os.W_OK | os.X_OK):
            parent = tempfile.gettempdir()
        pair_dir = tempfile.mkdtemp(prefix=_pair_prefix(rst), dir=parent)  # 0700
        c2s, s2c = os.path.join(pair_dir, "c2s"), os.path.join(pair_dir, "s2c")
        for name in (c2s, s2c):
            os.mkfifo(name, 0o600)
            os.chmod(name, 0o600)  # whatever the umask: we must open it, the server checks it
        os.chmod(pair_dir, 0o700)
        rfd = os.open(s2c, os.O_RDONLY | _NB)  # read end first: the server's write open succeeds
        fds.append(rfd)
        if tracer is not None:
            tracer.record(Step.SOCKET, "client", time.monotonic_ns(), conn, family="fifo",
                          path=pair_dir)
        start = time.monotonic_ns()
        line = b"%s %d %s\n" % (MAGIC, os.getpid(), os.fsencode(pair_dir))
        if len(line) > _MAX_LINE or line.count(b"\n") != 1:
            raise ConnectError(errno.ENAMETOOLONG, f"cannot announce {pair_dir!r} to {url}: the "
                               f"path must be one line under {_MAX_LINE} bytes; set TMPDIR")
        await _announce(rendezvous, line, url)
        os.close(fds.pop(0))
        server_pid = await _read_verdict(rfd, url)
        try:
            wfd = os.open(c2s, os.O_WRONLY | _NB)
        except OSError as exc:
            raise HandshakeError(exc.errno, f"{url}: the server closed the connection during "
                                 "the handshake") from exc
        fds.append(wfd)
        os.write(wfd, ACK)
        if tracer is not None:
            tracer.record(Step.CONNECT, "client", start, conn, peer=url, local=pair_dir,
                          how="FIFO rendezvous")
    except TrunklineError:
        _close_all(fds)
        raise
    except OSError as exc:
        _close_all(fds)
        raise ConnectError(exc.errno, f"could not connect to {url}: {os_error_words(exc)}"
                           ) from exc
    except BaseException:
        _close_all(fds)
        raise
    finally:
        if pair_dir:
            _remove_pair(pair_dir)
    extra = {LOCAL: FifoIdentity(s2c, c2s), PEER: FifoIdentity(c2s, s2c), KIND: "fifo",
             CREDENTIALS: PeerCredentials(server_pid, rst.st_uid, rst.st_gid)}
    protocol = factory()
    transport = await attach_pipes(rfd, wfd, protocol, extra)
    return transport, protocol


def _open_rendezvous(address: FifoAddress) -> int:
    url = format_address(address)
    try:
        fd = os.open(address.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConnectError(exc.errno, f"could not connect to {url}: no such FIFO; is the "
                           "server running?") from exc
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads: the server is gone
            raise ConnectError(errno.ECONNREFUSED, f"could not connect to {url}: no server is "
                               "listening (stale FIFO)") from exc
        if exc.errno == errno.EACCES:
            raise ConnectError(exc.errno, f"could not connect to {url}: permission denied; the "
                               "server's FIFO mode must let this user write (e.g. mode 0o620 "
                               "for its group)") from exc
        raise
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConnectError(errno.ENOTSOCK, f"could not connect to {url}: {address.path} is not "
                           "a FIFO")
    return fd


async def _announce(fd: int, line: bytes, url: str) -> None:
    while True:
        try:
            os.write(fd, line)  # all or nothing: line <= PIPE_BUF
            return
        except BlockingIOError:
            await _ready(fd, write=True)  # the rendezvous is full: a busy server
        except BrokenPipeError as exc:
            raise ConnectError(errno.ECONNREFUSED, f"could not connect to {url}: the server "
                               "went away") from exc


async def _read_verdict(fd: int, url: str) -> int:
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        await _ready(fd)
        try:
            chunk = os.read(fd, 256 - len(data))
        except BlockingIOError:
            continue
        if not chunk:
            raise HandshakeError(errno.ECONNRESET, f"{url}: the server closed the connection "
                                 "during the handshake")
        data += chunk
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("!"):
        raise PeerNotAllowedError(errno.EACCES, f"{url} refused the connection: {text[1:]}")
    if text.startswith("+") and text[1:].isdigit():
        return int(text[1:])
    raise HandshakeError(errno.EPROTO, f"{url}: unexpected handshake reply {text[:40]!r}")


# --------------------------------------------------------------------------- server


class FifoListener(Listener):
    """Reads announcements from the rendezvous FIFO and runs one handshake task per client."""

    def __init__(self, address: FifoAddress, factory: ProtocolFactory, options: ListenOptions,
                 rfd: int, wfd: int, st: os.stat_result) -> None:
        self.address = address
        self._path = address.path
        self._factory = factory
        self._options = options
        self._admission = Admission(options, format_address(address))
        self._rfd, self._wfd = rfd, wfd
        self._inode = (st.st_dev, st.st_ino)
        self._prefix = _pair_prefix(st)
        self._handshakes: set[asyncio.Task[None]] = set()
        self._claimed: set[tuple[int, int]] = set()  # pair dirs mid-handshake: no double use
        self._partial = bytearray()  # an unterminated line, kept from its last MAGIC
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(rfd, self._on_readable)

    def _on_readable(self) -> None:
        for line in self._read_lines():
            parsed = self._parse(line)
            if parsed is None:
                log.debug("%s: ignored announcement %r", self._path, line[:80])
            elif len(self._handshakes) >= self._options.backlog:
                log.warning("%s: %d handshakes pending (backlog); dropped one",
                            self._path, len(self._handshakes))
            else:
                task = self._loop.create_task(self._handshake(*parsed))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)

    def _read_lines(self) -> list[bytes]:
        """Complete lines read so far, each cut to start at its last announcement prefix.

        An announcement is one atomic write, so it arrives whole, but anyone who may write
        the FIFO can leave unterminated bytes just before it. The announcement is then the
        line's tail from its last ``MAGIC``: junk before it never costs the client its turn,
        and junk cannot follow it within the line (its own newline ends the line)."""
        lines: list[bytes] = []
        while True:
            try:
                chunk = os.read(self._rfd, PIPE_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # not seen on a FIFO we hold both ends of; do not spin
                log.error("%s: reading the rendezvous failed: %s", self._path, exc)
                self._loop.remove_reader(self._rfd)
                break
            self._partial += chunk
            while (i := self._partial.find(b"\n")) >= 0:
                start = self._partial.rfind(MAGIC, 0, i)
                if start >= 0:
                    lines.append(bytes(self._partial[start:i]))
                del self._partial[:i + 1]
            if len(self._partial) > _MAX_LINE:
                self._trim_partial()
            if len(chunk) < PIPE_READ_SIZE:
                break
        return lines

    def _trim_partial(self) -> None:
        """Bound an unterminated line: keep only what could still begin an announcement
        (from its last ``MAGIC``, or the few bytes that could be the start of one)."""
        start = self._partial.rfind(MAGIC)
        if start < 0 or len(self._partial) - start > _MAX_LINE:
            start = len(self._partial) - (len(MAGIC) - 1)
        del self._partial[:start]

    def _parse(self, line: bytes) -> tuple[int, str] | None:
        head, _, rest = line.partition(MAGIC + b" ")
        pid, _, path = rest.partition(b" ")
        if head or not pid.isdigit() or not path.startswith(b"/") or b"\0" in path:
            return None
        pair_dir = os.fsdecode(path)
        if not os.path.basename(pair_dir).startswith(self._prefix):
            return None  # made for another rendezvous
        return int(pid), pair_dir

    async def _handshake(self, pid: int, pair_dir: str) -> None:
        fds: list[int] = []
        key: tuple[int, int] | None = None
        try:
            dfd = os.open(pair_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fds.append(dfd)
            dst = os.fstat(dfd)
            if dst.st_mode & 0o777 != 0o700 or (dst.st_dev, dst.st_ino) in self._claimed:
                raise HandshakeError(errno.EPERM, "not a private directory, or already in use")
            key = (dst.st_dev, dst.st_ino)
            self._claimed.add(key)
            rfd = _open_pipe("c2s", os.O_RDONLY, dfd, dst.st_uid)
            fds.append(rfd)
            wfd = _open_pipe("s2c", os.O_WRONLY, dfd, dst.st_uid)  # ENXIO: the client is gone
            fds.append(wfd)
            st = os.fstat(rfd)
            creds = PeerCredentials(pid, st.st_uid, st.st_gid)
            if not self._admission.admits(creds):
                os.write(wfd, b"!uid %d gid %d is not admitted\n" % (st.st_uid, st.st_gid))
                raise PeerNotAllowedError(errno.EACCES, f"uid {st.st_uid} not admitted")
            os.write(wfd, b"+%d\n" % os.getpid())
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await _ready(rfd)  # no writer has opened c2s yet: not readable until one does
            if os.read(rfd, 1) != ACK:
                raise HandshakeError(errno.EPROTO, "client closed or sent no acknowledgement")
            _remove_pair(pair_dir, dfd)
            _close_all(fds[:1])
            del fds[:]
            c2s, s2c = os.path.join(pair_dir, "c2s"), os.path.join(pair_dir, "s2c")
            extra = {LOCAL: FifoIdentity(c2s, s2c), PEER: FifoIdentity(s2c, c2s),
                     CREDENTIALS: creds, KIND: "fifo"}
            await attach_pipes(rfd, wfd, self._factory(), extra)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, PermissionError):  # worth an operator's attention
                log.warning("%s: cannot open the FIFO pair %s of a client (%s): connections "
                            "across users need the server to run as root or as that user",
                            self._path, pair_dir, exc)
            log.debug("%s: FIFO handshake with %s failed: %s", self._path, pair_dir, exc)
            if key is not None:
                _remove_pair(pair_dir, fds[0] if fds else None)
        finally:
            _close_all(fds)
            if key is not None:
                self._claimed.discard(key)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._rfd)
        unlink_if_ours(self._path, self._inode)
        self._hang_up_unanswered()
        _close_all([self._rfd, self._wfd])
        for task in self._handshakes:
            task.cancel()

    def _hang_up_unanswered(self) -> None:
        """Clients that announced but got no answer yet hear a hang-up now (their s2c gets a
        writer that goes away: EOF), instead of waiting for their connect timeout."""
        for line in self._read_lines():
            parsed = self._parse(line)
            if parsed is None:
                continue
            with contextlib.suppress(OSError):
                dfd = os.open(parsed[1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                              | os.O_CLOEXEC)
                try:
                    os.close(_open_pipe("s2c", os.O_WRONLY, dfd, os.fstat(dfd).st_uid))
                finally:
                    os.close(dfd)

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.wait(set(self._handshakes))


def _open_pipe(name: str, flags: int, dfd: int, uid: int) -> int:
    fd = os.open(name, flags | _NB, dir_fd=dfd)
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != uid:
        os.close(fd)
        raise HandshakeError(errno.EPERM, f"{name} is not a FIFO owned by its directory's owner")
    return fd


async def listen(address: FifoAddress, factory: ProtocolFactory, options: ListenOptions
                 ) -> FifoListener:
    # Competing servers in one directory take turns, so two of them reclaiming the same stale
    # FIFO cannot both believe they own the new one.
    async with path_claim(address.path):
        rfd, wfd, st = _create_rendezvous(address, options)
    return FifoListener(address, factory, options, rfd, wfd, st)


def _create_rendezvous(address: FifoAddress, options: ListenOptions
                       ) -> tuple[int, int, os.stat_result]:
    path, url = address.path, format_address(address)
    in_use = AddressInUseError(errno.EADDRINUSE, f"{url} is in use by a live server (the FIFO "
                               "has a reader); stop it or choose another address")
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISFIFO(st.st_mode):
            raise NotASocketError(errno.EEXIST, f"{path} exists and is not a FIFO; trunkline "
                                  "will not remove it. Move it away or choose another path")
        try:
            probe = os.open(path, os.O_WRONLY | _NB)  # succeeds only if someone reads it
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise TransportError(exc.errno, f"cannot check whether {url} is in use: "
                                     f"{exc.strerror}") from exc
            unlink_if_ours(path, (st.st_dev, st.st_ino))  # stale: nobody reads it
        else:
            os.close(probe)
            raise in_use
    try:
        os.mkfifo(path, 0o600)  # owner-only until fchown/fchmod below: never looser than asked
    except FileExistsError as exc:
        raise in_use from exc  # another server made it since we looked
    except OSError as exc:
        raise TransportError(exc.errno, f"cannot create {url}: {exc.strerror}") from exc
    made = os.lstat(path)
    fds: list[int] = []
    try:
        fds.append(os.open(path, os.O_RDONLY | _NB))
        fds.append(os.open(path, os.O_WRONLY | _NB))  # our own writer: never read EOF
        if options.owner is not None or options.group is not None:
            os.fchown(fds[0], *file_owner(options))
        os.fchmod(fds[0], options.mode)
        return fds[0], fds[1], os.fstat(fds[0])
    except BaseException as exc:
        _close_all(fds)
        unlink_if_ours(path, (made.st_dev, made.st_ino))
        if isinstance(exc, OSError):
            raise TransportError(exc.errno, f"cannot set up {url}: {exc.strerror}") from exc
        if isinstance(exc, KeyError):
            raise TransportError(errno.EINVAL, f"cannot set up {url}: no such user or group "
                                 f"{exc}") from exc
        raise
