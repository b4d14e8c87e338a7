"""Shared fixtures, small and generic.

- ``short_tmp``: a short directory under /tmp for socket paths (``tmp_path`` can push a socket
  path past the kernel's 107-byte limit), removed afterwards.
- ``private_registry`` (every test): ``TRUNKLINE_REGISTRY`` names a file in a temp dir of the
  test's own, so no test ever touches the user's own service registry; ``sqlite_url``: a
  registry file of the test's own.
- Event loop: the stdlib loop by default; ``TRUNKLINE_TEST_LOOP=uvloop`` runs every async test
  on uvloop instead. A test (or module, via ``pytestmark``) that marks itself
  ``@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])`` runs once on each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest


def _loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories = _loop_factories()
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return factories  # the test picks its own
    name = os.environ.get("TRUNKLINE_TEST_LOOP", "asyncio")
    return {name: factories.get(name, asyncio.new_event_loop)}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A fresh short directory under /tmp (about 20 bytes), removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's default registry is a file of its own (outside ``tmp_path``, which
    some tests check for leftovers)."""
    path = tmp_path_factory.mktemp("registry") / "default-registry.db"
    monkeypatch.setenv("TRUNKLINE_REGISTRY", f"sqlite://{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'registry.db'}"
