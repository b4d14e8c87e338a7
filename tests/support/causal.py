"""The causal order a merged client+server trace must show, checked on events or their JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trunkline.trace import TraceEvent

#: (earlier, later) steps as a merged trace must show them: causes before their effects.
CAUSAL = [
    (("client", "connect"), ("server", "accept")),
    (("client", "request_headers"), ("server", "request_headers")),
    (("server", "request_headers"), ("server", "app_call")),
    (("server", "app_call"), ("server", "response_start")),
    (("server", "response_start"), ("client", "first_byte")),
    (("server", "response_start"), ("server", "response_done")),
    (("server", "response_done"), ("client", "response_done")),
    (("client", "close"), ("server", "close")),  # where the client closed
]


def assert_causal_order(merged: Sequence[TraceEvent | Mapping[str, Any]]) -> None:
    """Each cause comes before its effect in the merged order (the first of each step)."""
    where: dict[tuple[str, str], int] = {}
    for i, event in enumerate(merged):
        if isinstance(event, TraceEvent):
            key = (event.side, event.step.value)
        else:
            key = (str(event["side"]), str(event["step"]))
        where.setdefault(key, i)
    for earlier, later in CAUSAL:
        if earlier in where and later in where:
            assert where[earlier] < where[later], (earlier, later, merged)
