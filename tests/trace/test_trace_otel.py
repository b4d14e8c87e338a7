"""OpenTelemetry export of real traced calls, read back from the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.trace.test_trace_calls import traced_echo_call
from trunkline.trace import Step, Tracer
from trunkline.trace.otel import OtelSink, export_connection


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


async def test_live_sink_exports_one_span_per_connection_with_events(
        exporter: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    memory, provider = exporter
    tracer = Tracer()
    tracer.add_sink(OtelSink.for_tracer(tracer, provider.get_tracer("test")))
    await traced_echo_call("tcp://127.0.0.1:0", client_tracer=tracer)
    [span] = memory.get_finished_spans()  # exported when the connection's CLOSE arrived
    assert span.name == "trunkline client connection"
    assert span.kind is SpanKind.CLIENT
    assert [e.name for e in span.events] == [e.step.value for e in tracer.events]
    assert span.attributes is not None
    assert span.attributes["network.transport"] == "tcp"
    assert span.attributes["server.address"] == "127.0.0.1"
    # the span joins the trunkline trace id, on the wall clock
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == tracer.trace_id
    first, last = tracer.events[0], tracer.events[-1]
    assert span.start_time == first.start_ns + tracer.epoch_offset_ns
    assert span.end_time == last.end_ns + tracer.epoch_offset_ns
    connect = next(e for e in span.events if e.name == "connect")
    assert connect.attributes is not None
    assert connect.attributes["trunkline.how"] == "TCP handshake (SYN/SYN-ACK/ACK)"


async def test_child_span_per_step(exporter: tuple[InMemorySpanExporter, TracerProvider]
                                   ) -> None:
    memory, provider = exporter
    call = await traced_echo_call("tcp://127.0.0.1:0")
    otel = provider.get_tracer("test")
    root = export_connection(call.client.events, otel, mode="spans",
                             epoch_offset_ns=call.client.epoch_offset_ns,
                             trace_id=call.client.trace_id)
    export_connection(call.server.events, otel, mode="spans", trace_id=call.client.trace_id)
    spans = memory.get_finished_spans()
    roots = [s for s in spans if s.name.endswith("connection")]
    assert {s.kind for s in roots} == {SpanKind.CLIENT, SpanKind.SERVER}
    assert root is not None
    client_root = next(s for s in roots if s.kind is SpanKind.CLIENT)
    children = [s for s in spans if s.parent is not None
                and s.parent.span_id == client_root.context.span_id]
    assert [s.name for s in children] == [e.step.value for e in call.client.events]
    for span, event in zip(children, call.client.events, strict=True):
        assert span.end_time - span.start_time == event.duration_ns  # type: ignore[operator]
    # both sides share the call's trace id
    assert {format(s.context.trace_id, "032x") for s in spans
            } == {call.client.trace_id}


def test_flush_exports_connections_still_open(
        exporter: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    memory, provider = exporter
    sink = OtelSink(provider.get_tracer("test"))
    tracer = Tracer(sink)
    tracer.record(Step.CONNECT, "client", 0, 1, 10, peer="127.0.0.1:1", local="127.0.0.1:2",
                  answers={"A": ["127.0.0.1"]}, addresses=["127.0.0.1"])
    assert memory.get_finished_spans() == ()
    sink.flush()
    [span] = memory.get_finished_spans()
    [event] = span.events
    assert event.attributes is not None
    assert event.attributes["trunkline.answers"] == '{"A": ["127.0.0.1"]}'
    assert tuple(event.attributes["trunkline.addresses"]) == ("127.0.0.1",)  # type: ignore
