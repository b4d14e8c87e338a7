"""The bench smoke tests pin their processes to CPU 0 and 1 (``taskset``): under pytest-xdist
(the README's test command) they all go to one worker, one at a time, so no two benches
fight over the same pinned CPUs (``--dist loadgroup`` honours the group)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the group
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # a conftest's collection hook sees the whole session's items: mark only ours
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.xdist_group("cpu-pinned"))
