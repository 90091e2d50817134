"""One trace across processes: controller dispatch → query-reconciler → model call (OTLP)."""

from __future__ import annotations

import pytest

from ark_mesh.contracts.ark import RECONCILIATION_ANNOTATION
from ark_mesh.testing import ark_objects
from ark_mesh.testing.otlp import OTLPReceiver, ReceivedSpan

pytestmark = pytest.mark.slow


async def test_a_standalone_query_is_one_trace_from_dispatch_to_model_call(start_mesh) -> None:
    async with OTLPReceiver() as otlp:
        mesh, probe = await start_mesh(
            preset="scale-flexible",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            },
        )
        async with await mesh.client() as client:
            await client.create(
                ark_objects.query(
                    "traced",
                    mesh.namespace,
                    "trace this",
                    annotations={RECONCILIATION_ANNOTATION: "standalone"},
                )
            )
        await probe.wait_phase("traced", "done")

        def complete(spans: list[ReceivedSpan]) -> bool:
            """The model call's chain of parents reaches the dispatch: the spans between them
            end after the model call (the handler's, when it acks) and come in later batches,
            so waiting for the two ends alone raced them."""
            by_id = {s.span_id: s for s in spans}
            chats = [s for s in spans if s.name == "chat fake-model"]
            if not chats:
                return False
            current = chats[0]
            while current.parent_span_id in by_id:
                current = by_id[current.parent_span_id]
            return current.name == f"dispatch query {mesh.namespace}/traced"

        spans = await otlp.wait_for(complete, within=60)
    (dispatch,) = [s for s in spans if s.name == f"dispatch query {mesh.namespace}/traced"]
    trace = [s for s in spans if s.trace_id == dispatch.trace_id]
    services = {s.service for s in trace}
    assert {"controller", "query-reconciler"} <= services
    (chat,) = [s for s in trace if s.name == "chat fake-model"]
    assert chat.service == "query-reconciler"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 50
    # Walk up from the model call to the controller's dispatch span.
    by_id = {s.span_id: s for s in trace}
    chain, current = [], chat
    while current.parent_span_id and current.parent_span_id in by_id:
        current = by_id[current.parent_span_id]
        chain.append(current.name)
    assert chain[-1] == dispatch.name, chain
    assert mesh.fake_llm is not None
    (sent,) = [r for r in await mesh.fake_llm.control.requests() if "trace this" in str(r.body)]
    assert dispatch.trace_id in (sent.header("traceparent") or "")
