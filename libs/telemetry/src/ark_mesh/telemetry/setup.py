"""One call that sets up logs, traces and metrics for a service process."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from ark_mesh.telemetry.logs import LogFormat, configure_logging
from ark_mesh.telemetry.prometheus import PrometheusScrape
from ark_mesh.telemetry.providers import (
    configure_metrics,
    configure_tracing,
    prometheus_wanted,
    service_resource,
)

__all__ = ["TelemetryHandles", "configure_telemetry"]


# One per process, like the global meter provider it is registered with: a second configure call
# (several services in one process) hands back the reader that provider really feeds.
_scrape: PrometheusScrape | None = None


@dataclass(frozen=True)
class TelemetryHandles:
    """What :func:`configure_telemetry` installed; ``None`` providers mean API no-op mode."""

    log_format: LogFormat
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    scrape: PrometheusScrape | None = None
    """The ``/metrics`` page's reader, when Prometheus export is on (see :func:`prometheus_wanted`)."""


def configure_telemetry(service: str) -> TelemetryHandles:
    """Configure logging (``ARK_LOG_*``) and OpenTelemetry (``OTEL_*``) for ``service``.

    Call it first thing in a service's entry point, before the first log line and before the
    bus connects, so every line and every span of the process is shaped the same way.
    """
    global _scrape
    if _scrape is None and prometheus_wanted():
        _scrape = PrometheusScrape(service_resource(service))
    scrape = _scrape
    return TelemetryHandles(
        log_format=configure_logging(service),
        tracer_provider=configure_tracing(service),
        meter_provider=configure_metrics(service, readers=() if scrape is None else (scrape,)),
        scrape=scrape,
    )
