"""A trace started before publishing continues in the consumer (PRODUCER → CONSUMER spans),
and the handler's log lines carry that trace."""

from __future__ import annotations

import io

import structlog
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ark_mesh.bus import Bus, MessageContext, Publisher, Topology, TransientError, Worker
from ark_mesh.contracts import EmbeddingsRequest, subjects
from ark_mesh.telemetry import MessagingTelemetry, configure_logging, get_logger
from ark_mesh.telemetry.testing import capture_logs


async def test_consumer_span_is_a_child_of_the_producer_span(
    bus: Bus, topology: Topology, kit: type
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry = MessagingTelemetry.create(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    publisher = await Publisher.create(bus, telemetry=telemetry)
    handler_spans: list[trace.SpanContext] = []
    log = get_logger("handler")

    async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
        handler_spans.append(trace.get_current_span().get_span_context())
        log.info("embedding", count=len(message.input))
        if context.delivery == 1:
            raise TransientError("first attempt fails", delay=0.01)

    worker = Worker.for_type(
        bus, topology.work_binding("embeddings"), EmbeddingsRequest, handle, telemetry=telemetry
    )
    configure_logging("test", log_format="json", stream=io.StringIO())
    try:
        with capture_logs() as lines:
            await worker.start()
            tracer = provider.get_tracer("api")
            with tracer.start_as_current_span("POST /v1/embeddings") as root:
                await publisher.publish(
                    subjects.work_embeddings(kit.tenant), kit.request(1), msg_id="tr-1"
                )
            await kit.eventually(lambda: worker.stats.acked == 1, what="handled")
            await worker.stop()
    finally:
        structlog.reset_defaults()
    await publisher.close()

    spans = {(span.name, span.context.span_id): span for span in exporter.get_finished_spans()}
    (request_span,) = [s for (name, _), s in spans.items() if name == "POST /v1/embeddings"]
    (producer,) = [s for s in spans.values() if s.kind is SpanKind.PRODUCER]
    consumers = [s for s in spans.values() if s.kind is SpanKind.CONSUMER]
    trace_id = root.get_span_context().trace_id

    assert producer.parent is not None
    assert producer.parent.span_id == request_span.context.span_id
    assert len(consumers) == 2  # the failed attempt and the successful one
    for consumer in consumers:
        assert consumer.context.trace_id == trace_id
        assert consumer.parent is not None
        assert consumer.parent.span_id == producer.context.span_id
        assert consumer.attributes is not None
        assert consumer.attributes["messaging.destination.name"] == "ark.acme.work.embeddings"
        assert consumer.attributes["messaging.message.id"] == "tr-1"
    outcomes = sorted(str((c.attributes or {}).get("ark.outcome")) for c in consumers)
    assert outcomes == ["ack", "retry"]
    assert all(span.trace_id == trace_id for span in handler_spans)

    handler_lines = [line for line in lines if line["event"] == "embedding"]
    assert len(handler_lines) == 2
    for line in handler_lines:
        assert line["trace_id"] == format(trace_id, "032x")
        assert line["tenant"] == kit.tenant
        assert line["msg_id"] == "tr-1"

    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: metric.data.data_points
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    handled = {
        dict(point.attributes)["ark.outcome"]: point.value
        for point in points["messaging.client.consumed.messages"]
    }
    assert handled == {"retry": 1, "ack": 1}
    assert sum(point.value for point in points["ark.bus.redeliveries"]) == 1
    assert "messaging.client.operation.duration" in points
