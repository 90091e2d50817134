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


async def _cancel_subscriptions(nats_server: object, name: str) -> list[str]:
    """The subjects connection ``name`` has subscribed to on the server (``/connz``) that a
    cancel reaches: the server's own view, not the client's bookkeeping."""
    import aiohttp

    from ark_mesh.testing.nats_server import NatsServer

    assert isinstance(nats_server, NatsServer)
    url = f"{nats_server.monitor_url}/connz?subs=detail"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        connz = await response.json()
    (connection,) = [c for c in connz["connections"] if c.get("name") == name]
    subjects = [s["subject"] for s in connection.get("subscriptions_list_detail") or []]
    return [s for s in subjects if s.endswith(".cancel")]


async def test_every_watch_of_a_process_shares_one_subscription(
    bus: Bus, topology: Topology, nats_server: object, kit: type
) -> None:
    """Many queries in flight, one subscription: each cancel still reaches only its query
    (and every watch of that query)."""
    from contextlib import AsyncExitStack

    channel = CancelChannel(bus)
    async with AsyncExitStack() as stack:
        watches = {
            query: await stack.enter_async_context(channel.watch(kit.tenant, query))
            for query in (f"many-{index}" for index in range(50))
        }
        twin = await stack.enter_async_context(cancel_watch(bus, kit.tenant, "many-7"))
        await bus.nc.flush()
        assert await _cancel_subscriptions(nats_server, "bus-test") == ["ark.*.query.*.cancel"]

        await channel.request(kit.tenant, "many-7", reason="only this one")
        await asyncio.wait_for(watches["many-7"].wait(), 30)
        await asyncio.wait_for(twin.wait(), 30)
        await bus.nc.flush()
        assert [q for q, w in watches.items() if w.is_set()] == ["many-7"]
        assert twin.request is not None
        assert twin.request.reason == "only this one"

    # The subscription stays for the connection's life; a watch opened later uses it.
    async with channel.watch(kit.tenant, "later") as later:
        await channel.request(kit.tenant, "later")
        await asyncio.wait_for(later.wait(), 30)
    assert await _cancel_subscriptions(nats_server, "bus-test") == ["ark.*.query.*.cancel"]


async def test_a_closed_watch_hears_nothing_and_a_cancel_for_no_watch_is_dropped(
    bus: Bus, topology: Topology, kit: type
) -> None:
    channel = CancelChannel(bus)
    async with channel.watch(kit.tenant, "closed-early") as closed:
        pass
    async with channel.watch(kit.tenant, "still-open") as still_open:
        await channel.request(kit.tenant, "closed-early")
        await channel.request(kit.tenant, "nobody-watches")
        await bus.nc.flush()
        await channel.request(kit.tenant, "still-open")
        await asyncio.wait_for(still_open.wait(), 30)
    assert not closed.is_set()
    assert still_open.request is not None
    assert still_open.request.query_id == "still-open"


async def test_watches_opened_together_all_see_an_earlier_cancel(
    bus: Bus, topology: Topology, kit: type
) -> None:
    """The first watch subscribes while the others wait for it; each reads the flag after."""
    channel = CancelChannel(bus)
    await channel.request(kit.tenant, "together-3")

    async def opened(query: str) -> bool:
        async with channel.watch(kit.tenant, query) as cancelled:
            return cancelled.is_set()

    seen = await asyncio.gather(*(opened(f"together-{index}") for index in range(6)))
    assert seen == [index == 3 for index in range(6)]


async def test_all_watches_recheck_their_flags_after_a_reconnect(
    bus: Bus, topology: Topology, nats_server: object, kit: type
) -> None:
    """Cancels sent while this connection was away are core messages lost; the flags of every
    watched query are read again once it is back."""
    from ark_mesh.bus import Bus as BusType
    from ark_mesh.testing.nats_server import NatsServer

    assert isinstance(nats_server, NatsServer)
    channel = CancelChannel(bus)
    async with (
        channel.watch(kit.tenant, "away-1") as first,
        channel.watch(kit.tenant, "away-2") as second,
        channel.watch(kit.tenant, "away-3") as untouched,
    ):
        await nats_server.arestart()
        other = await BusType.connect(servers=(nats_server.url,), name="canceller-2")
        await CancelChannel(other).request(kit.tenant, "away-1")
        await CancelChannel(other).request(kit.tenant, "away-2")
        await other.close()
        await asyncio.wait_for(first.wait(), 30)
        await asyncio.wait_for(second.wait(), 30)
        await bus.nc.flush()
        assert not untouched.is_set()
