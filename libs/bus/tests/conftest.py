"""Shared fixtures of the bus tests: a connected Bus on the per-test nats-server, a small
topology (short AckWait so redelivery tests finish quickly), a publisher, and a ``kit`` of
helpers (test modules cannot import conftest in importlib mode, so helpers travel as a fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import pytest
import pytest_asyncio

from ark_mesh.bus import (
    Bus,
    Publisher,
    Topology,
    TopologyConfig,
    WorkConsumerSettings,
)
from ark_mesh.contracts import EmbeddingsRequest
from ark_mesh.testing.nats_server import NatsServer

TENANT = "acme"
ACK_WAIT = 2.0
MAX_DELIVER = 3
SUBMITTED_AT = datetime(2026, 1, 1, tzinfo=UTC).isoformat()


def small_topology(**changes: object) -> TopologyConfig:
    consumers = tuple(
        WorkConsumerSettings(
            kind=kind, durable=f"{kind}-reconciler", ack_wait=ACK_WAIT, max_deliver=MAX_DELIVER
        )
        for kind in ("query", "responses", "embeddings")
    )
    base = TopologyConfig(work_consumers=consumers)
    return msgspec.structs.replace(base, **changes) if changes else base


def request(index: int, tenant: str = TENANT) -> EmbeddingsRequest:
    return EmbeddingsRequest(
        request_id=f"req-{index}",
        tenant=tenant,
        namespace=tenant,
        model="minilm",
        input=[f"text {index}"],
        submitted_at=SUBMITTED_AT,
    )


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` until true; fail with ``what`` after ``within`` seconds (a safety net,
    never a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Kit:
    """Helpers and constants shared by the bus tests."""

    tenant = TENANT
    ack_wait = ACK_WAIT
    max_deliver = MAX_DELIVER
    small_topology = staticmethod(small_topology)
    request = staticmethod(request)
    eventually = staticmethod(eventually)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    connected = await Bus.connect(servers=(nats_server.url,), name="bus-test", connect_attempts=3)
    yield connected
    await connected.close()


@pytest_asyncio.fixture
async def topology(bus: Bus) -> Topology:
    plan = Topology(small_topology())
    await plan.provision(bus)
    return plan


@pytest_asyncio.fixture
async def publisher(bus: Bus) -> AsyncIterator[Publisher]:
    created = await Publisher.create(bus)
    yield created
    await created.close()
