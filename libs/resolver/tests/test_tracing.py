"""One trace from the caller's span through the agent to the model call and the provider."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ark_mesh.contracts import QueryTarget
from ark_mesh.telemetry import configure_tracing


async def test_model_and_tool_calls_are_spans_of_the_callers_trace(world) -> None:  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    assert (
        configure_tracing("resolver-test", processors=[SimpleSpanProcessor(exporter)]) is not None
    )
    world.model()
    world.agent("helper")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("reconcile query") as root:
        status, _ = await world.resolve(
            world.request(target=QueryTarget(type="agent", name="helper"))
        )
    assert status.phase == "done"
    trace_id = root.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_name = {s.name: s for s in spans}

    chat = by_name["chat fake-model"]
    agent = by_name["invoke_agent helper"]
    assert chat.kind is SpanKind.CLIENT
    assert chat.parent is not None
    assert chat.parent.span_id == agent.context.span_id
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "fake-model"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 50
    assert attributes["gen_ai.usage.output_tokens"] == 100
    assert attributes["gen_ai.agent.name"] == "helper"

    # The provider's HTTP request carries the same trace, parented on the chat span.
    (sent,) = world.fake.requests
    traceparent = {k.lower(): v for k, v in sent.headers.items()}["traceparent"]
    _, sent_trace, sent_parent, _ = traceparent.split("-")
    assert int(sent_trace, 16) == trace_id
    assert int(sent_parent, 16) == chat.context.span_id
