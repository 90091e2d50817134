"""W3C trace context in NATS message headers.

NATS headers are a plain ``str -> str`` mapping, which is exactly what OpenTelemetry's text-map
propagators read and write, so the global propagator (``OTEL_PROPAGATORS``, default
``tracecontext,baggage``) is used as is: ``traceparent``, ``tracestate`` and ``baggage`` travel
with every message and a consumer in another process continues the producer's trace.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from opentelemetry import propagate
from opentelemetry.context import Context

__all__ = ["extract_context", "inject_context"]


def inject_context(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the trace context (current one unless given) into ``headers`` in place.

    Writes nothing when there is no valid span, so untraced messages carry no stale ids.
    """
    propagate.inject(headers, context=context)


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """Read a trace context from message headers (an empty context when there is none)."""
    return propagate.extract(headers or {})
