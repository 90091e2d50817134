"""The producer's trace continues through the worker into the resolution and the status it
publishes, and the handler's log lines carry the query's identity and that trace."""

from __future__ import annotations

import io
from typing import Any

import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ark_mesh.bus import Publisher
from ark_mesh.contracts import subjects
from ark_mesh.telemetry import MessagingTelemetry, configure_logging
from ark_mesh.telemetry.testing import capture_logs


async def test_the_resolution_joins_the_producers_trace(mesh: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = MessagingTelemetry.create(tracer_provider=provider, meter_provider=MeterProvider())
    configure_logging("test", log_format="json", stream=io.StringIO())
    try:
        with capture_logs() as lines:
            await mesh.start(telemetry=telemetry)
            producer = await Publisher.create(mesh.bus, telemetry=telemetry)
            request = mesh.request()
            with provider.get_tracer("test").start_as_current_span("POST /v1/queries") as root:
                await producer.publish(
                    subjects.work_query(request.tenant), request, msg_id=request.msg_id
                )
            await producer.close()
            outcome = await mesh.outcome(request)
    finally:
        structlog.reset_defaults()

    assert outcome.statuses[-1].phase == "done"
    trace_id = root.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    (consumer,) = [s for s in spans if s.kind is SpanKind.CONSUMER]
    (resolve,) = [s for s in spans if s.name == "resolve query"]
    assert consumer.context.trace_id == trace_id
    assert resolve.context.trace_id == trace_id
    assert resolve.parent is not None
    assert resolve.parent.span_id == consumer.context.span_id
    assert resolve.attributes is not None
    assert resolve.attributes["ark.query.id"] == request.query_id
    status_publishes = [
        s
        for s in spans
        if s.kind is SpanKind.PRODUCER
        and (s.attributes or {}).get("messaging.destination.name")
        == subjects.query_status(request.tenant, request.query_id)
    ]
    assert len(status_publishes) == 2
    assert all(s.context.trace_id == trace_id for s in status_publishes)
    (resolved,) = [line for line in lines if line["event"] == "query resolved"]
    assert resolved["query_id"] == request.query_id
    assert resolved["tenant"] == request.tenant
    assert resolved["trace_id"] == format(trace_id, "032x")
