"""One call that sets up logs, traces and metrics for a service process."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from ark_mesh.telemetry.logs import LogFormat, configure_logging
from ark_mesh.telemetry.providers import configure_metrics, configure_tracing

__all__ = ["TelemetryHandles", "configure_telemetry"]


@dataclass(frozen=True)
class TelemetryHandles:
    """What :func:`configure_telemetry` installed; ``None`` providers mean API no-op mode."""

    log_format: LogFormat
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None


def configure_telemetry(service: str) -> TelemetryHandles:
    """Configure logging (``ARK_LOG_*``) and OpenTelemetry (``OTEL_*``) for ``service``.

    Call it first thing in a service's entry point, before the first log line and before the
    bus connects, so every line and every span of the process is shaped the same way.
    """
    return TelemetryHandles(
        log_format=configure_logging(service),
        tracer_provider=configure_tracing(service),
        meter_provider=configure_metrics(service),
    )
