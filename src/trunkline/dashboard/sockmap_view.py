"""The map panel's data: ``sockmap.build_map`` as the page draws it (the Mermaid flowchart
``trunkline map --mermaid`` prints, plus the map's plain data for the tables).

Building reads /proc and the kernel's socket tables: it blocks, so the app runs it in a
thread. Filters come from the page's query string, with the CLI's names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TransportError, TrunklineError, UnsupportedError
from ..sockmap.services import ServiceRecord

KINDS = ("tcp", "udp", "unix", "unixgram", "unixseq", "fifo")


class BadFilter(ValueError):
    """A query the map cannot take; the message says which part and what is accepted."""


def parse_filter(query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """``kind=unix&kind=fifo&pid=12&service=echo&listening=1`` as ``MapFilter`` fields."""
    kinds = [k for value in query.get("kind", ()) for k in value.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise BadFilter(f"kind {', '.join(unknown)} is not one of {', '.join(KINDS)}")
    pids = []
    for value in (p for v in query.get("pid", ()) for p in v.split(",") if p):
        if not value.isdigit() or int(value) < 1:
            raise BadFilter(f"pid {value!r} is not a process id (example: pid=1234)")
        pids.append(int(value))
    services = [s for value in query.get("service", ()) for s in value.split(",") if s]
    listening = query.get("listening", ["0"])[-1] in ("1", "true", "on", "yes")
    return {"pids": frozenset(pids), "kinds": frozenset(kinds),
            "services": frozenset(services), "listening": listening}


def map_json(fields: dict[str, Any], records: list[ServiceRecord]) -> dict[str, Any]:
    """The map (``map``), its flowchart (``mermaid``), or ``error`` saying why there is none."""
    try:
        from ..sockmap import MapFilter, build_map
        from ..sockmap.render import KIND_COLOURS, render_mermaid

        the_map = build_map(MapFilter(**fields), records)
    except (UnsupportedError, TransportError, TrunklineError, ImportError) as exc:
        return {"error": str(exc), "map": None, "mermaid": ""}
    return {"error": None, "map": the_map.to_dict(), "mermaid": render_mermaid(the_map),
            "colours": KIND_COLOURS}
