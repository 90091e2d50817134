"""ResumableWatch against a real API server that drops connections and compacts history.

The server's own record of changes (a store listener) is the ground truth: the watch must
deliver exactly that sequence — nothing missing, nothing twice — however its connections die.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ark_mesh.kube import ApiResource, KubeClient, ResumableWatch, WatchEvent
from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.store import Change

QUERIES = ApiResource("ark.mckinsey.com", "v1alpha1", "queries", "Query")


def query_body(name: str, text: str = "hello") -> dict[str, Any]:
    return {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"input": text, "target": {"type": "agent", "name": "a1"}},
    }


class Collector:
    """Consumes a watch in the background; ``wait_until`` is event-driven."""

    def __init__(self, watch: ResumableWatch) -> None:
        self.watch = watch
        self.events: list[WatchEvent] = []
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self.watch:
            self.events.append(event)
            self._arrived.set()

    async def wait_until(self, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.events) < count:
                if self.task.done():
                    self.task.result()
                self._arrived.clear()
                await self._arrived.wait()

    def seen(self) -> list[tuple[str, str, str]]:
        return [
            (e.type, e.object["metadata"]["name"], e.object["metadata"]["resourceVersion"])
            for e in self.events
        ]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def truth(kube_emulator: KubeEmulator) -> AsyncIterator[list[tuple[str, str, str]]]:
    """Every change the server stores for queries, in order: (type, name, resourceVersion)."""
    changes: list[tuple[str, str, str]] = []

    def record(change: Change) -> None:
        if change.key.storage == ("ark.mckinsey.com", "queries"):
            changes.append((change.type, change.key.name, str(change.rv)))

    kube_emulator.store.listeners.append(record)
    yield changes
    kube_emulator.store.listeners.remove(record)


async def test_initial_list_then_live_events(kube: KubeClient) -> None:
    await kube.create_object(QUERIES, "default", query_body("before"))
    collector = Collector(ResumableWatch(kube, QUERIES, "default"))
    await collector.wait_until(1)
    await kube.create_object(QUERIES, "default", query_body("after"))
    await collector.wait_until(2)
    assert [(e.type, e.object["metadata"]["name"]) for e in collector.events] == [
        ("ADDED", "before"),
        ("ADDED", "after"),
    ]
    await collector.stop()


async def test_dropped_connections_lose_and_repeat_nothing(
    kube: KubeClient, kube_emulator: KubeEmulator, truth: list[tuple[str, str, str]]
) -> None:
    collector = Collector(ResumableWatch(kube, QUERIES, "default"))
    await kube_emulator.wait_for_watches(1)

    # the next three watch connections die after two events each, two more fail outright,
    # and the connection open right now is cut at once
    kube_emulator.faults.drop_watch(after_events=2, times=3)
    kube_emulator.faults.fail(500, verb="watch", times=1)
    kube_emulator.faults.fail(429, verb="watch", times=1)
    assert kube_emulator.drop_watches() == 1

    for index in range(6):
        await kube.create_object(QUERIES, "default", query_body(f"q{index}"))
    for index in range(0, 6, 2):
        await kube.patch_object(QUERIES, "default", f"q{index}", {"spec": {"input": "changed"}})
    await kube.patch_object(
        QUERIES, "default", "q1", {"status": {"phase": "running"}}, subresource="status"
    )
    for index in (3, 4):
        await kube.delete_object(QUERIES, "default", f"q{index}")
    kube_emulator.drop_watches()  # and once more while events may be in flight
    await kube.create_object(QUERIES, "default", query_body("last"))

    await collector.wait_until(len(truth))
    assert collector.seen() == truth
    assert collector.watch.reconnects >= 5
    assert collector.watch.relists == 0
    injected = [r for r in kube_emulator.log if r.verb == "watch" and r.injected]
    assert len(injected) >= 2  # the 500 and the 429 were really served
    await collector.stop()


async def test_expired_resource_version_relists_and_delivers_the_difference(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    for name in ("keep", "change", "remove"):
        await kube.create_object(QUERIES, "default", query_body(name))
    collector = Collector(ResumableWatch(kube, QUERIES, "default"))
    await collector.wait_until(3)
    await kube_emulator.wait_for_watches(1)

    # While the watch is disconnected the world moves on and the history is compacted.
    # These calls are synchronous on the server's loop: the client cannot reconnect between.
    rt = kube_emulator.registry.lookup("ark.mckinsey.com", "v1alpha1", "queries")
    assert rt is not None
    kube_emulator.drop_watches()
    kube_emulator.store.patch(
        rt, "default", "change", lambda obj: {**obj, "spec": {**obj["spec"], "input": "new"}}
    )
    kube_emulator.store.delete(rt, "default", "remove")
    kube_emulator.store.create(rt, "default", query_body("appear"))
    kube_emulator.compact()

    await collector.wait_until(6)
    synthetic = [(e.type, e.object["metadata"]["name"]) for e in collector.events[3:]]
    assert sorted(synthetic) == [("ADDED", "appear"), ("DELETED", "remove"), ("MODIFIED", "change")]
    assert all(e.synthetic for e in collector.events[3:])
    assert (
        collector.events[3:][[n for _, n in synthetic].index("change")].object["spec"]["input"]
        == "new"
    )
    assert collector.watch.relists == 1

    # and the watch goes on from the relisted version, live again
    await kube.create_object(QUERIES, "default", query_body("later"))
    await collector.wait_until(7)
    assert (
        collector.events[6].type,
        collector.events[6].object["metadata"]["name"],
        collector.events[6].synthetic,
    ) == ("ADDED", "later", False)
    seen = collector.seen()
    assert len(seen) == len(set(seen))  # no event delivered twice
    await collector.stop()


async def test_label_selected_watch_sees_objects_enter_and_leave(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    collector = Collector(
        ResumableWatch(kube, QUERIES, "default", label_selector={"matchLabels": {"team": "a"}})
    )
    await kube_emulator.wait_for_watches(1)
    await kube.create_object(QUERIES, "default", query_body("x"))
    await kube.patch_object(QUERIES, "default", "x", {"metadata": {"labels": {"team": "a"}}})
    await kube.patch_object(QUERIES, "default", "x", {"metadata": {"labels": {"team": "b"}}})
    await collector.wait_until(2)
    assert [(e.type, e.object["metadata"]["name"]) for e in collector.events] == [
        ("ADDED", "x"),
        ("DELETED", "x"),
    ]
    await collector.stop()
