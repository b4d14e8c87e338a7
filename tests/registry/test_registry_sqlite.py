"""The SQLite backend's own cases: a damaged or unwritable file, the default place, the
schema version, expiry without a heartbeat."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.workers import Worker
from trunkline.errors import RegistryFileError
from trunkline.registry import Resolver, make_instance, open_registry, register
from trunkline.registry.sqlite import SqliteStore
from trunkline.registry.url import default_registry_path, private_directory


def url_of(path: Path) -> str:
    return f"sqlite://{path}"


async def test_a_file_that_is_not_a_database_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    junk = b"not a database, but someone's notes\n" * 200
    path.write_bytes(junk)
    with pytest.raises(RegistryFileError) as caught:
        async with register("users", ["unix:@tl-x"], registry=url_of(path)):
            pass
    message = str(caught.value)
    assert message.startswith(f"registry file {path}: is not a SQLite database")
    assert "move it away" in message and "TRUNKLINE_REGISTRY=sqlite:///" in message
    assert path.read_bytes() == junk  # nothing overwritten
    with pytest.raises(RegistryFileError, match=f"registry file {path}: is not a SQLite"):
        async with Resolver(open_registry(url_of(path)), owns_store=True) as resolver:
            await resolver.resolve("users")


async def test_a_damaged_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    store = SqliteStore(str(path))
    async with register("users", ["unix:@tl-y"], registry=store):
        pass
    await store.close()  # the last connection checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with open(path, "r+b") as f:  # page 2 onwards: the tables
        f.seek(4096)
        f.write(b"\xff" * 4096)
    store = SqliteStore(str(path))
    try:
        with pytest.raises(RegistryFileError, match="damaged|malformed"):
            await store.list()
    finally:
        await store.close()


@pytest.fixture
def registry_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tl-registry-ro-", dir="/tmp"))
    try:
        yield path
    finally:
        path.chmod(0o700)
        shutil.rmtree(path, ignore_errors=True)


def _without_permission_override() -> list[str]:
    """A command prefix under which file permissions bind this user: as root, drop the
    capabilities that override them (root still owns the files, so its own read bits and
    /root, where the interpreter may live, stay usable)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unwritable_file_is_named_and_nothing_else_is_lost(registry_dir: Path) -> None:
    """A registry file and directory made read-only (0444 / 0555) under a live owner's
    record: a new service's registration fails with the file named, and the record that was
    there is untouched."""
    path = registry_dir / "registry.db"
    url = url_of(path)
    prefix = _without_permission_override()
    with Worker(["hold", url, "users"]) as owner:
        owner_id = owner.line(r"registered (\S+)").group(1)
        for name in os.listdir(registry_dir):
            os.chmod(registry_dir / name, 0o444)
        registry_dir.chmod(0o555)
        try:
            with Worker(["hold", url, "users"], prefix=prefix) as newcomer:
                assert newcomer.finish() == 1
                err = "\n".join(newcomer.err)
        finally:
            registry_dir.chmod(0o755)
            for name in os.listdir(registry_dir):
                os.chmod(registry_dir / name, 0o644)
        assert f"RegistryFileError: registry file {path}: cannot be written" in err
        assert f"writable by uid {os.geteuid()}" in err
        assert "TRUNKLINE_REGISTRY=sqlite:///" in err
        with sqlite3.connect(path) as db:  # the owner's record is still there
            ids = [row[0] for row in db.execute("SELECT id FROM instances")]
        assert ids == [owner_id]
        assert owner.finish() == 0


async def test_a_directory_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "registry.db"
    store = open_registry(url_of(path))
    try:
        with pytest.raises(RegistryFileError, match=f"directory {path.parent} does not exist"
                           ) as caught:
            await store.list()
        assert str(caught.value).startswith(f"registry file {path}:")
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    store = open_registry(url_of(path))
    try:
        with pytest.raises(RegistryFileError, match="schema version 99, newer"):
            await store.list()
    finally:
        await store.close()


async def test_an_instance_without_heartbeat_expires(tmp_path: Path) -> None:
    """The record of a process that stopped heartbeating (here: the store registered it but
    nobody refreshes it; its pid is ours, so only the expiry can end it)."""
    store = SqliteStore(str(tmp_path / "registry.db"), sweep_interval=0.1)
    reader = SqliteStore(str(tmp_path / "registry.db"), sweep_interval=0.1)
    try:
        instance = make_instance("users", ["unix:@tl-expire"], ttl=2)
        await store.register(instance)
        async with Resolver(reader) as resolver:
            await resolver.wait_for(lambda: len(resolver.instances("users")) == 1, 5)
            await resolver.wait_for(lambda: resolver.instances("users") == [], 6)
        assert not await store.heartbeat(instance)  # too late: the owner must register again
        assert [i.id for i in await store.prune()] == [instance.id]  # the expired row
    finally:
        await store.close()
        await reader.close()


async def test_prune_removes_expired_and_dead_rows(tmp_path: Path) -> None:
    url = url_of(tmp_path / "registry.db")
    with Worker(["hold", url, "users"], env={"TTL": "30"}) as victim:
        victim_id = victim.line(r"registered (\S+)").group(1)
        victim.kill9()
    store = open_registry(url)
    try:
        assert await store.list("users") == []  # readers skip it already (pid check)
        assert [i.id for i in await store.prune()] == [victim_id]
        with sqlite3.connect(tmp_path / "registry.db") as db:
            assert db.execute("SELECT count(*) FROM instances").fetchone()[0] == 0
    finally:
        await store.close()


def test_default_path_follows_the_runtime_dir() -> None:
    assert default_registry_path({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000) == \
        "/run/user/1000/trunkline/registry.db"
    assert default_registry_path({}, 0) == "/run/trunkline/registry.db"
    assert default_registry_path({"XDG_RUNTIME_DIR": "relative"}, 0) == \
        "/run/trunkline/registry.db"
    assert default_registry_path({}, 1000) == os.path.join(tempfile.gettempdir(),
                                                           "trunkline-1000", "registry.db")


def test_private_directory_is_made_0700_and_a_foreign_one_refused(tmp_path: Path) -> None:
    mine = tmp_path / "trunkline-me"
    private_directory(str(mine))
    assert mine.stat().st_mode & 0o777 == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(RegistryFileError, match="not writable by others"):
        private_directory(str(open_dir))


async def test_default_registry_lands_in_the_runtime_dir(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.delenv("TRUNKLINE_REGISTRY")
    store = open_registry()
    try:
        assert store.url == f"sqlite://{os.environ['XDG_RUNTIME_DIR']}/trunkline/registry.db"
        assert (Path(os.environ["XDG_RUNTIME_DIR"]) / "trunkline").stat().st_mode & 0o777 \
            == 0o700
        async with register("users", ["unix:@tl-default"], registry=store):
            assert len(await store.list("users")) == 1
        assert Path(store.url[len("sqlite://"):]).stat().st_mode & 0o777 == 0o600
    finally:
        await store.close()
