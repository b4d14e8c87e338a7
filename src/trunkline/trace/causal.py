"""Client and server events in one order that respects cause and effect.

Both sides stamp their events with one clock (``time.monotonic_ns``), yet end times alone
can put an effect before its cause: the server may record "accepted" before the client's
loop gets round to recording its connect, or "response started" before the client records
that its request went out. So:

Rules:
- Each side keeps its own order (by each event's ``anchor``: its end, or its start for the
  steps in ``AT_START``, whose arrow means "began", e.g. the server calling the app).
- ``CAUSES`` pairs a step on one side with the step it causes on the other (the n-th cause
  with the n-th effect); an effect is never placed before its cause.
- The side that closed a connection closes first; the other side's close follows.
- Within those rules the earliest anchor goes first; a tie keeps the client first.
"""

from __future__ import annotations

from collections.abc import Iterable

from .events import Step, TraceEvent

Key = tuple[str, Step]

#: Steps drawn where they began: the server's app call spans the app's run.
AT_START: frozenset[Key] = frozenset({("server", Step.APP_CALL)})

#: (cause, effect): the effect happens on the other side because of the cause.
CAUSES: tuple[tuple[Key, Key], ...] = (
    (("client", Step.CONNECT), ("server", Step.ACCEPT)),
    (("client", Step.TLS), ("server", Step.TLS)),
    (("client", Step.REQUEST_HEADERS), ("server", Step.REQUEST_HEADERS)),
    (("client", Step.REQUEST_BODY), ("server", Step.REQUEST_BODY)),
    (("server", Step.RESPONSE_START), ("client", Step.FIRST_BYTE)),
    (("server", Step.UPGRADE), ("client", Step.UPGRADE)),
    (("server", Step.RESPONSE_DONE), ("client", Step.RESPONSE_DONE)),
)


def anchor(event: TraceEvent) -> int:
    """The time an event's arrow stands for."""
    return event.start_ns if (event.side, event.step) in AT_START else event.end_ns


def causal_order(events: Iterable[TraceEvent]) -> list[TraceEvent]:
    """``events`` (either side, or both) ordered by time, effects after their causes."""
    sides: dict[str, list[TraceEvent]] = {}
    for event in sorted(events, key=lambda e: (anchor(e), e.end_ns, e.start_ns)):
        sides.setdefault(event.side, []).append(event)
    if len(sides) < 2:
        return [e for chain in sides.values() for e in chain]
    after = _causes(sides)
    chains = [sides.get("client", []), sides.get("server", [])]
    heads = [0, 0]
    placed: set[int] = set()
    out: list[TraceEvent] = []
    while any(h < len(c) for h, c in zip(heads, chains, strict=True)):
        ready = [i for i in (0, 1) if heads[i] < len(chains[i])
                 and after.get(id(chains[i][heads[i]]), set()) <= placed]
        choice = ready or [i for i in (0, 1) if heads[i] < len(chains[i])]  # a cycle: time
        i = min(choice, key=lambda i: (anchor(chains[i][heads[i]]), i))
        event = chains[i][heads[i]]
        heads[i] += 1
        placed.add(id(event))
        out.append(event)
    return out


def _causes(sides: dict[str, list[TraceEvent]]) -> dict[int, set[int]]:
    """id(effect) -> ids of the events it must follow."""
    def nth(side: str, step: Step) -> list[TraceEvent]:
        return [e for e in sides.get(side, []) if e.step is step]

    after: dict[int, set[int]] = {}
    for (cause_side, cause_step), (effect_side, effect_step) in CAUSES:
        for cause, effect in zip(nth(cause_side, cause_step), nth(effect_side, effect_step),
                                 strict=False):
            after.setdefault(id(effect), set()).add(id(cause))
    client_closes, server_closes = nth("client", Step.CLOSE), nth("server", Step.CLOSE)
    for client, server in zip(client_closes, server_closes, strict=False):
        if server.detail.get("by") == "server" or client.detail.get("by") == "server":
            after.setdefault(id(client), set()).add(id(server))
        else:
            after.setdefault(id(server), set()).add(id(client))
    return after


__all__ = ["AT_START", "CAUSES", "anchor", "causal_order"]
