"""OpenTelemetry spans for the resolver's operations, named by the GenAI conventions.

Every operation that emits Ark events (``LLMCall``, ``ToolCall``, ``AgentExecution``, …) also
opens a span, so one trace runs from the request that created the query (the broker's HTTP
span, or the controller's reconcile) through the reconciler to each model and tool call. Model
calls are ``chat <model>`` spans with ``gen_ai.*`` attributes and token usage; the W3C trace
context is also sent to the provider in the request headers.

Only the OpenTelemetry *API* is used: with no SDK installed (or none configured) every call
here is a no-op, and the resolver stays free of ark-mesh's telemetry wiring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

__all__ = ["TRACER", "inject_trace_headers", "operation_span_name", "span_attributes"]

TRACER: Final = trace.get_tracer("ark_mesh.resolver")

_GENAI_SYSTEM = {"openai": "openai", "azure": "az.ai.openai"}


def operation_span_name(operation: str, data: Mapping[str, str]) -> str:
    if operation == "LLMCall":
        return f"chat {data.get('modelId') or data.get('model', '')}".strip()
    if operation == "ToolCall":
        return f"execute_tool {data.get('toolName') or data.get('tool', '')}".strip()
    if operation == "AgentExecution":
        return f"invoke_agent {data.get('agent', '')}".strip()
    return operation


def span_kind(operation: str) -> SpanKind:
    return SpanKind.CLIENT if operation in ("LLMCall", "ToolCall") else SpanKind.INTERNAL


def span_attributes(operation: str, data: Mapping[str, str]) -> dict[str, str | int]:
    """``gen_ai.*`` attributes where the conventions define them, ``ark.*`` for the rest."""
    attributes: dict[str, str | int] = {"ark.operation": operation}
    for key in ("queryId", "queryName", "queryNamespace", "sessionId", "conversationId"):
        if key in data:
            attributes[f"ark.{key}"] = data[key]
    if operation == "LLMCall":
        attributes["gen_ai.operation.name"] = "chat"
        if "modelId" in data:
            attributes["gen_ai.request.model"] = data["modelId"]
        if "provider" in data:
            attributes["gen_ai.system"] = _GENAI_SYSTEM.get(data["provider"], data["provider"])
    elif operation == "ToolCall":
        attributes["gen_ai.operation.name"] = "execute_tool"
        if "toolName" in data:
            attributes["gen_ai.tool.name"] = data["toolName"]
        if "toolId" in data:
            attributes["gen_ai.tool.call.id"] = data["toolId"]
    if "agent" in data:
        attributes["gen_ai.agent.name"] = data["agent"]
    return attributes


def record_usage(span: Span, details: Mapping[str, str]) -> None:
    """Token counts of a finished model call, as the GenAI conventions name them."""
    for source, target in (
        ("promptTokens", "gen_ai.usage.input_tokens"),
        ("completionTokens", "gen_ai.usage.output_tokens"),
    ):
        value = details.get(source)
        if value is not None and value.isdigit():
            span.set_attribute(target, int(value))


def inject_trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the current W3C trace context, for the provider's HTTP request."""
    carrier = dict(headers)
    propagate.inject(carrier)
    return carrier
