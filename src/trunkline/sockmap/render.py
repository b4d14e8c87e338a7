"""The map drawn: a Mermaid flowchart and a self-contained HTML page around it.

The flowchart follows the trace diagrams' habits (``trace/mermaid.py``): one node per process
(name, pid, command, services, what it listens on), one edge per connection labelled with its
kind and address, client to server; an edge without direction (a socketpair, two UDP sockets
connected to each other) is a plain line. Processes whose sockets live in another network
namespace are drawn in a box per namespace. The page inlines the vendored mermaid library
(``trace/vendor``), so it needs no network.
"""

from __future__ import annotations

import html
import json

from .model import Connection, End, Socket, SocketMap

# One colour per kind, for the edges (linkStyle) and the legend.
KIND_COLOURS = {"tcp": "#1f77b4", "udp": "#ff7f0e", "unix": "#2ca02c", "unixgram": "#17becf",
                "unixseq": "#8c564b", "fifo": "#9467bd"}
_LISTED = 3  # listening addresses shown in a process box before "+N more"
_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;",
                          "\n": " ", "\r": " ", "`": "#96;"})


def escape(text: str) -> str:
    """Text for inside a quoted Mermaid label: its syntax characters as entity codes."""
    return text.translate(_ESCAPES)


def address_text(kind: str, address: str) -> str:
    """``tcp 127.0.0.1:7000``, ``unix @name``, ``unix (unnamed)``."""
    return f"{kind} {address or '(unnamed)'}"


def render_mermaid(the_map: SocketMap, *, title: str | None = None) -> str:
    """The map as a Mermaid ``flowchart``."""
    lines = []
    if title:
        lines += ["---", f"title: {escape(title)}", "---"]
    lines.append("flowchart LR")
    nodes = _Nodes(the_map)
    for i, ns in enumerate(the_map.other_namespaces):
        name = ns.name or f"net:[{ns.netns}]"
        label = (f"network namespace {name}: {ns.sockets} sockets "
                 "not in this namespace's tables")
        lines.append(f'    subgraph ns{i}["{escape(label)}"]')
        lines += [f"        {nodes.boxed(pid)}" for pid in ns.pids]
        lines.append("    end")
    edges = []
    for conn in the_map.connections:
        a, b = nodes.of(conn.client), nodes.of(conn.server)
        line = "-->" if conn.directed else "---"
        label = escape(address_text(conn.kind, conn.address))
        edges.append((conn, f'    {a} {line}|"{label}"| {b}'))
    for pid in sorted({s_pid for s in the_map.sockets if s.waiting for s_pid in s.pids}):
        nodes.add_pid(pid)  # listeners with nobody connected still get their box
    lines += nodes.declarations()
    lines += [text for _, text in edges]
    for i, (conn, _) in enumerate(edges):
        colour = KIND_COLOURS.get(conn.kind, "#555")
        lines.append(f"    linkStyle {i} stroke:{colour},stroke-width:2px")
    if any(p.services for p in the_map.processes):
        lines.append("    classDef service fill:#fff5d6,stroke:#b8860b,stroke-width:2px")
        for pid in nodes.service_pids():
            lines.append(f"    class p{pid} service")
    return "\n".join(lines) + "\n"


class _Nodes:
    """Node ids and labels: ``pPID`` per process, ``xN`` per kind of unnamed end (hidden
    processes, sockets no process holds)."""

    def __init__(self, the_map: SocketMap) -> None:
        self.map = the_map
        self.order: list[str] = []
        self.labels: dict[str, str] = {}
        self.inner: set[str] = set()  # declared inside a namespace box already

    def add_pid(self, pid: int) -> str:
        node = f"p{pid}"
        if node not in self.labels:
            self.labels[node] = self._process_label(pid)
            self.order.append(node)
        return node

    def boxed(self, pid: int) -> str:
        """The declaration of ``pid``'s node inside a namespace box."""
        node = self.add_pid(pid)
        self.inner.add(node)
        return f'{node}["{escape_lines(self.labels[node])}"]'

    def of(self, end: End) -> str:
        if end.pid is not None:
            return self.add_pid(end.pid)
        for node, label in self.labels.items():
            if node.startswith("x") and label == end.command:
                return node
        node = f"x{sum(1 for n in self.labels if n.startswith('x'))}"
        self.labels[node] = end.command
        self.order.append(node)
        return node

    def declarations(self) -> list[str]:
        return [f'    {n}["{escape_lines(self.labels[n])}"]' for n in self.order
                if n not in self.inner]

    def service_pids(self) -> list[int]:
        return [p.pid for p in self.map.processes if p.services and f"p{p.pid}" in self.labels]

    def _process_label(self, pid: int) -> str:
        proc = self.map.process(pid)
        if proc is None:
            return f"pid {pid}"
        lines = [f"{proc.name} · pid {pid}", _short(proc.command, 40)]
        if proc.services:
            lines.append("service: " + ", ".join(proc.services))
        waiting = [address_text(s.kind, s.local) for s in self.map.sockets
                   if s.waiting and pid in s.pids and (s.local or s.kind == "fifo")]
        if waiting:
            shown = waiting[:_LISTED]
            more = f" +{len(waiting) - _LISTED} more" if len(waiting) > _LISTED else ""
            lines.append("listens: " + ", ".join(shown) + more)
        return "\n".join(lines)


def escape_lines(text: str) -> str:
    """A multi-line label: each line escaped, joined with Mermaid's line break."""
    return "<br/>".join(escape(line) for line in text.split("\n"))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# --------------------------------------------------------------------------- HTML page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { text-align: left; padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; }
td.addr { font-family: ui-monospace, monospace; }
ul.notes { color: #8a4b00; }
.kind { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
"""


def render_html(the_map: SocketMap, *, title: str = "trunkline map") -> str:
    """A complete HTML page: the diagram, the connections and sockets as tables, the notes
    and the JSON, all inline (the vendored mermaid library too)."""
    from ..trace.html import MERMAID_VERSION, mermaid_script

    diagram = render_mermaid(the_map)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in the_map.notes)
    legend = " ".join(f'<span class="kind" style="background:{c}"></span>{k}'
                      for k, c in KIND_COLOURS.items())
    data = html.escape(json.dumps(the_map.to_dict(), indent=1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(the_map.processes)} processes, {len(the_map.sockets)} sockets and FIFOs,
{len(the_map.connections)} connections. Edges: {legend}</p>
<ul class="notes">{notes}</ul>
<pre class="mermaid">
{html.escape(diagram)}</pre>
<h2>Connections</h2>
{_connections_table(the_map.connections)}
<h2>Sockets and FIFOs</h2>
{_sockets_table(the_map)}
<details><summary>Mermaid source</summary><pre id="source">{html.escape(diagram)}</pre></details>
<details><summary>JSON</summary><pre id="json">{data}</pre></details>
<!-- mermaid {MERMAID_VERSION} (MIT license, see trunkline/trace/vendor/LICENSE) -->
{mermaid_script()}
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict", maxEdges: 2000,
                     flowchart: {{ htmlLabels: true }} }});
mermaid.run({{ querySelector: "pre.mermaid" }})
  .then(() => document.body.setAttribute("data-rendered", "ok"))
  .catch((err) => {{
    document.body.setAttribute("data-rendered", "error");
    const pre = document.createElement("pre");
    pre.id = "diagram-error";
    pre.textContent = "diagram failed: " + err;
    document.body.appendChild(pre);
  }});
</script>
</body>
</html>
"""


def _row(cells: list[str], classes: list[str] | None = None) -> str:
    classes = classes or [""] * len(cells)
    return "<tr>" + "".join(f'<td class="{c}">{html.escape(v)}</td>' if c else
                            f"<td>{html.escape(v)}</td>" for v, c in zip(cells, classes,
                                                                         strict=True)) + "</tr>"


def end_text(end: End) -> str:
    return f"{end.pid} {end.command}" if end.pid is not None else end.command


def _connections_table(connections: tuple[Connection, ...]) -> str:
    head = "<tr><th>kind</th><th>client</th><th></th><th>server</th><th>address</th>" \
           "<th>service</th></tr>"
    rows = [_row([c.kind, end_text(c.client), "→" if c.directed else "—", end_text(c.server),
                  c.address or "(unnamed)", ", ".join(c.services)],
                 ["", "", "", "", "addr", ""]) for c in connections]
    return f"<table>{head}{''.join(rows)}</table>"


def holders_text(the_map: SocketMap, sock: Socket) -> str:
    parts = []
    for pid in sock.pids:
        proc = the_map.process(pid)
        modes = "".join(sorted({h.mode for h in sock.holders if h.pid == pid and h.mode}))
        parts.append(f"{pid} {proc.name if proc else '?'}" + (f" ({modes})" if modes else ""))
    return ", ".join(parts) or "-"


def _sockets_table(the_map: SocketMap) -> str:
    head = "<tr><th>kind</th><th>state</th><th>local</th><th>remote / peer</th>" \
           "<th>process</th><th>service</th></tr>"
    rows = [_row([s.kind, s.state, s.local or "(unnamed)", s.remote, holders_text(the_map, s),
                  ", ".join(s.services)], ["", "", "addr", "addr", "", ""])
            for s in the_map.sockets]
    return f"<table>{head}{''.join(rows)}</table>"
