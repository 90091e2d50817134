"""Direct + in-controller: the simple preset behaves like Ark today (no NATS anywhere)."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ark_mesh.contracts import Query, TokenUsage
from ark_mesh.contracts.ark import BROKER_MIRROR_LABEL, FINALIZER, RECONCILIATION_ANNOTATION
from ark_mesh.controller.config import ReconciliationConfig, SchedulerConfig
from ark_mesh.kube import CORE_EVENTS
from ark_mesh.telemetry import configure_tracing
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import Match, Reply, Rule
from ark_mesh.testing.k8s.tracking import ObjectTracker

NS = "default"


def completed(query: Query) -> tuple[str, str, str]:
    assert query.status is not None
    for condition in query.status.conditions or []:
        if condition.type == "Completed":
            return condition.status, condition.reason, condition.message
    raise AssertionError("no Completed condition")


async def test_query_is_resolved_in_process_with_one_write_per_phase(
    cluster, start_controller
) -> None:
    with ObjectTracker(cluster.kube, "queries", NS, "weather") as tracker:
        await start_controller()
        await cluster.client.create(ark_objects.query("weather", NS, "What is the weather?"))
        query = await cluster.wait_phase("weather", "done", "error")
        await asyncio.sleep(0.3)  # let any stray write show up before counting
    assert query.status is not None
    assert query.status.phase == "done"
    assert completed(query)[:2] == ("True", "QuerySucceeded")
    assert query.status.response is not None
    assert query.status.response.content
    assert query.status.response.target is not None
    assert query.status.response.target.name == "assistant"
    assert query.status.token_usage == TokenUsage(
        prompt_tokens=50, completion_tokens=100, total_tokens=150
    )
    assert query.status.duration
    assert FINALIZER in (query.metadata.finalizers or [])
    # No reconciliation loop: spec never changes, generation never moves, status is written
    # once per phase change (pending, running, done), metadata once (the finalizer).
    assert tracker.generation_bumps == 0
    assert tracker.spec_writes == 0
    assert tracker.metadata_writes == 1
    phases = [
        c.object.get("status", {}).get("phase") for c in tracker.changes if "status" in c.changed
    ]
    assert phases == ["pending", "running", "done"]
    assert tracker.status_writes == 3


async def test_query_execution_events_are_kubernetes_events(cluster, start_controller) -> None:
    await start_controller()
    await cluster.client.create(ark_objects.query("evented", NS, "hi"))
    await cluster.wait_phase("evented", "done")
    async with asyncio.timeout(10):
        while True:
            events = await cluster.client.list_objects(
                CORE_EVENTS, NS, field_selector="involvedObject.name=evented"
            )
            reasons = {e.get("reason") for e in events.items}
            if {"QueryExecutionStart", "QueryExecutionComplete"} <= reasons:
                break
            await asyncio.sleep(0.05)


async def test_disallowed_mode_missing_target_and_bad_spec_fail_alone(
    cluster, start_controller
) -> None:
    await start_controller(reconciliation=ReconciliationConfig())
    await cluster.client.create(
        ark_objects.query(
            "wants-standalone", NS, "hi", annotations={RECONCILIATION_ANNOTATION: "standalone"}
        )
    )
    await cluster.client.create(
        ark_objects.query("no-such-agent", NS, "hi", target=("agent", "ghost"))
    )
    await cluster.client.create(ark_objects.query("bad-timeout", NS, "hi", timeout="soon"))
    await cluster.client.create(ark_objects.query("fine", NS, "hi"))

    refused = await cluster.wait_phase("wants-standalone", "done", "error")
    assert refused.status is not None
    assert refused.status.phase == "error"
    status, reason, message = completed(refused)
    assert (status, reason) == ("True", "ReconciliationModeNotAllowed")
    assert "'standalone'" in message
    assert "allowedModes: inController" in message

    missing = await cluster.wait_phase("no-such-agent", "done", "error")
    assert missing.status is not None
    assert missing.status.phase == "error"
    assert "ghost" in completed(missing)[2]
    assert missing.status.response is not None
    assert "ghost" in missing.status.response.content

    bad = await cluster.wait_phase("bad-timeout", "done", "error")
    assert "spec.timeout" in completed(bad)[2]

    fine = await cluster.wait_phase("fine", "done", "error")
    assert fine.status is not None
    assert fine.status.phase == "done"


async def test_cancel_stops_a_running_query(cluster, start_controller) -> None:
    cluster.fake.add_rule(
        Rule(match=Match(user="slow please"), reply=Reply(content="word " * 400, chunk_delay=0.05))
    )
    # The namespace streams model calls (Ark's ConfigMap, read from the cluster): the cancel
    # must close the live provider stream.
    await cluster.client.create(ark_objects.streaming_config(NS))
    await start_controller()
    await cluster.client.create(ark_objects.query("slow", NS, "slow please"))
    await cluster.wait_phase("slow", "running")

    # The controller's Model probes reach the same fake model: follow this query's call only.
    def slow_calls(requests: list[Any]) -> list[Any]:
        return [r for r in requests if "slow please" in str(r.body)]

    await cluster.fake.wait_until(lambda requests: len(slow_calls(requests)) >= 1)
    await cluster.client.patch(Query, NS, "slow", {"spec": {"cancel": True}})
    query = await cluster.wait_phase("slow", "canceled", "done", "error")
    assert query.status is not None
    assert query.status.phase == "canceled"
    assert completed(query)[:2] == ("True", "QueryCanceled")
    await cluster.fake.wait_until(lambda rs: slow_calls(rs)[-1].outcome == "client_disconnected")
    assert slow_calls(cluster.fake.requests_to("chat"))[-1].body["stream"] is True


async def test_ttl_counts_from_completion_then_deletes(cluster, start_controller) -> None:
    with ObjectTracker(cluster.kube, "queries", NS, "short-lived") as tracker:
        await start_controller()
        await cluster.client.create(ark_objects.query("short-lived", NS, "hi", ttl="1s"))
        async with asyncio.timeout(30):
            await tracker.wait_for(lambda changes: changes[-1].type == "DELETED")
    phases = [c.object.get("status", {}).get("phase") for c in tracker.changes]
    # Completed first, then deleted (the finalizer ran and came off); never reaped while running.
    assert "done" in phases
    assert phases.index("done") < len(phases) - 1
    assert tracker.changes[-1].type == "DELETED"
    assert tracker.generation_bumps == 0


async def test_capacity_queues_then_runs_everything(cluster, start_controller) -> None:
    cluster.fake.add_rule(
        Rule(match=Match(user="busy"), reply=Reply(content="a b c d e", chunk_delay=0.05))
    )
    await start_controller(scheduler=SchedulerConfig(max_concurrent_queries=1))
    names = [f"busy-{i}" for i in range(3)]
    trackers = [ObjectTracker(cluster.kube, "queries", NS, n) for n in names]
    for tracker in trackers:
        tracker.start()
    for name in names:
        await cluster.client.create(ark_objects.query(name, NS, "busy work"))
    for name in names:
        query = await cluster.wait_phase(name, "done", "error")
        assert query.status is not None
        assert query.status.phase == "done"
    seen = [{c.object.get("status", {}).get("phase") for c in t.changes} for t in trackers]
    for tracker in trackers:
        tracker.stop()
    assert any("queued" in phases for phases in seen)


async def test_one_millisecond_timeout_ends_in_error(cluster, start_controller) -> None:
    cluster.fake.add_rule(
        Rule(match=Match(user="tiny budget"), reply=Reply(content="x " * 50, chunk_delay=0.05))
    )
    await start_controller()
    await cluster.client.create(ark_objects.query("hurry", NS, "tiny budget", timeout="1ms"))
    query = await cluster.wait_phase("hurry", "done", "error")
    assert query.status is not None
    assert query.status.phase == "error"
    assert completed(query)[1] in {"TimedOutInQueue", "TimedOutInExecution"}


async def test_in_controller_resolution_is_one_trace_down_to_the_model_call(
    cluster, start_controller
) -> None:
    exporter = InMemorySpanExporter()
    assert configure_tracing("controller-test", processors=[SimpleSpanProcessor(exporter)])
    await start_controller()
    await cluster.client.create(ark_objects.query("traced", NS, "trace me"))
    await cluster.wait_phase("traced", "done")
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == f"resolve query {NS}/traced"]
    in_trace = {s.name: s for s in spans if s.context.trace_id == root.context.trace_id}
    assert in_trace["invoke_agent assistant"].parent.span_id == root.context.span_id  # type: ignore[union-attr]
    assert "chat fake-model" in in_trace
    (sent,) = [r for r in cluster.fake.requests if "trace me" in str(r.body)]
    assert f"{root.context.trace_id:032x}" in sent.header("traceparent")  # type: ignore[operator]


async def test_broker_mirrors_are_left_alone(cluster, start_controller) -> None:
    await start_controller()
    mirror = ark_objects.query("mirrored", NS, "hi")
    mirror.metadata.labels = {BROKER_MIRROR_LABEL: "true"}
    await cluster.client.create(mirror)
    await cluster.client.create(ark_objects.query("normal", NS, "hi"))
    await cluster.wait_phase("normal", "done")
    untouched = await cluster.client.get(Query, NS, "mirrored")
    assert untouched.status is None
    assert untouched.metadata.finalizers is None
