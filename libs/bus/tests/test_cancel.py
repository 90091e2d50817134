"""Cancel: a running worker hears it at once; a worker that starts late still sees it."""

from __future__ import annotations

import asyncio

from ark_mesh.bus import Bus, CancelChannel, Topology, cancel_watch


async def test_cancel_reaches_a_running_watch(bus: Bus, topology: Topology, kit: type) -> None:
    channel = CancelChannel(bus)
    async with channel.watch(kit.tenant, "q-1") as cancelled:
        assert not cancelled.is_set()
        await channel.request(kit.tenant, "q-1", reason="user pressed stop", requested_by="ui")
        await asyncio.wait_for(cancelled.wait(), 30)
    assert cancelled.request is not None
    assert cancelled.request.reason == "user pressed stop"
    assert cancelled.request.requested_by == "ui"


async def test_a_late_worker_sees_an_earlier_cancel(
    bus: Bus, topology: Topology, kit: type
) -> None:
    await CancelChannel(bus).request(kit.tenant, "q-2")
    async with cancel_watch(bus, kit.tenant, "q-2") as cancelled:
        assert cancelled.is_set()
        assert cancelled.request is not None
        assert cancelled.request.query_id == "q-2"


async def test_cancels_do_not_leak_between_queries_or_tenants(
    bus: Bus, topology: Topology, kit: type
) -> None:
    channel = CancelChannel(bus)
    async with (
        channel.watch(kit.tenant, "q-3") as mine,
        channel.watch("other", "q-3") as theirs,
        channel.watch(kit.tenant, "q-4") as sibling,
    ):
        await channel.request(kit.tenant, "q-3")
        await asyncio.wait_for(mine.wait(), 30)
        # A round trip later, nothing else fired.
        await bus.nc.flush()
        assert not theirs.is_set()
        assert not sibling.is_set()
    assert await channel.get("other", "q-3") is None
    await channel.clear(kit.tenant, "q-3")
    assert await channel.get(kit.tenant, "q-3") is None


async def test_cancel_sent_while_disconnected_is_seen_after_reconnect(
    bus: Bus, topology: Topology, nats_server: object, kit: type
) -> None:
    from ark_mesh.bus import Bus as BusType
    from ark_mesh.testing.nats_server import NatsServer

    assert isinstance(nats_server, NatsServer)
    other = await BusType.connect(servers=(nats_server.url,), name="canceller")
    channel = CancelChannel(bus)
    async with channel.watch(kit.tenant, "q-5") as cancelled:
        await nats_server.arestart()
        # Whoever reconnects first: the flag is durable, the watcher re-reads it.
        await other.wait_connected(30)
        await CancelChannel(other).request(kit.tenant, "q-5")
        await asyncio.wait_for(cancelled.wait(), 30)
    await other.close()


async def test_garbage_or_a_replayed_cancel_stops_nothing(
    bus: Bus, topology: Topology, kit: type
) -> None:
    """Anyone able to publish on a cancel subject or write the flag could send bytes: only a
    cancel that decodes and names this query counts."""
    from ark_mesh.contracts import subjects

    channel = CancelChannel(bus)
    genuine_for_other = await channel.request(kit.tenant, "q-other")
    kv = await bus.key_value(channel.bucket)
    async with channel.watch(kit.tenant, "q-9") as cancelled:
        await bus.nc.publish(subjects.query_cancel(kit.tenant, "q-9"), b"\x00")
        other = await kv.get(f"{kit.tenant}.q-other")
        # The other query's genuine cancel, replayed onto this query's subject and flag.
        await bus.nc.publish(subjects.query_cancel(kit.tenant, "q-9"), other.value or b"")
        await kv.put(f"{kit.tenant}.q-9", b"not a cancel")
        await bus.nc.flush()
        await asyncio.sleep(0.3)  # let the subscription's callbacks run on what arrived
        assert not cancelled.is_set()
        assert await channel.get(kit.tenant, "q-9") is None
        await channel.request(kit.tenant, "q-9", reason="real")
        await asyncio.wait_for(cancelled.wait(), 30)
    assert cancelled.request is not None
    assert cancelled.request.reason == "real"
    assert cancelled.request.query_id == "q-9"
    assert genuine_for_other.query_id == "q-other"
