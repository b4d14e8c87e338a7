"""Renderers (timeline, JSON, Mermaid, HTML) and sinks, on made-up events with known
timings and on a real call."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

import pytest

from tests.trace.test_trace_calls import traced_echo_call
from trunkline.resolve import DnsResolver
from trunkline.trace import (
    LoggingSink,
    MemorySink,
    Step,
    TraceEvent,
    Tracer,
    format_duration,
    parse_traceparent,
)
from trunkline.trace.html import mermaid_js, render_html
from trunkline.trace.mermaid import escape, render_mermaid
from trunkline.trace.summary import merge, summarize
from trunkline.trace.timeline import render_json, render_timeline

MS = 1_000_000

if TYPE_CHECKING:
    from tests.support.dnsserver import DnsServer

# the dns_server fixture; imported by pytest (not above), so its asserts are rewritten
pytest_plugins = ["tests.support.dnsserver"]


def http_events(*, dns_server: str | None = "udp 127.0.0.1:5353", tls: bool = True
                ) -> list[TraceEvent]:
    """A made-up HTTPS call with round numbers: DNS 2 ms, TCP 1 ms, TLS 3 ms, server 4 ms,
    transfer 1 ms (times in ms from 100)."""
    t = Tracer()
    base = 100 * MS

    def rec(step: Step, start: float, end: float, **detail: object) -> None:
        t.record(step, "client", base + int(start * MS), 1, base + int(end * MS), **detail)

    resolve: dict[str, object] = {"host": "api.test", "addresses": ["127.0.0.1"]}
    if dns_server:
        resolve["server"] = dns_server
    rec(Step.RESOLVE, 0, 2, **resolve)
    rec(Step.SOCKET, 2, 2, family="ipv4", protocol="tcp")
    rec(Step.CONNECT, 2, 3, local="127.0.0.1:40000", peer="127.0.0.1:8443",
        how="TCP handshake (SYN/SYN-ACK/ACK)")
    if tls:
        rec(Step.TLS, 3, 6, version="TLSv1.3")
    rec(Step.REQUEST_HEADERS, 6, 6, method="GET", target="/", bytes=40,
        trace_id="ab" * 16)
    rec(Step.FIRST_BYTE, 6, 10)  # from the request sent to the first byte
    rec(Step.RESPONSE_DONE, 10, 11, status=200, head_bytes=30, bytes=2)  # from the first byte
    rec(Step.RELEASE, 11, 11)
    rec(Step.CLOSE, 12, 12, by="client")
    return t.events


def unix_events(how: str | None = None, family: str = "unix") -> list[TraceEvent]:
    t = Tracer()
    t.record(Step.SOCKET, "client", 0, 1, 0, family=family)
    detail = {"peer": "unix:///run/app.sock"} if how is None else {"peer": "x", "how": how}
    t.record(Step.CONNECT, "client", 0, 1, 80_000, **detail)
    t.record(Step.SEND, "client", 90_000, 1, 90_000, bytes=3)
    t.record(Step.RECEIVE, "client", 90_000, 1, 200_000, bytes=3)
    t.record(Step.CLOSE, "client", 210_000, 1, 210_000, by="client")
    return t.events


# ---------------------------------------------------------------- summary and timeline


def test_summary_is_cumulative_like_curl() -> None:
    s = summarize(http_events())
    assert (s.namelookup_ns, s.connect_ns, s.appconnect_ns, s.pretransfer_ns,
            s.starttransfer_ns, s.total_ns) == (2 * MS, 3 * MS, 6 * MS, 6 * MS, 10 * MS, 11 * MS)
    assert [(p.name, p.duration_ns) for p in s.phases()] == [
        ("DNS Lookup", 2 * MS), ("TCP Connection", 1 * MS), ("TLS Handshake", 3 * MS),
        ("Server Processing", 4 * MS), ("Content Transfer", 1 * MS)]
    assert s.kind == "tls" and s.resolver == "udp 127.0.0.1:5353" and s.closed_by == "client"
    assert s.local is not None and (s.local.ip, s.local.port) == ("127.0.0.1", 40000)


def test_timeline_shows_the_steps_that_happened_and_the_identities() -> None:
    text = render_timeline(http_events())
    lines = text.splitlines()
    assert lines[0] == "tcp+tls 127.0.0.1:40000 -> 127.0.0.1:8443 (api.test via udp " \
        "127.0.0.1:5353)"
    header = lines[2]
    for name in ("DNS Lookup", "TCP Connection", "TLS Handshake", "Server Processing",
                 "Content Transfer"):
        assert name in header
    assert header.index("DNS Lookup") < header.index("TCP Connection") < header.index(
        "TLS Handshake") < header.index("Server Processing") < header.index("Content Transfer")
    bar = lines[3]
    assert bar.startswith("[") and bar.endswith("]") and bar.count("|") == 4
    for duration in ("2.00 ms", "1.00 ms", "3.00 ms", "4.00 ms"):
        assert duration in bar
    for marker in ("namelookup:2.00 ms", "connect:3.00 ms", "appconnect:6.00 ms",
                   "starttransfer:10.00 ms", "total:11.00 ms"):
        assert marker in text
    # every marker line ends exactly at its column's edge in the bar
    edges = [i for i, c in enumerate(bar) if c in "|]"]
    marker_lines = [line for line in lines if ":" in line and "->" not in line]
    for edge, line in zip(edges, marker_lines, strict=True):
        label_end = line.index(" ms", line.index(":")) + 2
        assert label_end == edge, (line, edge)

    plain = render_timeline(http_events(dns_server=None, tls=False))
    assert "TLS Handshake" not in plain and "(api.test via system resolver)" in plain
    unix = render_timeline(unix_events())
    assert "Unix Connect" in unix and "DNS Lookup" not in unix
    assert "unix (unnamed) -> /run/app.sock" in unix
    assert "closed by client" in unix


def test_json_rendering() -> None:
    doc = json.loads(render_json(http_events(), trace_id="ab" * 16))
    assert doc["trace_id"] == "ab" * 16
    assert [e["step"] for e in doc["events"]][:3] == ["resolve", "socket", "connect"]
    assert doc["events"][0]["duration_ns"] == 2 * MS
    summary = doc["summary"]
    assert summary["time_connect"] == pytest.approx(0.003)
    assert summary["time_total"] == pytest.approx(0.011)
    assert summary["remote"] == "127.0.0.1:8443" and summary["kind"] == "tls"
    assert [p["name"] for p in summary["phases"]][0] == "DNS Lookup"


def test_format_duration() -> None:
    assert format_duration(80_000) == "0.08 ms"
    assert format_duration(12_345_678) == "12.35 ms"
    assert format_duration(1_204_000_000) == "1.204 s"


# ---------------------------------------------------------------- Mermaid

ARROW = re.compile(r"^    (App|OS|DNS|Server)(->>|-->>)(App|OS|DNS|Server): (.+)$")
DURATION = re.compile(r" \+\d+\.\d{2} ms( later)?$| \+\d+\.\d{3} s( later)?$")


def arrows(diagram: str) -> list[tuple[str, str, str]]:
    found = []
    for line in diagram.splitlines():
        m = ARROW.match(line)
        if m:
            found.append((m.group(1), m.group(3), m.group(4)))
    return found


def test_mermaid_structure() -> None:
    events = http_events()
    diagram = render_mermaid(events)
    lines = diagram.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert lines[1] == "    autonumber"
    participants = [line.split()[1] for line in lines if line.startswith("    participant ")]
    assert participants == ["App", "OS", "DNS", "Server"]
    assert "participant DNS as DNS udp 127.0.0.1:5353" in diagram
    assert "participant App as Application 127.0.0.1:40000" in diagram
    found = arrows(diagram)
    assert len(found) == len(events)  # one arrow per step
    assert all(DURATION.search(label) for _, _, label in found)
    labels = [label for _, _, label in found]
    assert labels[0] == "DNS query A/AAAA api.test -> 127.0.0.1 +2.00 ms"
    assert found[0][:2] == ("App", "DNS")
    assert "TCP handshake (SYN/SYN-ACK/ACK) +1.00 ms" in labels
    assert "TLS handshake (TLSv1.3) +3.00 ms" in labels
    assert "response complete (200) +1.00 ms" in labels
    assert labels[-1] == "close (FIN, by client) +0.00 ms"
    # the figures, cumulative, in a closing note apart from the arrows' durations
    assert lines[-1] == ("    Note over App,Server: since the start: namelookup 2.00 ms, "
                         "connect 3.00 ms, appconnect 6.00 ms, pretransfer 6.00 ms, "
                         "requestsent 6.00 ms, starttransfer 10.00 ms, total 11.00 ms")


def test_mermaid_dns_participant_only_with_a_dns_server() -> None:
    diagram = render_mermaid(http_events(dns_server=None))
    assert "participant DNS" not in diagram
    assert "DNS lookup api.test (system resolver) -> 127.0.0.1 +2.00 ms" in diagram


@pytest.mark.parametrize(("how", "family", "label"), [
    (None, "unix", "Unix socket connect"),
    ("FIFO rendezvous", "fifo", "FIFO rendezvous"),
    ("Unix socket connect", "unix", "Unix socket connect"),
])
def test_mermaid_connect_labels_per_kind(how: str | None, family: str, label: str) -> None:
    diagram = render_mermaid(unix_events(how, family))
    assert f"OS->>Server: {label} +0.08 ms" in diagram
    assert "Server-->>App: receive 3 B +0.11 ms" in diagram


def test_mermaid_escapes_its_syntax() -> None:
    assert escape("a;b#c\nd") == "a#59;b#35;c d"
    t = Tracer()
    t.record(Step.CONNECT, "client", 0, 1, 10, how="odd; how #1")
    assert "odd#59; how #35;1" in render_mermaid(t.events)


def test_merge_by_trace_id_and_server_arrows() -> None:
    client = http_events()
    server = Tracer()
    tid = "ab" * 16
    at = 100 * MS
    # conn 5 is this call (its request carried our trace id); conn 6 is someone else's
    server.record(Step.ACCEPT, "server", at + 3 * MS, 5, at + 3 * MS, peer="tcp 10.9.9.9:1")
    server.record(Step.REQUEST_HEADERS, "server", at + 6 * MS, 5, at + 7 * MS, trace_id=tid)
    server.record(Step.APP_CALL, "server", at + 7 * MS, 5, at + 9 * MS)
    server.record(Step.RESPONSE_START, "server", at + 9 * MS, 5, at + 9 * MS)
    server.record(Step.REQUEST_HEADERS, "server", at + 6 * MS, 6, at + 7 * MS,
                  trace_id="cd" * 16)
    merged = merge(client, server.events, tid)
    assert len(merged) == len(client) + 4
    assert all(e.conn == 5 for e in merged if e.side == "server")
    diagram = render_mermaid(merged)
    labels = [label for _, _, label in arrows(diagram)]
    assert len(labels) == len(merged)
    assert labels.index("server: app called, returned +2.00 ms later") < labels.index(
        "first response byte +4.00 ms")
    assert "server: accepted from 10.9.9.9:1 +0.00 ms" in labels
    assert parse_traceparent(f"00-{tid}-0123456789abcdef-01") == tid
    assert parse_traceparent("garbage") is None


# ---------------------------------------------------------------- HTML


def test_html_page_inlines_mermaid_and_the_diagram() -> None:
    page = render_html(http_events(), title="GET https://api.test/")
    js = mermaid_js()
    assert 1_000_000 < len(js) < 6_000_000  # a few MB at most
    assert js in page  # inlined whole: the page works offline
    assert "<title>GET https://api.test/</title>" in page
    diagram = render_mermaid(http_events())
    # the diagram sits HTML-escaped in the element mermaid renders
    assert '<pre class="mermaid">\n' + diagram.replace(">", "&gt;") + "</pre>" in page
    assert not re.search(r"""src=["']https?:""", page)
    assert page.count("</script>") == 2


# ---------------------------------------------------------------- sinks and tracer


def test_memory_sink_and_tracer_basics() -> None:
    sink = MemorySink()
    tracer = Tracer(sink)
    assert tracer.new_connection() == 1 and tracer.new_connection() == 2
    event = tracer.record(Step.CONNECT, "client", 5, 2, 9, peer="x")
    assert event.duration_ns == 4 and event.detail == {"peer": "x"}
    later = tracer.record(Step.CLOSE, "client", 10, 2)
    assert later.end_ns >= 10  # end defaults to now
    assert sink.events == tracer.events == [event, later]
    assert sink.steps(conn=2) == [Step.CONNECT, Step.CLOSE]
    assert TraceEvent.from_dict(event.to_dict()) == event
    with pytest.raises(AttributeError):
        event.conn = 3  # type: ignore[misc]
    assert re.fullmatch(r"[0-9a-f]{32}", tracer.trace_id)
    assert re.fullmatch(rf"00-{tracer.trace_id}-[0-9a-f]{{16}}-00", tracer.traceparent())
    assert tracer.traceparent(sampled=True).endswith("-01")
    sink.clear()
    assert len(sink) == 0


def test_logging_sink(caplog: pytest.LogCaptureFixture) -> None:
    tracer = Tracer(LoggingSink())
    with caplog.at_level(logging.DEBUG, logger="trunkline.trace"):
        tracer.record(Step.CONNECT, "client", 0, 1, 80_000, peer="127.0.0.1:8000")
    [record] = caplog.records
    assert record.name == "trunkline.trace" and record.levelno == logging.DEBUG
    assert record.getMessage() == "client conn 1 connect 0.08 ms peer=127.0.0.1:8000"
    assert record.trace_event is tracer.events[0]  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trunkline.trace"):
        tracer.record(Step.CLOSE, "client", 0, 1, 1)
    assert caplog.records == []  # below the logger's level: not even formatted


# ---------------------------------------------------------------- a real call, rendered


async def test_real_call_renders(dns_server: DnsServer) -> None:
    call = await traced_echo_call("tcp://127.0.0.1:0", "tcp://api.test:{port}",
                                  resolver=DnsResolver(dns_server.address))
    merged = call.merged
    diagram = render_mermaid(merged)
    assert len(arrows(diagram)) == len(merged)
    assert "participant DNS" in diagram
    timeline = render_timeline(merged)
    assert "DNS Lookup" in timeline and "TCP Connection" in timeline
    assert "TLS Handshake" not in timeline
    doc = json.loads(render_json(merged))
    assert len(doc["events"]) == len(merged)
    assert doc["summary"]["host"] == "api.test"


def test_render_dispatches_on_the_trace_format() -> None:
    from trunkline.trace.render import RENDERERS, render

    events = http_events()
    assert set(RENDERERS) == {"text", "json", "mermaid", "html"}
    assert render("mermaid", events) == render_mermaid(events)
    assert render("text", events) == render_timeline(events)
    assert json.loads(render("json", events, trace_id="x"))["trace_id"] == "x"
    with pytest.raises(ValueError, match="unknown trace format 'svg'; choose one of text"):
        render("svg", events)


def test_a_reused_connection_has_no_connect_phase() -> None:
    from trunkline.trace.writeout import write_out

    t = Tracer()
    t.record(Step.REUSE, "client", 0, 3, 10_000, requests=1)
    t.record(Step.REQUEST_HEADERS, "client", 15_000, 3, 20_000)
    t.record(Step.FIRST_BYTE, "client", 20_000, 3, 500_000)
    t.record(Step.RESPONSE_DONE, "client", 500_000, 3, 600_000, status=204)
    t.record(Step.RELEASE, "client", 600_000, 3, 600_000)
    s = summarize(t.events)
    assert s.reused and s.connect_ns is None and s.namelookup_ns is None
    assert [p.name for p in s.phases()] == ["Pre-transfer", "Server Processing",
                                            "Content Transfer"]
    assert "(reused connection)" in render_timeline(t.events)
    assert write_out("%{num_connects} %{time_connect} %{time_pretransfer} %{time_total}",
                     t.events) == "0 0.000000 0.000015 0.000600"
    labels = [label for _, _, label in arrows(render_mermaid(t.events))]
    assert labels[0] == "pooled connection reused +0.01 ms"
    assert labels[3] == "response complete (204) +0.10 ms"


# ---------------------------------------------------------------- figures, defined once


def test_every_figure_means_the_same_in_every_renderer() -> None:
    from trunkline.trace.figures import COUNTS, FIGURES
    from trunkline.trace.writeout import write_out

    events = http_events()
    s = summarize(events)
    doc = json.loads(render_json(events))["summary"]
    for figure in FIGURES:
        ns = s.figures[figure.name]
        if figure.name == "time_discover":  # calls by name: tests/trace/test_trace_discover.py
            assert ns is None and doc[figure.name] is None
            continue
        assert ns is not None
        assert doc[figure.name] == pytest.approx(ns / 1e9)
        assert write_out(f"%{{{figure.name}}}", events) == f"{ns // 1000 // 1_000_000}." \
            f"{ns // 1000 % 1_000_000:06d}"
    # pretransfer is the request's start, before its bytes went out; requestsent its end
    assert s.figures["time_pretransfer"] == 6 * MS
    # counts are what the events say: head 40 B sent; head 30 B + body 2 B received
    assert [doc[c.name] for c in COUNTS] == [40, 32, 0, 2]
    assert "sent 40 B, received 32 B" in render_timeline(events)


@pytest.mark.parametrize("events", [http_events(), http_events(tls=False),
                                    unix_events(), unix_events("FIFO rendezvous", "fifo")])
def test_timeline_phases_sum_to_the_total(events: list[TraceEvent]) -> None:
    s = summarize(events)
    assert sum(p.duration_ns for p in s.phases()) == s.total_ns
    # and the text shows each column's duration: they add up to the total printed
    lines = render_timeline(events).splitlines()
    shown = [float(x) for x in re.findall(r"(\d+\.\d+) ms", lines[3])]
    total = float(re.search(r"total:(\d+\.\d+) ms", "\n".join(lines)).group(1))  # type: ignore[union-attr]
    assert sum(shown) == pytest.approx(total, abs=0.01 * len(shown))


def test_gaps_between_steps_belong_to_a_phase() -> None:
    t = Tracer()
    t.record(Step.SOCKET, "client", 0, 1, 10_000, family="unix")
    t.record(Step.CONNECT, "client", 20_000, 1, 100_000, peer="unix:///s")
    # 50 µs pass before the request starts: the pre-transfer column holds them
    t.record(Step.REQUEST_HEADERS, "client", 150_000, 1, 160_000, bytes=10)
    t.record(Step.FIRST_BYTE, "client", 160_000, 1, 400_000)
    t.record(Step.RESPONSE_DONE, "client", 400_000, 1, 450_000, head_bytes=20, bytes=5)
    s = summarize(t.events)
    assert [(p.name, p.duration_ns) for p in s.phases()] == [
        ("Unix Connect", 100_000), ("Pre-transfer", 50_000), ("Server Processing", 250_000),
        ("Content Transfer", 50_000)]
    assert s.total_ns == 450_000 and (s.bytes_sent, s.bytes_received) == (10, 25)


def test_merged_order_puts_causes_first_even_when_end_times_do_not() -> None:
    """The server records "accepted" and "response started" before the client's loop records
    its connect and its request: the merged order still shows the cause first."""
    client, server = Tracer(), Tracer()
    tid = "ef" * 16
    client.record(Step.SOCKET, "client", 0, 1, 1_000, family="unix")
    client.record(Step.CONNECT, "client", 1_000, 1, 9_000, peer="unix:///s")
    server.record(Step.ACCEPT, "server", 5_000, 7, 5_000)  # before the client's CONNECT end
    client.record(Step.REQUEST_HEADERS, "client", 10_000, 1, 40_000, trace_id=tid)
    server.record(Step.REQUEST_HEADERS, "server", 12_000, 7, 15_000, trace_id=tid)
    server.record(Step.RESPONSE_START, "server", 16_000, 7, 20_000, trace_id=tid)
    server.record(Step.RESPONSE_DONE, "server", 20_000, 7, 22_000, trace_id=tid)
    server.record(Step.APP_CALL, "server", 16_000, 7, 30_000, trace_id=tid)  # ends last
    client.record(Step.FIRST_BYTE, "client", 40_000, 1, 41_000)
    client.record(Step.RESPONSE_DONE, "client", 41_000, 1, 42_000, status=200)
    client.record(Step.CLOSE, "client", 50_000, 1, 50_000, by="client")
    server.record(Step.CLOSE, "server", 45_000, 7, 45_000, by="client")  # stamped earlier
    merged = merge(client.events, server.events, tid)
    order = [f"{e.side[0]}:{e.step.value}" for e in merged]
    assert order == ["c:socket", "c:connect", "s:accept", "c:request_headers",
                     "s:request_headers", "s:app_call", "s:response_start", "s:response_done",
                     "c:first_byte", "c:response_done", "c:close", "s:close"]
    labels = [label for _, _, label in arrows(render_mermaid(merged))]
    assert labels[5] == "server: app called, returned +0.01 ms later"
