"""Two replicas writing the same Query at once: the resourceVersion precondition makes the
slower one re-read and decide again, so a stale decision never lands."""

from __future__ import annotations

import asyncio
from typing import Any

from ark_mesh.kube import RetryPolicy
from ark_mesh.status_sync import StatusApplier


async def test_a_stale_read_loses_the_race_and_decides_again(sync: Any) -> None:
    query = await sync.create_query("contended")
    replica_a = StatusApplier(sync.kube, retry=RetryPolicy(initial=0.01))
    replica_b = StatusApplier(sync.kube, retry=RetryPolicy(initial=0.01))
    # Replica A's status patch is held at the server: it read the Query (still pending)
    # before replica B wrote "done", and its patch reaches the store only afterwards.
    held = sync.emulator.faults.delay(2.0, verb="patch", path="/status$")
    slow = asyncio.create_task(replica_a.apply(sync.update(query, "running", seq=1)))
    await sync.until(lambda: held.hits == 1, "replica A's patch to reach the server")
    fast = await replica_b.apply(sync.update(query, "done", seq=2, content="first"))
    slow_result = await slow

    stored = await sync.current(query)
    assert stored.status is not None
    assert stored.status.phase == "done"
    assert fast.written
    activity = sync.emulator.activity("queries", sync.namespace, "contended")
    assert activity.conflicts >= 1
    written = sync.phases(query)[1:]
    assert written in (["done"], ["running", "done"])
    if written == ["done"]:
        # A's patch hit the precondition; on its second read the Query was already done.
        assert not slow_result.written
        assert "terminal" in slow_result.reason


async def test_transient_api_failures_are_retried(sync: Any) -> None:
    service = await sync.start()
    query = await sync.create_query("flaky-api")
    sync.emulator.faults.fail(500, verb="patch", path="/status$")
    sync.emulator.faults.fail(429, verb="get", path="/queries/flaky-api$", retry_after=0)

    await sync.publish(sync.update(query, "running"))
    await sync.wait_phase(query, "running")

    assert sync.status_writes(query) == 1
    assert service.applier is not None
    assert service.applier.api_reachable
