"""The embedded backend: one SQLite file (WAL mode) shared by every process of a user.

Writes are short ``BEGIN IMMEDIATE`` transactions (the write lock is taken at the start, so
two writers never deadlock upgrading a read lock) with a busy timeout, retried while the
file stays busy: many services starting at once queue up and none is lost.

Liveness: each registration stores an expiry (now + TTL) that its heartbeat pushes forward
every TTL/3; readers ignore expired rows, and rows whose process is gone when the record
comes from their own pid namespace (pid + process start time, so a reused pid is not taken
for the old process).

Change detection (SQLite has no watch): every ``poll_interval`` (0.1 s) a reader asks
``PRAGMA data_version``, which changes when another connection committed and costs no disk
read (it is answered from the WAL index in shared memory). Heartbeats commit too, so a
changed data_version is then checked against a ``generation`` counter that only register,
deregister and prune bump; only a new generation re-reads the table. inotify was the other
candidate: it would wake on every heartbeat write as well, needs a library or ctypes, and
polling one integer ten times a second costs ~20 us of CPU per second per reader. Expiry
changes nothing in the file, so readers also look over their view every ``sweep_interval``.

All SQLite calls run on one worker thread per store: a busy file never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import (
    DuplicateInstanceError,
    RegistryError,
    RegistryFileError,
    RegistryUnavailableError,
)
from .hostid import HostIdentity
from .model import Instance
from .store import RegistryView, Store, is_dead

log = logging.getLogger("trunkline.registry")
T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    service TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    record TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (service, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generation (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO generation VALUES (1, 0);
"""
#: (data_version, generation, own commits), and the rows when they changed
_Poll = tuple[tuple[int, int, int], list[Instance] | None]
_ANOTHER_FILE = "or choose another file with TRUNKLINE_REGISTRY=sqlite:///path/registry.db"


class SqliteStore(Store):
    """Registry records in a SQLite file at ``path`` (created on first use)."""

    def __init__(self, path: str, *, poll_interval: float = 0.1, sweep_interval: float = 1.0,
                 busy_timeout: float = 10.0) -> None:
        self.path = os.path.abspath(path)
        self.url = f"sqlite://{self.path}"
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="trunkline-registry")
        self._owners: dict[tuple[str, str], str] = {}
        self._local_commits = 0  # our own commits do not move our data_version
        self._here = HostIdentity.current()
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RegistryError(f"{self.url}: the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _translate(self, exc: sqlite3.Error | OSError) -> RegistryError:
        name = getattr(exc, "sqlite_errorname", "")
        text = str(exc)
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text \
                or "malformed" in text:
            return RegistryFileError(
                self.path, f"is not a SQLite database, or is damaged ({text})",
                "move it away (trunkline then starts an empty registry there and running "
                f"services register again within their TTL), {_ANOTHER_FILE}")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return RegistryUnavailableError(
                f"registry file {self.path}: still locked by another process after "
                f"{self.busy_timeout:g} s; retry, or find the process holding it (fuser)")
        if isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror  # the path is in the message already
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) \
                or isinstance(exc, OSError):
            return RegistryFileError(self.path, f"cannot be written ({text}{self._why()})",
                                     f"make it and its directory writable by uid "
                                     f"{os.geteuid()}, {_ANOTHER_FILE}")
        return RegistryFileError(self.path, f"cannot be used ({text})",
                                 f"check the disk and the file, {_ANOTHER_FILE}")

    def _why(self) -> str:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            return f"; directory {directory} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"; directory {directory} is not writable"
        if os.path.exists(self.path) and not os.access(self.path, os.R_OK | os.W_OK):
            return "; the file is not readable and writable"
        return ""

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if not os.path.exists(self.path):  # records hold pids and addresses: 0600
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                 check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise self._translate(exc) from exc
        try:
            self._retry(lambda: db.execute("PRAGMA journal_mode=WAL").fetchone())
            db.execute("PRAGMA synchronous=NORMAL")
            with self._write(db):
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise RegistryFileError(self.path, f"has schema version {version}, newer "
                                            f"than this trunkline's {SCHEMA_VERSION}",
                                            f"upgrade trunkline, {_ANOTHER_FILE}")
                if version < SCHEMA_VERSION:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM instances").fetchone()
        except RegistryError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self._translate(exc) from exc
        self._db = db
        return db

    def _retry(self, op: Callable[[], T]) -> T:
        """``op`` again while the file is busy beyond SQLite's own busy wait (it can answer
        BUSY at once, e.g. while another connection recovers the WAL)."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(delay)  # on the worker thread, never the event loop
            delay = min(delay * 2, 0.05)

    @contextlib.contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[None]:
        self._retry(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._local_commits += 1

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """On the worker thread: ``op`` on the open database, errors translated."""
        db = self._open()
        try:
            return op(db)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    # ------------------------------------------------------------------ records

    def _rows(self, db: sqlite3.Connection, service: str | None, now: float
              ) -> list[Instance]:
        query = "SELECT record, expires, service, id FROM instances WHERE expires >= ?"
        args: tuple[Any, ...] = (now,)
        if service is not None:
            query += " AND service = ?"
            args += (service,)
        out = []
        for record, expires, name, instance_id in db.execute(query, args):
            try:
                instance, _owner = Instance.from_json(record, expires=expires)
            except ValueError as exc:
                log.warning("%s: skipping unreadable record %s/%s: %s", self.url, name,
                            instance_id, exc)
                continue
            if not is_dead(instance, self._here, now):
                out.append(instance)
        out.sort(key=lambda i: (i.started, i.service, i.id))
        return out

    def _register(self, instance: Instance, owner: str, db: sqlite3.Connection) -> None:
        now = time.time()
        with self._write(db):
            row = db.execute("SELECT owner, record, expires FROM instances "
                             "WHERE service = ? AND id = ?", instance.key).fetchone()
            if row is not None and row[0] != owner:
                try:
                    held, _ = Instance.from_json(row[1], expires=row[2])
                except ValueError:
                    held = None  # an unreadable record holds nothing
                if held is not None and not is_dead(held, self._here, now):
                    raise DuplicateInstanceError(_duplicate(instance, held))
            db.execute("INSERT OR REPLACE INTO instances (service, id, owner, record, expires) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (*instance.key, owner, instance.to_json(owner=owner),
                        now + instance.ttl))
            db.execute("UPDATE generation SET value = value + 1")

    async def register(self, instance: Instance) -> None:
        owner = self._owners.get(instance.key) or os.urandom(8).hex()
        await self._call(self._run, functools.partial(self._register, instance, owner))
        self._owners[instance.key] = owner

    async def heartbeat(self, instance: Instance) -> bool:
        owner = self._owners.get(instance.key)
        if owner is None:
            return False

        def beat(db: sqlite3.Connection) -> bool:
            now = time.time()
            cursor = self._retry(lambda: db.execute(
                "UPDATE instances SET expires = ? WHERE service = ? AND id = ? AND owner = ? "
                "AND expires >= ?", (now + instance.ttl, *instance.key, owner, now)))
            return cursor.rowcount == 1

        return await self._call(self._run, beat)

    async def deregister(self, instance: Instance) -> bool:
        owner = self._owners.pop(instance.key, None)
        if owner is None:
            return False

        def remove(db: sqlite3.Connection) -> bool:
            with self._write(db):
                cursor = db.execute("DELETE FROM instances WHERE service = ? AND id = ? "
                                    "AND owner = ?", (*instance.key, owner))
                if cursor.rowcount:
                    db.execute("UPDATE generation SET value = value + 1")
            return cursor.rowcount == 1

        return await self._call(self._run, remove)

    async def list(self, service: str | None = None) -> builtins.list[Instance]:
        return await self._call(self._run, lambda db: self._rows(db, service, time.time()))

    async def prune(self) -> builtins.list[Instance]:
        def prune(db: sqlite3.Connection) -> builtins.list[Instance]:
            now = time.time()
            removed: builtins.list[Instance] = []
            with self._write(db):
                rows = db.execute("SELECT service, id, record, expires FROM instances")
                dead: builtins.list[tuple[str, str]] = []
                for service, instance_id, record, expires in rows.fetchall():
                    try:
                        instance, _ = Instance.from_json(record, expires=expires)
                    except ValueError:
                        dead.append((service, instance_id))  # unreadable: nobody can use it
                        continue
                    if is_dead(instance, self._here, now):
                        dead.append((service, instance_id))
                        removed.append(instance)
                db.executemany("DELETE FROM instances WHERE service = ? AND id = ?", dead)
                if dead:
                    db.execute("UPDATE generation SET value = value + 1")
            return removed

        return await self._call(self._run, prune)

    # ------------------------------------------------------------------ watching

    def _poll(self, last: tuple[int, int, int] | None, force: bool,
              sweep: tuple[Instance, ...] | None
              ) -> _Poll:
        """(data_version, generation, own commits) now, and the rows when they changed or
        when one in ``sweep`` (the reader's view) has died since."""
        def poll(db: sqlite3.Connection) -> _Poll:
            now = time.time()
            force_now = force or bool(sweep and any(is_dead(i, self._here, now)
                                                    for i in sweep))
            version = db.execute("PRAGMA data_version").fetchone()[0]
            mark = (version, last[1] if last else -1, self._local_commits)
            if not force_now and last is not None and mark == last:
                return mark, None
            generation = db.execute("SELECT value FROM generation").fetchone()[0]
            mark = (version, generation, self._local_commits)
            if not force_now and last is not None and mark[1:] == last[1:]:
                return mark, None
            return mark, self._rows(db, None, now)

        return self._run(poll)

    async def watch(self) -> AsyncIterator[RegistryView]:
        last: tuple[int, int, int] | None = None
        instances: tuple[Instance, ...] | None = None
        stale = False
        next_sweep = 0.0
        while True:
            now = time.monotonic()
            sweep = None
            if now >= next_sweep:
                sweep, next_sweep = instances, now + self.sweep_interval
            try:
                last, rows = await self._call(self._poll, last, stale, sweep)
            except RegistryError as exc:
                if not stale:
                    log.warning("%s: %s", self.url, exc)
                stale = True
                yield RegistryView(instances, stale=True, error=str(exc), problem=exc)
                await asyncio.sleep(min(1.0, self.poll_interval * 10))
                continue
            if rows is not None:
                stale = False
                instances = tuple(rows)
                yield RegistryView(instances)
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        if self._closed:
            return
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(RuntimeError):
                await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._closed = True
        self._executor.shutdown(wait=False)


def _duplicate(instance: Instance, held: Instance) -> str:
    return (f"instance id {instance.id!r} of service {instance.service!r} is already "
            f"registered by pid {held.pid} on {held.host.hostname} (started "
            f"{time.time() - held.started:.0f} s ago, alive); choose another instance id, or "
            "stop that instance first")
