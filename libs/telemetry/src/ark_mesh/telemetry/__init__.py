"""Logging, tracing and metrics set up the same way in every ark-mesh process.

* :func:`configure_telemetry` — once per process: structlog (JSON or console), OpenTelemetry
  providers from ``OTEL_*`` (OTLP/HTTP export only when an endpoint is set).
* :func:`bound_context` / :func:`bind_context` — put ``tenant``, ``query_id``… on every line.
* :class:`MessagingTelemetry` — PRODUCER/CONSUMER spans with trace context carried in NATS
  headers, and the standard bus metrics.
* :class:`PrometheusScrape` — the metrics as Prometheus text, for ``/metrics`` on the health port.
* :mod:`ark_mesh.telemetry.testing` — :func:`~ark_mesh.telemetry.testing.capture_logs`.
"""

from ark_mesh.telemetry.errors import TelemetryConfigError, TelemetryError
from ark_mesh.telemetry.logs import (
    LogFormat,
    add_trace_context,
    bind_context,
    bound_context,
    configure_logging,
    context_processors,
    get_logger,
    unbind_context,
)
from ark_mesh.telemetry.messaging import Attr, MessagingMetrics, MessagingTelemetry
from ark_mesh.telemetry.prometheus import PrometheusScrape
from ark_mesh.telemetry.propagation import extract_context, inject_context
from ark_mesh.telemetry.providers import (
    configure_metrics,
    configure_tracing,
    prometheus_wanted,
    service_resource,
    shutdown_providers,
)
from ark_mesh.telemetry.setup import TelemetryHandles, configure_telemetry

__all__ = [
    "Attr",
    "LogFormat",
    "MessagingMetrics",
    "MessagingTelemetry",
    "PrometheusScrape",
    "TelemetryConfigError",
    "TelemetryError",
    "TelemetryHandles",
    "add_trace_context",
    "bind_context",
    "bound_context",
    "configure_logging",
    "configure_metrics",
    "configure_telemetry",
    "configure_tracing",
    "context_processors",
    "extract_context",
    "get_logger",
    "inject_context",
    "prometheus_wanted",
    "service_resource",
    "shutdown_providers",
    "unbind_context",
]
