"""Providers from OTEL_* variables, W3C propagation through headers, messaging spans, metrics."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ark_mesh.telemetry import (
    Attr,
    MessagingTelemetry,
    TelemetryConfigError,
    configure_metrics,
    configure_tracing,
    extract_context,
    inject_context,
)


def test_no_endpoint_means_no_sdk_provider() -> None:
    assert configure_tracing("svc", install_global=False, env={}) is None
    assert configure_metrics("svc", install_global=False, env={}) is None


def test_endpoint_builds_an_otlp_http_exporter() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    provider = configure_tracing("svc", install_global=False, env=env)
    assert provider is not None
    processors = provider._active_span_processor._span_processors
    exporter = processors[0].span_exporter  # type: ignore[attr-defined]
    assert type(exporter).__name__ == "OTLPSpanExporter"
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()


def test_sdk_disabled_and_exporter_none_are_honoured() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}
    assert configure_tracing("svc", install_global=False, env=env) is None
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}
    assert configure_tracing("svc", install_global=False, env=env) is None


def test_unknown_exporter_is_a_clear_error() -> None:
    with pytest.raises(TelemetryConfigError, match="OTEL_TRACES_EXPORTER"):
        configure_tracing("svc", install_global=False, env={"OTEL_TRACES_EXPORTER": "zipkin"})


def test_consumer_span_is_child_of_producer_span_through_headers() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = MessagingTelemetry.create(tracer_provider=provider)

    headers: dict[str, str] = {}
    with telemetry.publish_span("ark.t.work.query", headers, message_id="q:1", schema="s.v1"):
        pass
    assert headers["traceparent"].startswith("00-")
    # A fresh context, as in another process: only the headers connect the two spans.
    with telemetry.process_span(
        "ark.t.work.query", dict(headers), consumer="query-reconciler", delivery_count=2
    ):
        pass

    producer, consumer = exporter.get_finished_spans()
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert producer.attributes[Attr.SYSTEM] == "nats"
    assert producer.attributes[Attr.MESSAGE_ID] == "q:1"
    assert consumer.attributes[Attr.CONSUMER_GROUP] == "query-reconciler"
    assert consumer.attributes[Attr.DELIVERY_COUNT] == 2


def test_without_sdk_the_incoming_trace_still_flows_downstream() -> None:
    # No provider installed: spans are no-ops, but a consumer forwards the producer's trace.
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    telemetry = MessagingTelemetry.create(tracer_provider=trace.NoOpTracerProvider())
    outgoing: dict[str, str] = {}
    with telemetry.process_span("s", incoming, consumer="c"):
        inject_context(outgoing)
    assert outgoing["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert extract_context(None) is not None


def test_standard_metrics_are_recorded() -> None:
    reader = InMemoryMetricReader()
    telemetry = MessagingTelemetry.create(meter_provider=MeterProvider(metric_readers=[reader]))
    attrs = telemetry.attrs(Attr.CONSUMER_GROUP, "c", Attr.OUTCOME, "ack")
    assert telemetry.attrs(Attr.CONSUMER_GROUP, "c", Attr.OUTCOME, "ack") is attrs
    telemetry.metrics.handled.add(3, attrs)
    telemetry.metrics.handler_duration.record(0.25, attrs)
    telemetry.metrics.dead_letters.add(1, {Attr.REASON: "permanent"})
    data = reader.get_metrics_data()
    assert data is not None
    names = {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"messaging.client.consumed.messages", "messaging.process.duration"} <= set(names)
    handled = names["messaging.client.consumed.messages"].data.data_points[0]
    assert handled.value == 3
    assert dict(handled.attributes) == {Attr.CONSUMER_GROUP: "c", Attr.OUTCOME: "ack"}
