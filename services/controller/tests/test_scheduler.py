"""The fair scheduler: bounded, max-min fair across namespaces, cancellation-safe."""

from __future__ import annotations

import asyncio

import pytest

from ark_mesh.controller.scheduler import FairScheduler


async def test_unbounded_never_waits() -> None:
    scheduler = FairScheduler(0)
    for _ in range(100):
        assert scheduler.try_acquire("a")
    assert scheduler.in_use == 100


async def test_cap_is_never_exceeded() -> None:
    scheduler = FairScheduler(3)
    peak = 0
    running = 0

    async def work(namespace: str) -> None:
        nonlocal peak, running
        async with scheduler.slot(namespace):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            running -= 1

    await asyncio.gather(*(work(f"ns{i % 4}") for i in range(40)))
    assert peak == 3
    assert scheduler.in_use == 0
    assert scheduler.waiting() == 0


async def test_freed_slots_go_to_the_namespace_with_least_in_flight() -> None:
    scheduler = FairScheduler(4)
    for _ in range(4):
        assert scheduler.try_acquire("busy")
    order: list[str] = []

    async def wait(namespace: str) -> None:
        await scheduler.acquire(namespace)
        order.append(namespace)

    # The busy tenant queues first and more, yet the quiet tenants are served first.
    tasks = [asyncio.create_task(wait("busy")) for _ in range(3)]
    tasks += [asyncio.create_task(wait("quiet-a")), asyncio.create_task(wait("quiet-b"))]
    await asyncio.sleep(0)
    assert scheduler.waiting() == 5
    assert not scheduler.try_acquire("newcomer")  # no jumping the queue
    for _ in range(4):
        scheduler.release("busy")
        await asyncio.sleep(0)
    assert order[:2] == ["quiet-a", "quiet-b"]
    assert scheduler.in_flight("quiet-a") == 1
    assert scheduler.in_flight("quiet-b") == 1
    assert scheduler.in_flight("busy") == 2
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_cancelled_waiter_leaves_no_trace() -> None:
    scheduler = FairScheduler(1)
    assert scheduler.try_acquire("a")
    waiter = asyncio.create_task(scheduler.acquire("b"))
    await asyncio.sleep(0)
    assert scheduler.waiting("b") == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert scheduler.waiting() == 0
    scheduler.release("a")
    assert scheduler.in_use == 0


def test_release_without_slot_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="without a slot held"):
        FairScheduler(1).release("ghost")
