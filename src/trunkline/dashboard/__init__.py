"""``trunkline dashboard``: one read-only web page that shows the machine live.

A tool, not part of the library (``import trunkline`` never loads it). ``DashboardApp`` is a
plain ASGI 3 app, served by trunkline's own server (``trunkline dashboard --on URL``), with
four panels:

- services: the registry's live view (``Store.watch``), pushed over a WebSocket on change;
- the socket map: ``sockmap.build_map`` as a Mermaid flowchart and tables, on demand;
- traces: ``--trace-file`` output (server JSON lines, client ``--trace=json`` documents, text
  timelines, Mermaid files) read from a directory, new events pushed over a WebSocket;
- benchmarks: ``trunkline bench --json`` files and the PNGs of ``--plot`` beside them.

Every asset (the page, its script, the vendored mermaid) ships in the package: no network.
"""

from .app import DashboardApp, DashboardConfig

__all__ = ["DashboardApp", "DashboardConfig"]
