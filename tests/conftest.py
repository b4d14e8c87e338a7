"""Shared fixtures, small and generic.

- ``short_tmp``: a short directory under /tmp for socket paths (``tmp_path`` can push a socket
  path past the kernel's 107-byte limit), removed afterwards.
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
