"""nats-server stopped and restarted (file storage) under load: publishers and workers
reconnect by themselves, and every message JetStream acknowledged is handled."""

from __future__ import annotations

import asyncio

from ark_mesh.bus import (
    Bus,
    MessageContext,
    Publisher,
    PublishError,
    Topology,
    Worker,
    WorkerSettings,
)
from ark_mesh.contracts import EmbeddingsRequest, subjects
from ark_mesh.testing.nats_server import NatsServer


async def test_every_acknowledged_message_is_handled_across_a_restart(
    nats_server: NatsServer, kit: type
) -> None:
    url = (nats_server.url,)
    admin = await Bus.connect(servers=url, name="admin")
    topology = Topology(kit.small_topology())
    await topology.provision(admin)
    producer_bus = await Bus.connect(servers=url, name="producer", backoff_max=0.5)
    worker_bus = await Bus.connect(servers=url, name="worker", backoff_max=0.5)
    publisher = await Publisher.create(producer_bus)
    chunk_publisher = await Publisher.create(producer_bus)

    handled: set[str] = set()

    async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
        await asyncio.sleep(0.002)
        handled.add(message.request_id)

    worker = Worker.for_type(
        worker_bus,
        topology.work_binding("embeddings"),
        EmbeddingsRequest,
        handle,
        settings=WorkerSettings(slots=16, pull_expires=1.0),
    )
    await worker.start()

    accepted: set[str] = set()
    refused: list[str] = []
    total = 600

    async def produce() -> None:
        subject = subjects.work_embeddings(kit.tenant)
        for index in range(total):
            message = kit.request(index)
            try:
                await publisher.publish(subject, message, msg_id=message.request_id, retry_for=60)
            except PublishError:
                refused.append(message.request_id)
                continue
            accepted.add(message.request_id)
            if index % 3 == 0:
                # High-rate windowed traffic on another stream at the same time.
                await chunk_publisher.publish_nowait(
                    subjects.query_event(kit.tenant, message.request_id),
                    message,
                    msg_id=f"ev-{index}",
                )

    producing = asyncio.create_task(produce())
    await kit.eventually(lambda: len(handled) >= total // 4, within=60, what="load running")
    await nats_server.astop()
    assert not producing.done()
    await nats_server.astart()
    await asyncio.wait_for(producing, 120)
    await chunk_publisher.flush(within=60)  # raises if any windowed message was lost

    await kit.eventually(lambda: accepted <= handled, within=120, what="accepted work handled")

    async def work_stream_empty() -> bool:
        # A plain ack written just before the server died is lost with it; that message comes
        # back after AckWait and is handled (and acked) again: at-least-once, never lost.
        info = await admin.jsm.stream_info(subjects.ARK_WORK)
        return info.state.messages == 0

    await kit.eventually(work_stream_empty, within=10 * kit.ack_wait, what="work stream drained")
    await worker.stop()
    assert worker_bus.health.reconnects >= 1
    assert producer_bus.health.reconnects >= 1
    assert refused == []  # retried with the same Nats-Msg-Id until the broker came back
    assert len(accepted) == total
    events = await admin.jsm.stream_info(subjects.ARK_EVENTS)
    assert events.state.messages == len(range(0, total, 3))

    for closing in (chunk_publisher, publisher):
        await closing.close()
    for connection in (producer_bus, worker_bus, admin):
        await connection.close()
