"""StatusWriter: /status only, no empty writes, terminal phases final, converges under faults."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from ark_mesh.contracts import ObjectMeta, Query, QueryResponse, QuerySpec, QueryStatus, QueryTarget
from ark_mesh.kube import KubeClient, NotFoundError, RetryPolicy, StatusWriter, TerminalPhaseError
from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.tracking import ObjectTracker

FAST = RetryPolicy(attempts=8, initial=0.01, maximum=0.2)


async def make_query(kube: KubeClient, name: str) -> Query:
    return await kube.create(
        Query(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=QuerySpec(input="hello", target=QueryTarget(type="agent", name="a1")),
        )
    )


async def test_writes_status_only_and_nothing_when_unchanged(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    await make_query(kube, "q1")
    writer = StatusWriter(kube, retry=FAST)
    with ObjectTracker(kube_emulator, "queries", "default", "q1") as tracker:
        running = await writer.write(Query, "default", "q1", QueryStatus(phase="running"))
        assert running.written
        assert running.object.status is not None
        assert running.object.status.phase == "running"
        again = await writer.write(Query, "default", "q1", {"phase": "running"})
        assert not again.written
        done = await writer.write(
            Query,
            "default",
            "q1",
            QueryStatus(phase="done", response=QueryResponse(content="hi", phase="done")),
        )
        assert done.written
        assert done.object.spec.input == "hello"
        repeated = await writer.write(Query, "default", "q1", QueryStatus(phase="done"))
        assert not repeated.written

    assert tracker.status_writes == 2
    assert tracker.reconcile_triggers == 2
    assert tracker.generation_bumps == 0
    assert all(change.changed == {"status"} for change in tracker.changes)
    assert kube_emulator.log.count(verb="patch", resource="queries", subresource="status") == 2
    assert kube_emulator.log.count(verb="patch", resource="queries", subresource="") == 0
    activity = kube_emulator.activity("queries", "default", "q1")
    assert (activity.status_writes, activity.updates, activity.generation) == (2, 0, 1)


async def test_terminal_phase_is_final(kube: KubeClient, kube_emulator: KubeEmulator) -> None:
    await make_query(kube, "q2")
    writer = StatusWriter(kube, retry=FAST)
    await writer.write(Query, "default", "q2", {"phase": "error"})
    patches_before = kube_emulator.log.count(verb="patch", subresource="status")
    for later in ("running", "pending", "done"):
        with pytest.raises(TerminalPhaseError, match="terminal phase"):
            await writer.write(Query, "default", "q2", {"phase": later})
    assert kube_emulator.log.count(verb="patch", subresource="status") == patches_before
    # nor does a second outcome in the same phase replace the first (exactly one result) ...
    with pytest.raises(TerminalPhaseError, match="exactly one terminal result"):
        await writer.write(Query, "default", "q2", {"phase": "error", "duration": "1s"})
    # ... while repeating the outcome that is already there is a no-op, not an error
    again = await writer.write(Query, "default", "q2", {"phase": "error"})
    assert not again.written
    assert kube_emulator.log.count(verb="patch", subresource="status") == patches_before
    current = await kube.get(Query, "default", "q2")
    assert current.status == QueryStatus(phase="error")


@pytest.mark.parametrize(("status", "times"), [(409, 3), (429, 2), (500, 3)])
async def test_converges_through_injected_failures(
    kube: KubeClient, kube_emulator: KubeEmulator, status: int, times: int
) -> None:
    await make_query(kube, "q3")
    kube_emulator.faults.fail(status, times=times, verb="patch", path="/status$")
    result = await StatusWriter(kube, retry=FAST).write(
        Query, "default", "q3", {"phase": "running"}
    )
    assert result.written
    assert result.attempts == times + 1
    served = kube_emulator.log.select(verb="patch", subresource="status")
    assert [(r.status, r.injected) for r in served] == [(status, True)] * times + [(200, False)]
    assert (await kube.get(Query, "default", "q3")).status == QueryStatus(phase="running")


async def test_a_concurrent_terminal_write_wins_and_the_late_writer_refuses(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    await make_query(kube, "q4")
    late, fast = StatusWriter(kube, retry=FAST), StatusWriter(kube, retry=FAST)
    # hold the late writer's PATCH at the server until the fast writer has finished the query
    rule = kube_emulator.faults.delay(1.0, verb="patch", path="/q4/status$")
    late_write = asyncio.create_task(late.write(Query, "default", "q4", {"phase": "running"}))
    async with asyncio.timeout(30):
        await kube_emulator.faults.wait_used(rule)
    await fast.write(Query, "default", "q4", {"phase": "done"})
    with pytest.raises(TerminalPhaseError):
        await late_write
    conflicts = kube_emulator.log.select(verb="patch", subresource="status", status=409)
    assert len(conflicts) == 1
    assert not conflicts[0].injected
    current = await kube.get(Query, "default", "q4")
    assert current.status is not None
    assert current.status.phase == "done"


async def test_missing_object_is_not_retried(kube: KubeClient, kube_emulator: KubeEmulator) -> None:
    with pytest.raises(NotFoundError):
        await StatusWriter(kube, retry=FAST).write(Query, "default", "absent", {"phase": "done"})
    assert kube_emulator.log.count(verb="get", resource="queries", name="absent") == 1


async def test_guard_sees_the_read_the_write_is_conditioned_on(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    created = await make_query(kube, "q-guard")
    writer = StatusWriter(kube, retry=FAST)
    seen: list[str | None] = []

    def only_from_pending(current: Mapping[str, Any]) -> str | None:
        phase = (current.get("status") or {}).get("phase")
        seen.append(phase)
        return None if phase in (None, "pending") else f"already {phase}"

    await writer.write(Query, "default", "q-guard", {"phase": "pending"})
    # The patch conflicts once (as when another writer got in between): the loop re-reads and
    # the guard judges the fresh read again before the write goes through.
    kube_emulator.faults.fail(409, times=1, verb="patch", path="/status$")
    queued = await writer.write(
        Query, "default", "q-guard", {"phase": "queued"}, guard=only_from_pending
    )
    assert queued.written
    assert seen == ["pending", "pending"]
    await writer.write(Query, "default", "q-guard", {"phase": "running"})
    result = await writer.write(
        Query, "default", "q-guard", {"phase": "queued"}, guard=only_from_pending
    )
    assert result.skipped == "already running"
    assert not result.written
    wrong_uid = await writer.write(
        Query,
        "default",
        "q-guard",
        {"phase": "done"},
        guard=lambda c: None if c["metadata"]["uid"] == "other" else "uid differs",
    )
    assert wrong_uid.skipped == "uid differs"
    current = await kube.get(Query, "default", "q-guard")
    assert current.status == QueryStatus(phase="running")
    assert created.metadata.uid == current.metadata.uid
