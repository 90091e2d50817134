"""Spans and metrics for messages crossing the bus, following OpenTelemetry's messaging conventions.

A publish opens a PRODUCER span and writes its context into the message headers; handling the
message opens a CONSUMER span whose parent is read back from those headers. The two processes
therefore show up as one trace: HTTP request → publish → (queue) → process → publish chunk → ….

The metrics are the ones an operator needs to see a mesh misbehave before users do:

===========================================  =========  ==============================================
instrument                                   kind       meaning
===========================================  =========  ==============================================
``messaging.client.consumed.messages``       counter    messages handled, by consumer and ``outcome``
``messaging.process.duration``               histogram  handler latency (s), by consumer and outcome
``ark.bus.messages.in_flight``               up-down    handlers running right now, by consumer
``ark.bus.redeliveries``                     counter    deliveries with a delivery count above 1
``ark.bus.dead_letters``                     counter    messages moved to the DLQ, by ``reason``
``messaging.client.sent.messages``           counter    publishes acknowledged, by ``ark.schema``
``messaging.client.operation.duration``      histogram  publish round trip (s), by ``ark.schema``
===========================================  =========  ==============================================

Subjects embed query ids, so they are span attributes only, never metric attributes (that would
create one time series per query).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider

from ark_mesh.telemetry.propagation import extract_context, inject_context

__all__ = ["SECONDS_BUCKETS", "Attr", "MessagingMetrics", "MessagingTelemetry"]

_SCOPE: Final = "ark_mesh.bus"

SECONDS_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
"""OpenTelemetry's recommended boundaries for durations in seconds (the SDK's default ones are
for milliseconds): a handler or publish time lands in a bucket that tells something."""


class Attr:
    """Attribute names (OpenTelemetry messaging semantic conventions, plus ``ark.*``)."""

    SYSTEM: Final = "messaging.system"
    DESTINATION: Final = "messaging.destination.name"
    OPERATION_TYPE: Final = "messaging.operation.type"
    OPERATION_NAME: Final = "messaging.operation.name"
    MESSAGE_ID: Final = "messaging.message.id"
    CONSUMER_GROUP: Final = "messaging.consumer.group.name"
    DELIVERY_COUNT: Final = "messaging.nats.message.delivery_count"
    BODY_SIZE: Final = "messaging.message.body.size"
    SCHEMA: Final = "ark.schema"
    OUTCOME: Final = "ark.outcome"
    REASON: Final = "ark.reason"
    TENANT: Final = "ark.tenant"


@dataclass(frozen=True)
class MessagingMetrics:
    """The standard bus instruments, created once per meter."""

    handled: metrics.Counter
    handler_duration: metrics.Histogram
    in_flight: metrics.UpDownCounter
    redeliveries: metrics.Counter
    dead_letters: metrics.Counter
    sent: metrics.Counter
    publish_duration: metrics.Histogram

    @classmethod
    def create(cls, meter: Meter) -> MessagingMetrics:
        return cls(
            handled=meter.create_counter(
                "messaging.client.consumed.messages",
                unit="{message}",
                description="Messages handled by a worker, by consumer and outcome",
            ),
            handler_duration=meter.create_histogram(
                "messaging.process.duration",
                unit="s",
                description="Time a handler took for one message",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            in_flight=meter.create_up_down_counter(
                "ark.bus.messages.in_flight",
                unit="{message}",
                description="Handlers running right now",
            ),
            redeliveries=meter.create_counter(
                "ark.bus.redeliveries",
                unit="{message}",
                description="Deliveries of a message that was delivered before",
            ),
            dead_letters=meter.create_counter(
                "ark.bus.dead_letters",
                unit="{message}",
                description="Messages moved to the dead-letter stream, by reason",
            ),
            sent=meter.create_counter(
                "messaging.client.sent.messages",
                unit="{message}",
                description="Messages published and acknowledged by JetStream",
            ),
            publish_duration=meter.create_histogram(
                "messaging.client.operation.duration",
                unit="s",
                description="Publish round trip until JetStream acknowledged the message",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
        )


@dataclass
class MessagingTelemetry:
    """Tracer plus instruments used by the bus; build one per provider pair (tests) or use
    :meth:`from_globals` (services, after :func:`~ark_mesh.telemetry.configure_telemetry`)."""

    tracer: Tracer
    metrics: MessagingMetrics
    system: str = "nats"
    tracer_provider: TracerProvider | None = None
    """The provider the tracer came from; ``None`` means the global one (looked up per use)."""
    meter_provider: MeterProvider | None = None
    _attrs_cache: dict[tuple[str, ...], Mapping[str, str]] = field(default_factory=dict)
    _tracing: bool = False
    _tracing_recheck: float = 0.0

    @classmethod
    def create(
        cls,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> MessagingTelemetry:
        tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        return cls(
            tracer=tracer,
            metrics=MessagingMetrics.create(meter),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    @property
    def tracing(self) -> bool:
        """Whether spans can be recorded at all (an SDK provider is in place).

        Without one, the bus skips span objects entirely and only forwards the trace context:
        the API's no-op spans still cost several microseconds each, which is real money at tens
        of thousands of messages per second.
        """
        if self._tracing:
            return True
        now = time.monotonic()
        if now < self._tracing_recheck:
            return False
        # Looking the global provider up reads the environment each time; a provider that
        # appears later (configure_telemetry after the bus) is noticed within a second.
        self._tracing_recheck = now + 1.0
        provider = self.tracer_provider or trace.get_tracer_provider()
        self._tracing = not isinstance(
            provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        return self._tracing

    @property
    def metering(self) -> bool:
        """Whether an SDK meter provider records the instruments (checked by callers once, at
        start-up, to skip no-op recording calls on hot paths)."""
        provider = self.meter_provider or metrics.get_meter_provider()
        return isinstance(provider, SdkMeterProvider)

    def inject_current(self, headers: MutableMapping[str, str]) -> None:
        """Forward the active trace context (if there is one) without opening a span."""
        if trace.get_current_span().get_span_context().is_valid:
            inject_context(headers)

    def adopt(self, headers: Mapping[str, str] | None) -> Token[Context] | None:
        """Make the trace context found in ``headers`` current, without opening a span.

        Returns a token for :meth:`release` (``None`` when there was nothing to adopt).
        """
        if not headers or "traceparent" not in headers:
            return None
        return otel_context.attach(extract_context(headers))

    @staticmethod
    def release(token: Token[Context] | None) -> None:
        if token is not None:
            otel_context.detach(token)

    @classmethod
    def from_globals(cls) -> MessagingTelemetry:
        return cls.create()

    def attrs(self, *pairs: str) -> Mapping[str, str]:
        """Interned attribute dicts for metric recording (``key1, value1, key2, value2, …``).

        Metric attributes repeat on every message; reusing one mapping per combination keeps
        the hot path free of dict construction.
        """
        cached = self._attrs_cache.get(pairs)
        if cached is None:
            cached = dict(zip(pairs[::2], pairs[1::2], strict=True))
            self._attrs_cache[pairs] = cached
        return cached

    @contextlib.contextmanager
    def publish_span(
        self,
        subject: str,
        headers: MutableMapping[str, str],
        *,
        message_id: str | None = None,
        schema: str | None = None,
    ) -> Iterator[Span]:
        """PRODUCER span around a publish; writes ``traceparent`` into ``headers``."""
        with self.tracer.start_as_current_span(
            f"publish {schema or subject}", kind=SpanKind.PRODUCER
        ) as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        Attr.SYSTEM: self.system,
                        Attr.DESTINATION: subject,
                        Attr.OPERATION_TYPE: "send",
                        Attr.OPERATION_NAME: "publish",
                    }
                )
                if message_id is not None:
                    span.set_attribute(Attr.MESSAGE_ID, message_id)
                if schema is not None:
                    span.set_attribute(Attr.SCHEMA, schema)
            inject_context(headers)
            yield span

    @contextlib.contextmanager
    def process_span(
        self,
        subject: str,
        headers: Mapping[str, str] | None,
        *,
        consumer: str,
        message_id: str | None = None,
        delivery_count: int | None = None,
        tenant: str | None = None,
    ) -> Iterator[Span]:
        """CONSUMER span around a handler, child of the producer span found in ``headers``."""
        parent = extract_context(headers)
        with self.tracer.start_as_current_span(
            f"process {consumer}", context=parent, kind=SpanKind.CONSUMER
        ) as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        Attr.SYSTEM: self.system,
                        Attr.DESTINATION: subject,
                        Attr.OPERATION_TYPE: "process",
                        Attr.OPERATION_NAME: "process",
                        Attr.CONSUMER_GROUP: consumer,
                    }
                )
                if message_id is not None:
                    span.set_attribute(Attr.MESSAGE_ID, message_id)
                if delivery_count is not None:
                    span.set_attribute(Attr.DELIVERY_COUNT, delivery_count)
                if tenant is not None:
                    span.set_attribute(Attr.TENANT, tenant)
            yield span
