"""status-sync against the K8s emulator: updates land in the status subresource only, once per
phase change, never backwards, never on the wrong or a missing Query."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ark_mesh.contracts import ObjectMeta, Query, QuerySpec
from ark_mesh.kube import EVENTS
from ark_mesh.status_sync import rank


async def test_updates_land_in_the_status_subresource_only(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query(
        "greeting", labels={"app": "demo"}, annotations={"note": "keep me"}
    )

    await sync.publish(sync.update(query, "running"))
    await sync.wait_phase(query, "running")
    await sync.publish(sync.update(query, "done", seq=2, content="Hello!"))
    stored = await sync.wait_phase(query, "done")

    assert stored.status is not None
    assert stored.status.response is not None
    assert stored.status.response.content == "Hello!"
    assert stored.status.token_usage is not None
    assert stored.status.token_usage.total_tokens == 150
    assert stored.spec == query.spec
    assert stored.metadata.generation == query.metadata.generation
    assert stored.metadata.labels == {"app": "demo"}
    assert stored.metadata.annotations == {"note": "keep me"}
    tracker = sync.trackers["greeting"]
    assert (tracker.status_writes, tracker.spec_writes, tracker.metadata_writes) == (2, 0, 0)
    assert tracker.generation_bumps == 0
    assert sync.status_writes(query) == 2
    patches = sync.emulator.log.select(verb="patch", resource="queries", name="greeting")
    assert {record.subresource for record in patches} == {"status"}


async def test_duplicated_and_reordered_updates_never_regress_a_phase(sync: Any) -> None:
    query = await sync.create_query("shuffled")
    running = sync.update(query, "running", seq=1)
    done = sync.update(query, "done", seq=2, content="final answer")
    # The newest first, then the older one, then both again; all waiting before the service
    # starts, so its replicas' slots take them together.
    await sync.provision()
    for update in (done, running, done, running, running):
        await sync.publish(update)
    await sync.start()
    await sync.wait_acked(5)

    stored = await sync.current(query)
    assert stored.status is not None
    assert stored.status.phase == "done"
    written = sync.phases(query)[1:]
    assert written in (["done"], ["running", "done"])
    assert sync.status_writes(query) == len(written)


async def test_a_terminal_phase_is_final(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query("finished")
    await sync.publish(sync.update(query, "canceled", seq=2))
    await sync.wait_phase(query, "canceled")

    # A later attempt reporting something else, even with a greater (attempt, seq).
    await sync.publish(sync.update(query, "running", attempt=2, seq=1))
    await sync.publish(sync.update(query, "done", attempt=2, seq=2, content="too late"))
    await sync.wait_acked(3)

    stored = await sync.current(query)
    assert stored.status is not None
    assert stored.status.phase == "canceled"
    assert stored.status.response is None
    assert sync.status_writes(query) == 1


async def test_a_replayed_update_writes_nothing(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query("replayed")
    update = sync.update(query, "running")
    await sync.publish(update)
    await sync.wait_phase(query, "running")
    patches_before = sync.emulator.log.count(verb="patch", resource="queries")

    await sync.publish(update)
    await sync.publish(sync.update(query, "running", attempt=2))  # a restart: same phase
    await sync.wait_acked(3)

    assert sync.status_writes(query) == 1
    assert sync.emulator.log.count(verb="patch", resource="queries") == patches_before


async def test_an_update_for_a_deleted_and_recreated_query_is_skipped(sync: Any) -> None:
    await sync.start()
    old = await sync.create_query("recreated")
    late = sync.update(old, "done", content="answer to the old query")
    await sync.kube.delete(Query, sync.namespace, "recreated")
    new = await sync.create_query("recreated")
    assert new.metadata.uid != old.metadata.uid

    await sync.publish(late)
    await sync.wait_acked(1)

    stored = await sync.current(new)
    assert stored.status is None or stored.status.phase is None
    assert sync.status_writes(new) == 0


async def test_an_update_for_a_missing_query_is_acked_and_skipped(sync: Any) -> None:
    service = await sync.start()
    ghost = Query(
        metadata=ObjectMeta(name="never-created", namespace=sync.namespace),
        spec=QuerySpec(input="hi"),
    )

    await sync.publish(sync.update(ghost, "running", query_id=str(uuid.uuid4())))
    await sync.publish(sync.update(ghost, "done", seq=2, query_id=str(uuid.uuid4())))
    await sync.wait_acked(2)

    assert service.worker is not None
    assert service.worker.stats.dead_lettered == 0
    assert service.worker.stats.retried == 0


async def test_an_update_without_a_resource_asks_kubernetes_nothing(sync: Any) -> None:
    """A broker-mode query without a mirror says so on its updates (``hasResource: false``):
    no GET for a Query that cannot exist, no write; an update that does not say so is still
    looked up (and skipped when its Query is missing)."""
    import msgspec

    service = await sync.start()
    bare = Query(
        metadata=ObjectMeta(name="broker-only", namespace=sync.namespace),
        spec=QuerySpec(input="hi"),
    )
    unmarked = Query(
        metadata=ObjectMeta(name="unmarked", namespace=sync.namespace),
        spec=QuerySpec(input="hi"),
    )
    query_id = str(uuid.uuid4())
    for phase, seq in (("running", 1), ("done", 2)):
        update = sync.update(bare, phase, seq=seq, query_id=query_id)
        await sync.publish(msgspec.structs.replace(update, has_resource=False))
    await sync.publish(sync.update(unmarked, "done", query_id=str(uuid.uuid4())))
    await sync.wait_acked(3)

    assert sync.emulator.log.select(resource="queries", name="broker-only") == []
    assert sync.emulator.log.select(verb="get", resource="queries", name="unmarked") != []
    assert service.worker is not None
    assert service.worker.stats.dead_lettered == 0
    assert service.worker.stats.retried == 0


async def test_phase_changes_are_recorded_as_kubernetes_events(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query("observed")
    await sync.publish(sync.update(query, "running"))
    await sync.wait_phase(query, "running")
    await sync.publish(sync.update(query, "error", seq=2))
    await sync.wait_phase(query, "error")

    # The event of a transition is recorded right after its status write: wait for both.
    async with asyncio.timeout(30):
        while True:
            listed = await sync.kube.list_objects(EVENTS, sync.namespace)
            events = [e for e in listed.items if e["regarding"]["name"] == "observed"]
            if len(events) >= 2:
                break
            await asyncio.sleep(0.05)
    assert sorted((e["reason"], e["type"]) for e in events) == [
        ("QueryErrored", "Warning"),
        ("QueryRunning", "Normal"),
    ]
    assert all(e["regarding"]["uid"] == query.metadata.uid for e in events)
    assert all(e["reportingController"] == "ark-mesh/status-sync" for e in events)


async def test_two_replicas_keep_every_query_moving_forward(sync: Any) -> None:
    await sync.start(sync.config(instance="replica-a"))
    await sync.start(sync.config(instance="replica-b"))
    queries = [await sync.create_query(f"parallel-{index}") for index in range(12)]
    updates = []
    for query in queries:
        running = sync.update(query, "running", seq=1)
        done = sync.update(query, "done", seq=2, content=query.metadata.name)
        updates += [done, running, running, done]
    await asyncio.gather(*(sync.publish(update) for update in updates))
    await sync.wait_acked(len(updates))

    for query in queries:
        stored = await sync.current(query)
        assert stored.status is not None
        assert stored.status.phase == "done"
        assert stored.status.response is not None
        assert stored.status.response.content == query.metadata.name
        written = sync.phases(query)[1:]
        assert [rank(p) for p in written] == sorted(rank(p) for p in written)
        assert 1 <= sync.status_writes(query) <= 2
