"""Fixtures of the registry tests: real etcd members (one shared, one of a test's own, a
3-member cluster), and ``registry_url`` running a test on both backends. SQLite files in
temp dirs and the isolation from the user's own registry come from tests/conftest.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.etcd_cluster import ETCD, EtcdCluster


@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_RUNTIME_DIR of the test's own: where the default registry file would go."""
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


def _need_etcd() -> None:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server; .ci/run installs it)")


@pytest.fixture(scope="module")
def etcd_single() -> Iterator[EtcdCluster]:
    """One etcd member shared by a module's tests (each test uses its own key prefix)."""
    _need_etcd()
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd_url(etcd_single: EtcdCluster) -> str:
    return etcd_single.url(f"/t{secrets.token_hex(4)}")


@pytest.fixture
def etcd_own() -> Iterator[EtcdCluster]:
    """A single member of this test's own, to stop and start."""
    _need_etcd()
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """A 3-member cluster of this test's own."""
    _need_etcd()
    cluster = EtcdCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(params=["sqlite", "etcd"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same behaviour checked on both backends."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'registry.db'}"
    cluster: EtcdCluster = request.getfixturevalue("etcd_single")
    return cluster.url(f"/t{secrets.token_hex(4)}")
