"""Connection: a clear error when NATS is absent, health for probes, reconnect after restart."""

from __future__ import annotations

import asyncio

import pytest

from ark_mesh.bus import Bus, BusClosedError, BusUnavailableError, ConnectionState
from ark_mesh.bus.connection import backoff_delay
from ark_mesh.testing.nats_server import NatsServer, free_port


async def test_unreachable_server_raises_a_typed_error_naming_the_url() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailableError) as caught:
        await Bus.connect(
            servers=(url,), connect_attempts=2, connect_timeout=0.5, backoff_initial=0.01
        )
    assert caught.value.urls == (url,)
    assert caught.value.attempts == 2
    assert url in str(caught.value)


def test_backoff_grows_and_is_capped() -> None:
    assert backoff_delay(0, 0.1, 5) == 0
    for attempt in range(1, 12):
        delay = backoff_delay(attempt, 0.1, 5)
        ceiling = min(5, 0.1 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


async def test_health_follows_an_outage_and_listeners_hear_the_reconnect(
    nats_server: NatsServer, kit: type
) -> None:
    bus = await Bus.connect(servers=(nats_server.url,), backoff_initial=0.05, backoff_max=0.2)
    reconnected = asyncio.Event()
    bus.on_reconnect(reconnected.set)
    assert bus.health.ready
    assert bus.health.server == nats_server.url

    await nats_server.astop()
    await kit.eventually(
        lambda: bus.health.state is ConnectionState.RECONNECTING, what="outage noticed"
    )
    assert not bus.ready
    await nats_server.astart()
    await asyncio.wait_for(reconnected.wait(), 30)
    assert bus.health.ready
    assert bus.health.reconnects == 1

    await bus.close()
    assert bus.health.state is ConnectionState.CLOSED
    with pytest.raises(BusClosedError):
        await bus.wait_connected(1)
    await bus.close()  # idempotent
