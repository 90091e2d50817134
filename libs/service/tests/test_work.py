"""The service skeleton against a real nats-server: identity checks, dead-letter endings, stop order.

A small service on the skeleton consumes ``embeddings`` work with one slot, so deliveries are
handled (and dead-lettered) in the order they were published: when the ending of the last
message arrives, everything published before it has been decided.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ark_mesh.bus import (
    Bus,
    BusConfig,
    ConnectionSettings,
    DeadLetterNotice,
    MessageContext,
    PermanentError,
    Publisher,
    StreamReader,
    TopologyConfig,
    WorkConsumerSettings,
    WorkerSettings,
)
from ark_mesh.contracts import DeadLetter, EmbeddingsRequest, decoder_for, subjects
from ark_mesh.service import (
    HealthServer,
    WorkHandlers,
    WorkIdentity,
    WorkQueueService,
    check_identity,
    subject_tenant,
)
from ark_mesh.testing.nats_server import NatsServer

TENANT = "team-a"


def request(request_id: str, *, tenant: str = TENANT, model: str = "ok") -> EmbeddingsRequest:
    return EmbeddingsRequest(
        request_id=request_id,
        tenant=tenant,
        namespace=tenant,
        model=model,
        input=["text"],
        submitted_at=datetime.now(UTC).isoformat(),
    )


class Probe(WorkQueueService[EmbeddingsRequest]):
    """Fails work for model ``fail`` permanently; records what it handled, ended and closed."""

    name = "probe"
    kind = "embeddings"
    message_type = EmbeddingsRequest

    def __init__(self, config: BusConfig) -> None:
        super().__init__(config)
        self.handled: list[str] = []
        self.ended: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.closing: list[tuple[str, bool]] = []

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[EmbeddingsRequest]:
        stack.callback(self._closed, "setup")
        return WorkHandlers(
            self._handle_one,
            identify=lambda r: WorkIdentity(r.tenant, r.request_id, "request id"),
            end=self._end,
            recover=self._recover,
        )

    async def serve(self, health: HealthServer, stack: contextlib.AsyncExitStack) -> None:
        stack.callback(self._closed, "serve")

    def _closed(self, what: str) -> None:
        self.closing.append((what, self.worker is not None and self.worker.running))

    async def _handle_one(self, message: EmbeddingsRequest, _: MessageContext) -> None:
        if message.model == "fail":
            raise PermanentError("the probe refuses this model")
        self.handled.append(message.request_id)

    async def _end(self, message: EmbeddingsRequest, notice: DeadLetterNotice) -> None:
        await self.ended.put((message.request_id, notice.letter.reason))

    @staticmethod
    def _recover(letter: DeadLetter) -> EmbeddingsRequest | None:
        return request("recovered", tenant=subject_tenant(letter.subject))


@pytest.fixture
async def probe(nats_server: NatsServer) -> AsyncIterator[tuple[Probe, Publisher, Bus]]:
    config = BusConfig(
        connection=ConnectionSettings(servers=(nats_server.url,), connect_attempts=3),
        topology=TopologyConfig(
            work_consumers=(
                WorkConsumerSettings(kind="embeddings", durable="probe", max_deliver=2),
            )
        ),
        worker=WorkerSettings(slots=1, retry_delay_initial=0.05, grace_period=5.0),
    )
    service = Probe(config)
    health = HealthServer(port=0)
    await service.start(health)
    bus = await Bus.connect(servers=(nats_server.url,), name="probe-test")
    publisher = await Publisher.create(bus)
    try:
        yield service, publisher, bus
    finally:
        await publisher.close()
        await bus.close()
        await service.stop(5.0)


async def dead_letters(bus: Bus) -> list[DeadLetter]:
    reader = StreamReader(bus, subjects.ARK_DLQ)
    return [
        entry.message
        async for entry in reader.read(
            subjects.dlq(TENANT, "embeddings"),
            decoder=decoder_for(DeadLetter),
            caught_up=True,
            idle_timeout=10.0,
        )
    ]


async def test_identity_and_dead_letters_go_through_the_skeleton(
    probe: tuple[Probe, Publisher, Bus],
) -> None:
    service, publisher, bus = probe
    work = subjects.work_embeddings(TENANT)
    await publisher.publish(work, request("foreign", tenant="team-b"))
    await publisher.publish(work, request("handled"))
    await publisher.publish(work, b"{not json", schema=EmbeddingsRequest.SCHEMA)
    await publisher.publish(work, request("failing", model="fail"))

    # One slot: deliveries are decided in order, so once the last ending is in, all are.
    recovered, _ = await service.ended.get()
    failing, reason = await service.ended.get()
    assert (recovered, failing) == ("recovered", "failing")
    assert "the probe refuses this model" in reason
    assert service.ended.empty(), "the foreign tenant's work is refused, never ended"
    assert service.handled == ["handled"]
    foreign, undecodable, refused = (letter.reason for letter in await dead_letters(bus))
    assert "for tenant 'team-b' arrived on tenant 'team-a'" in foreign
    assert "another tenant" in foreign
    assert undecodable != refused == reason


async def test_what_serves_the_outside_closes_before_the_worker_drains(
    probe: tuple[Probe, Publisher, Bus],
) -> None:
    service, _, _ = probe
    await service.stop(5.0)
    assert service.closing == [("serve", True), ("setup", False)]


def test_check_identity_refuses_unusable_ids_and_other_tenants() -> None:
    check_identity("Work", WorkIdentity("team-a", "q-1", "query id"), "team-a")
    with pytest.raises(PermanentError, match=r"unusable Work: .*query id"):
        check_identity("Work", WorkIdentity("team-a", "q.1", "query id"), "team-a")
    with pytest.raises(PermanentError, match="refusing to publish into another tenant"):
        check_identity("Work", WorkIdentity("team-a", "q-1"), "team-b")
    assert subject_tenant("ark.team-a.work.query") == "team-a"
    assert subject_tenant("not-ours") == ""
