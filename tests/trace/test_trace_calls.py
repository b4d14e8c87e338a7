"""Tracing real raw-stream calls: tcp through the test DNS server, Unix path, abstract.

Checks the events' presence and order on both sides, that their durations are consistent
(every step inside the call's span, sequential steps adding up to no more than the total) and
that the summary's cumulative offsets only grow. No timing thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import trunkline
from trunkline.errors import ResolveError
from trunkline.resolve import DnsResolver
from trunkline.trace import JsonLinesSink, MemorySink, Step, TraceEvent, Tracer, read_json_lines
from trunkline.trace.summary import merge, summarize

BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

if TYPE_CHECKING:
    from tests.support.dnsserver import DnsServer

# the dns_server fixture; imported by pytest (not above), so its asserts are rewritten
pytest_plugins = ["tests.support.dnsserver"]


@dataclass
class TracedCall:
    client: Tracer
    server: Tracer
    url: str

    @property
    def merged(self) -> list[TraceEvent]:
        return merge(self.client.events, self.server.events)


async def echo_once(stream: trunkline.Stream) -> None:
    """Echo one chunk, then wait for the client to close (so the client closes first)."""
    await stream.send(await stream.read())
    while await stream.read():
        pass


async def traced_echo_call(listen_url: str, connect_url: str | None = None,
                           resolver: DnsResolver | None = None,
                           client_tracer: Tracer | None = None) -> TracedCall:
    """One traced echo exchange against a traced server; returns both sides' tracers."""
    server_tracer = Tracer()
    client = client_tracer or Tracer()
    async with await trunkline.serve(echo_once, listen_url, tracer=server_tracer) as server:
        url = connect_url or server.urls[0]
        if "{port}" in url:
            url = url.format(port=server.addresses[0].port)  # type: ignore[union-attr]
        stream = await trunkline.connect(url, tracer=client, resolver=resolver)
        await stream.send(b"ping")
        assert await stream.readexactly(4) == b"ping"
        await stream.aclose()
    # leaving the server waited for its handler, so its CLOSE is recorded too
    return TracedCall(client, server_tracer, url)


def steps(events: Sequence[TraceEvent], side: str) -> list[Step]:
    return [e.step for e in events if e.side == side]


def assert_consistent(events: Sequence[TraceEvent], sequential: Sequence[Step]) -> None:
    """Every step lies within the call's span; the sequential ones add up to at most it."""
    t0 = min(e.start_ns for e in events)
    t1 = max(e.end_ns for e in events)
    for e in events:
        assert t0 <= e.start_ns <= e.end_ns <= t1, e
    chosen = [e for e in events if e.step in sequential]
    assert sum(e.duration_ns for e in chosen) <= t1 - t0
    for earlier, later in zip(chosen, chosen[1:], strict=False):
        assert earlier.end_ns <= later.start_ns, (earlier, later)  # they do not overlap


def assert_cumulative(events: Sequence[TraceEvent]) -> None:
    s = summarize(events)
    marks = [m for m in (s.namelookup_ns, s.connect_ns, s.appconnect_ns, s.pretransfer_ns,
                         s.starttransfer_ns, s.total_ns) if m is not None]
    assert marks == sorted(marks), s
    assert all(m >= 0 for m in marks)


@BOTH_LOOPS
async def test_tcp_call_through_the_dns_server(dns_server: DnsServer) -> None:
    call = await traced_echo_call("tcp://127.0.0.1:0", "tcp://api.test:{port}",
                                  resolver=DnsResolver(dns_server.address))
    client = call.client.events
    assert steps(client, "client") == [Step.RESOLVE, Step.SOCKET, Step.CONNECT, Step.SEND,
                                       Step.RECEIVE, Step.CLOSE]
    assert {e.conn for e in client} == {1}
    resolve, socket_, connect = client[0], client[1], client[2]
    assert resolve.detail["server"] == f"udp 127.0.0.1:{dns_server.port}"
    assert resolve.detail["host"] == "api.test"
    assert resolve.detail["addresses"] == ["127.0.0.1"]
    assert socket_.detail == {"family": "ipv4", "protocol": "tcp",
                              "peer": connect.detail["peer"]}  # what it is about to dial
    assert connect.detail["how"] == "TCP handshake (SYN/SYN-ACK/ACK)"
    assert connect.detail["peer"].startswith("127.0.0.1:")
    assert client[3].detail["bytes"] == 4 and client[4].detail["bytes"] == 4
    assert client[5].detail["by"] == "client"
    assert_consistent(client, [Step.RESOLVE, Step.SOCKET, Step.CONNECT, Step.SEND])
    assert_cumulative(client)

    server = call.server.events
    assert steps(server, "server") == [Step.ACCEPT, Step.RECEIVE, Step.SEND, Step.CLOSE]
    assert server[0].detail["peer"] == f"tcp {connect.detail['local']}"
    assert server[-1].detail["by"] == "client"  # it saw the client's EOF before closing

    merged = call.merged  # matched by endpoints: ACCEPT's peer is CONNECT's local
    assert len(merged) == len(client) + len(server)
    assert [e.end_ns for e in merged] == sorted(e.end_ns for e in merged)
    accept = merged.index(server[0])
    assert merged.index(connect) < accept < merged.index(client[3]) + 1

    summary = summarize(client)
    assert summary.kind == "tcp" and summary.host == "api.test"
    assert summary.resolver == f"udp 127.0.0.1:{dns_server.port}"
    assert summary.remote is not None and summary.remote.ip == "127.0.0.1"
    assert summary.local is not None and summary.local.text == connect.detail["local"]
    assert summary.bytes_sent == 4 and summary.bytes_received == 4


async def test_tcp_call_with_the_system_resolver() -> None:
    call = await traced_echo_call("tcp://127.0.0.1:0", "tcp://localhost:{port}")
    resolve = call.client.events[0]
    assert resolve.step is Step.RESOLVE and "server" not in resolve.detail
    assert summarize(call.client.events).resolver == "system resolver"


@BOTH_LOOPS
async def test_unix_path_call(short_tmp: os.PathLike[str]) -> None:
    path = f"{os.fspath(short_tmp)}/t.sock"
    call = await traced_echo_call(f"unix://{path}")
    client = call.client.events
    assert steps(client, "client") == [Step.SOCKET, Step.CONNECT, Step.SEND, Step.RECEIVE,
                                       Step.CLOSE]
    assert client[0].detail["family"] == "unix"
    assert client[1].detail["how"] == "Unix socket connect"
    assert client[1].detail["peer"] == f"unix://{path}"
    assert_consistent(client, [Step.SOCKET, Step.CONNECT, Step.SEND])
    assert_cumulative(client)
    summary = summarize(client)
    assert summary.kind == "unix" and summary.namelookup_ns is None
    assert summary.remote is not None and summary.remote.ip == path
    assert steps(call.server.events, "server") == [Step.ACCEPT, Step.RECEIVE, Step.SEND,
                                                   Step.CLOSE]
    # an unnamed client socket cannot be matched by endpoint: merge takes the server's all
    assert len(call.merged) == len(client) + len(call.server.events)


async def test_abstract_call() -> None:
    name = f"trunkline-trace-{os.getpid()}"
    call = await traced_echo_call(f"unix:@{name}")
    client = call.client.events
    assert steps(client, "client") == [Step.SOCKET, Step.CONNECT, Step.SEND, Step.RECEIVE,
                                       Step.CLOSE]
    assert client[1].detail["peer"] == f"unix:@{name}"
    assert_consistent(client, [Step.SOCKET, Step.CONNECT, Step.SEND])
    summary = summarize(client)
    assert summary.remote is not None and summary.remote.text == f"@{name}"


async def test_failed_lookup_is_traced(dns_server: DnsServer) -> None:
    tracer = Tracer()
    with pytest.raises(ResolveError):
        await trunkline.connect("tcp://nope.test:80", tracer=tracer,
                                resolver=DnsResolver(dns_server.address))
    [event] = tracer.events
    assert event.step is Step.RESOLVE and "NXDOMAIN" in event.detail["error"]
    assert summarize(tracer.events).error is not None


async def test_tracing_off_records_nothing_and_keep_false_only_feeds_sinks() -> None:
    sink = MemorySink()
    tracer = Tracer(sink, keep=False)
    call = await traced_echo_call("tcp://127.0.0.1:0", client_tracer=tracer)
    assert call.client.events == []
    assert sink.steps() == [Step.SOCKET, Step.CONNECT, Step.SEND, Step.RECEIVE, Step.CLOSE]
    assert len(sink) == 5


async def test_json_lines_sink_on_a_real_call(tmp_path: os.PathLike[str]) -> None:
    path = f"{os.fspath(tmp_path)}/trace.jsonl"
    tracer = Tracer()
    with JsonLinesSink(path, trace_id=tracer.trace_id) as sink:
        tracer.add_sink(sink)
        await traced_echo_call("tcp://127.0.0.1:0", client_tracer=tracer)
    import json
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert [d["step"] for d in lines] == [e.step.value for e in tracer.events]
    assert all(d["trace_id"] == tracer.trace_id for d in lines)
    assert all(d["duration_ns"] == d["end_ns"] - d["start_ns"] for d in lines)
    assert read_json_lines(path) == tracer.events
