"""Traced HTTP calls end to end: trunkline.Client against trunkline's own server, both traced,
over TCP (names through the test DNS server), TLS (trustme, same DNS), a Unix socket path,
an abstract Unix name and a FIFO pair.

Checks, per transport: which events each side records and in what order; that the server's
events of the call carry the client's trace id and ``merge`` picks exactly those; that the
two sides' identities agree; and that the durations are consistent (every step inside the
call's span, sequential client steps not overlapping and adding up to at most the total,
causal order across the two processes' clocks). No timing thresholds.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import trustme

import trunkline
from tests.support.causal import assert_causal_order
from trunkline.resolve import DnsResolver
from trunkline.server import AppServer, ServerConfig, load_app
from trunkline.trace import Step, TraceEvent, Tracer
from trunkline.trace.summary import merge, summarize

if TYPE_CHECKING:
    from tests.support.dnsserver import DnsServer

# the dns_server fixture; imported by pytest (not above), so its asserts are rewritten
pytest_plugins = ["tests.support.dnsserver"]

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

KINDS = ["tcp", "tls", "unix", "abstract", "fifo"]
SERVER_STEPS = [Step.ACCEPT, Step.REQUEST_HEADERS, Step.RESPONSE_START, Step.RESPONSE_DONE,
                Step.CLOSE]


@dataclass
class ClosedConnections:
    """A server-tracer sink: lets a test wait for a connection's CLOSE (no sleeps)."""

    seen: dict[int, asyncio.Event] = field(default_factory=dict)

    def __call__(self, event: TraceEvent) -> None:
        if event.step is Step.CLOSE:
            self.event(event.conn).set()

    def event(self, conn: int) -> asyncio.Event:
        return self.seen.setdefault(conn, asyncio.Event())


@dataclass
class Served:
    urls: dict[str, str]
    tracer: Tracer
    closes: ClosedConnections
    cafile: str
    dns: DnsServer


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("api.test", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    cafile = str(tmp_path_factory.mktemp("ca") / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    return server_ctx, cafile


@pytest.fixture
async def served(short_tmp: Path, dns_server: DnsServer,
                 tls_files: tuple[ssl.SSLContext, str]) -> AsyncIterator[Served]:
    server_ctx, cafile = tls_files
    closes = ClosedConnections()
    tracer = Tracer(closes)
    abstract = f"tl-e2e-{os.getpid()}-{short_tmp.name}"
    server = AppServer(load_app("hello"), "tcp://127.0.0.1:0", "tls://127.0.0.1:0",
                       f"unix://{short_tmp}/s.sock", f"unix:@{abstract}",
                       f"fifo://{short_tmp}/f.fifo", tracer=tracer,
                       config=ServerConfig(ssl_context=server_ctx, access_log=False))
    async with server:
        tcp_port = server.urls[0].rsplit(":", 1)[1]
        tls_port = server.urls[1].rsplit(":", 1)[1]
        urls = {
            "tcp": f"http://api.test:{tcp_port}/traced",
            "tls": f"https://api.test:{tls_port}/traced",
            "unix": f"http+unix://{quote(str(short_tmp / 's.sock'), safe='')}/traced",
            "abstract": f"http+unix://{quote('@' + abstract, safe='')}/traced",
            "fifo": f"http+fifo://{quote(str(short_tmp / 'f.fifo'), safe='')}/traced",
        }
        yield Served(urls, tracer, closes, cafile, dns_server)


async def traced_get(served: Served, kind: str, requests: int = 1
                     ) -> tuple[Tracer, list[TraceEvent]]:
    """GET the kind's URL ``requests`` times on one client; wait until the server has recorded
    the connection's CLOSE; return the client's tracer and the server's events of the call."""
    client_closes = ClosedConnections()
    tracer = Tracer(client_closes)
    async with asyncio.timeout(20):
        async with trunkline.Client(tracer=tracer, verify=served.cafile,
                                    resolver=DnsResolver(served.dns.address)) as client:
            for _ in range(requests):
                response = await client.get(served.urls[kind])
                assert response.status_code == 200 and response.content == b"Hello, world!\n"
        conns = {e.conn for e in served.tracer.events
                 if e.detail.get("trace_id") == tracer.trace_id}
        assert len(conns) == 1, "one server connection carried this call's trace id"
        [conn] = conns
        await served.closes.event(conn).wait()
        # over TLS the client's CLOSE comes after the close_notify exchange
        await client_closes.event(tracer.events[0].conn).wait()
    return tracer, [e for e in served.tracer.events if e.conn == conn]


def steps(events: Sequence[TraceEvent]) -> list[Step]:
    return [e.step for e in events]


def expected_client_steps(kind: str) -> list[Step]:
    head = [Step.RESOLVE] if kind in ("tcp", "tls") else []
    tls = [Step.TLS] if kind == "tls" else []
    return [*head, Step.SOCKET, Step.CONNECT, *tls, Step.REQUEST_HEADERS, Step.FIRST_BYTE,
            Step.RESPONSE_DONE, Step.RELEASE, Step.CLOSE]


def first(events: Sequence[TraceEvent], step: Step) -> TraceEvent:
    return next(e for e in events if e.step is step)


@pytest.mark.parametrize("kind", KINDS)
async def test_both_sides_of_one_call(served: Served, kind: str) -> None:
    tracer, server = await traced_get(served, kind)
    client = tracer.events

    # presence and order, each side in the order it recorded
    assert steps(client) == expected_client_steps(kind)
    assert all(e.side == "client" and e.conn == client[0].conn for e in client)
    assert [s for s in steps(server) if s is not Step.APP_CALL] == SERVER_STEPS
    assert steps(server).count(Step.APP_CALL) == 1
    assert steps(server).index(Step.APP_CALL) > steps(server).index(Step.RESPONSE_START)
    assert all(e.side == "server" for e in server)

    # matched by trace id: every request step on the server names the client's id
    for event in server:
        if event.step not in (Step.ACCEPT, Step.CLOSE):
            assert event.detail["trace_id"] == tracer.trace_id, event
    assert first(client, Step.REQUEST_HEADERS).detail["trace_id"] == tracer.trace_id
    merged = merge(client, served.tracer.events, tracer.trace_id)
    assert sorted(merged, key=id) == sorted(client + server, key=id)
    assert_causal_order(merged)

    # identities: what each side saw of the other
    accept, connect = first(server, Step.ACCEPT), first(client, Step.CONNECT)
    assert accept.detail["transport"] == {"abstract": "unix"}.get(kind, kind)
    if kind in ("tcp", "tls"):
        resolve = first(client, Step.RESOLVE)
        assert resolve.detail["server"] == f"udp 127.0.0.1:{served.dns.port}"
        assert resolve.detail["host"] == "api.test"
        assert resolve.detail["addresses"] == ["127.0.0.1"]
        assert accept.detail["peer"] == connect.detail["local"]
        assert accept.detail["local"] == connect.detail["peer"]
    if kind == "tls":
        assert first(client, Step.TLS).detail["version"].startswith("TLS")
    if kind == "abstract":
        assert accept.detail["local"].startswith("@tl-e2e-")
        assert connect.detail["peer"] == "unix:" + accept.detail["local"]
    if kind == "fifo":
        assert connect.detail["how"] == "FIFO rendezvous"
        assert connect.detail["local"] in accept.detail["local"]

    # the client closed its kept-alive connection; both sides say so
    assert first(client, Step.CLOSE).detail["by"] == "client"
    assert first(server, Step.CLOSE).detail["by"] == "client"

    assert_durations(client, server, kind)


def assert_durations(client: list[TraceEvent], server: list[TraceEvent], kind: str) -> None:
    merged = sorted(client + server, key=lambda e: e.end_ns)
    t0 = min(e.start_ns for e in client)
    t1 = max(e.end_ns for e in merged)
    for event in merged:
        assert t0 <= event.start_ns <= event.end_ns <= t1, event  # inside the call's span
    client_total = first(client, Step.RESPONSE_DONE).end_ns - t0
    # the connection's set-up steps happen one after another
    sequential = [e for e in client if e.step in (Step.RESOLVE, Step.SOCKET, Step.CONNECT,
                                                   Step.TLS)]
    for earlier, later in zip(sequential, sequential[1:], strict=False):
        assert earlier.end_ns <= later.start_ns, (earlier, later)
    assert sum(e.duration_ns for e in sequential) <= client_total
    # the httpstat phases add up to no more than the total, offsets only grow
    summary = summarize(client)
    assert summary.total_ns == client_total
    assert sum(p.duration_ns for p in summary.phases()) == summary.total_ns
    # pretransfer is taken before the request goes out: the server parses after it
    assert summary.pretransfer_ns is not None
    assert t0 + summary.pretransfer_ns <= first(server, Step.REQUEST_HEADERS).end_ns
    marks = [m for m in (summary.namelookup_ns, summary.connect_ns, summary.appconnect_ns,
                         summary.pretransfer_ns, summary.starttransfer_ns, summary.total_ns)
             if m is not None]
    assert marks == sorted(marks) and marks[0] >= 0
    assert (summary.namelookup_ns is not None) == (kind in ("tcp", "tls"))
    assert (summary.appconnect_ns is not None) == (kind == "tls")
    # causal order across the two sides (one monotonic clock on this host)
    assert t0 <= first(server, Step.ACCEPT).start_ns
    parsed = first(server, Step.REQUEST_HEADERS)
    assert parsed.end_ns <= first(client, Step.FIRST_BYTE).end_ns
    app = first(server, Step.APP_CALL)
    assert parsed.end_ns <= app.start_ns <= first(server, Step.RESPONSE_START).end_ns
    assert first(server, Step.CLOSE).end_ns >= first(server, Step.RESPONSE_DONE).end_ns
    # the server's own steps sit inside its connection's life
    accepted, closed = first(server, Step.ACCEPT).end_ns, first(server, Step.CLOSE).end_ns
    for event in server:
        assert accepted <= event.end_ns <= closed, event


async def test_keep_alive_reuse_is_traced_on_both_sides(served: Served) -> None:
    tracer, server = await traced_get(served, "unix", requests=2)
    client = tracer.events
    assert steps(client).count(Step.CONNECT) == 1
    assert steps(client).count(Step.REUSE) == 1
    assert steps(client).count(Step.REQUEST_HEADERS) == 2
    assert steps(client).count(Step.RELEASE) == 2
    assert steps(server).count(Step.ACCEPT) == 1
    assert steps(server).count(Step.REQUEST_HEADERS) == 2
    assert steps(server)[-1] is Step.CLOSE
    reuse = steps(client).index(Step.REUSE)
    assert steps(client)[reuse - 1] is Step.RELEASE  # released, then picked up again
