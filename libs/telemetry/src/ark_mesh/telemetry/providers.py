"""OpenTelemetry tracer and meter providers built from the standard ``OTEL_*`` variables.

Export happens only when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or the
signal-specific ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``), over
OTLP/HTTP. Without one, no SDK provider is installed at all: the API's no-op tracer still
*forwards* an incoming ``traceparent`` (its spans are non-recording copies of the parent), so
trace ids keep flowing through messages and into log lines at almost no cost, and nothing is
exported. ``OTEL_SDK_DISABLED=true`` forces that mode; ``OTEL_TRACES_EXPORTER=none`` /
``OTEL_METRICS_EXPORTER=none`` switch off one signal.

Metrics are also served for Prometheus on each process's health port (``/metrics``, see
:mod:`ark_mesh.telemetry.prometheus`) unless ``OTEL_METRICS_EXPORTER`` leaves ``prometheus``
out of its list (default ``otlp,prometheus``) or the SDK is disabled.

Tests pass their own span processors / metric readers (in-memory) and may ask for a provider
that is *not* installed globally, so several tests can each own an isolated provider.

The SDK reads the rest of the standard variables itself: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (resource), ``OTEL_TRACES_SAMPLER`` (sampling), ``OTEL_BSP_*``
(batching), ``OTEL_EXPORTER_OTLP_HEADERS`` / ``..._TIMEOUT`` (exporter).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ark_mesh.telemetry.errors import TelemetryConfigError

__all__ = [
    "configure_metrics",
    "configure_tracing",
    "prometheus_wanted",
    "service_resource",
    "shutdown_providers",
]

_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_METRICS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
_DISABLED: Final = "OTEL_SDK_DISABLED"
_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
# OTLP when an endpoint is set, and always the scrape page on the health port (it costs nothing
# until Prometheus asks for it).
_METRICS_DEFAULT: Final = "otlp,prometheus"

# The providers this module installed globally; OpenTelemetry refuses to replace a global
# provider, so a second configure call must hand back the first one instead of a dud.
_installed_tracer: TracerProvider | None = None
_installed_meter: MeterProvider | None = None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise TelemetryConfigError(name, raw, "true or false")


def _exporters(env: Mapping[str, str], selector: str, default: str) -> set[str]:
    """The exporters named in ``selector`` (a comma-separated list, as the specification has it)."""
    raw = env.get(selector, default)
    chosen = {part.strip().lower() for part in raw.split(",") if part.strip()}
    known = {"otlp", "none"} | ({"prometheus"} if selector == _METRICS_EXPORTER else set())
    unknown = chosen - known
    if unknown:
        raise TelemetryConfigError(selector, raw, " or ".join(sorted(known)))
    return set() if "none" in chosen else chosen


def _exporter_wanted(env: Mapping[str, str], selector: str, *endpoints: str) -> bool:
    default = _METRICS_DEFAULT if selector == _METRICS_EXPORTER else "otlp"
    if "otlp" not in _exporters(env, selector, default):
        return False
    return any(env.get(name) for name in endpoints)


def prometheus_wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the health port serves ``/metrics``: unless the SDK is off or metrics are ``none``."""
    source = os.environ if env is None else env
    if _flag(source, _DISABLED):
        return False
    return "prometheus" in _exporters(source, _METRICS_EXPORTER, _METRICS_DEFAULT)


def service_resource(service: str, env: Mapping[str, str] | None = None) -> Resource:
    """Resource for ``service``; ``OTEL_SERVICE_NAME`` still wins when an operator sets it."""
    source = os.environ if env is None else env
    attributes = {} if source.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    return Resource.create(attributes)


def configure_tracing(
    service: str,
    *,
    processors: Sequence[SpanProcessor] = (),
    install_global: bool = True,
    env: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Build (and by default install) the tracer provider; ``None`` means "API no-op mode".

    ``processors`` are added after the OTLP exporter, e.g. a ``SimpleSpanProcessor`` over an
    ``InMemorySpanExporter`` in tests.
    """
    global _installed_tracer
    source = os.environ if env is None else env
    if _flag(source, _DISABLED):
        return None
    if install_global and _installed_tracer is not None:
        for processor in processors:
            _installed_tracer.add_span_processor(processor)
        return _installed_tracer
    chosen: list[SpanProcessor] = []
    if _exporter_wanted(source, _TRACES_EXPORTER, _ENDPOINT, _TRACES_ENDPOINT):
        # Imported lazily: the exporter pulls in protobuf and requests, which a process that
        # exports nothing should not pay for at start-up.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        chosen.append(BatchSpanProcessor(OTLPSpanExporter()))
    chosen.extend(processors)
    if not chosen:
        return None
    provider = TracerProvider(resource=service_resource(service, source))
    for processor in chosen:
        provider.add_span_processor(processor)
    if install_global:
        trace.set_tracer_provider(provider)
        _installed_tracer = provider
    return provider


def configure_metrics(
    service: str,
    *,
    readers: Sequence[MetricReader] = (),
    install_global: bool = True,
    env: Mapping[str, str] | None = None,
) -> MeterProvider | None:
    """Build (and by default install) the meter provider; ``None`` means "API no-op mode"."""
    global _installed_meter
    source = os.environ if env is None else env
    if _flag(source, _DISABLED):
        return None
    if install_global and _installed_meter is not None:
        return _installed_meter
    chosen: list[MetricReader] = []
    if _exporter_wanted(source, _METRICS_EXPORTER, _ENDPOINT, _METRICS_ENDPOINT):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        chosen.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    chosen.extend(readers)
    if not chosen:
        return None
    provider = MeterProvider(resource=service_resource(service, source), metric_readers=chosen)
    if install_global:
        metrics.set_meter_provider(provider)
        _installed_meter = provider
    return provider


def shutdown_providers(timeout_millis: int = 5_000) -> None:
    """Flush and stop the globally installed providers (call once, on process exit)."""
    # The globals stay referenced: OpenTelemetry cannot install a second provider anyway, and
    # a late span after shutdown is dropped by the SDK rather than raising.
    if _installed_tracer is not None:
        _installed_tracer.force_flush(timeout_millis)
        _installed_tracer.shutdown()
    if _installed_meter is not None:
        _installed_meter.shutdown(timeout_millis=timeout_millis)
