"""Publisher: dedupe by Nats-Msg-Id, standard headers, bounded async window, clear failures."""

from __future__ import annotations

import asyncio

import pytest

from ark_mesh.bus import Bus, Publisher, PublishError, PublisherSettings, Topology
from ark_mesh.contracts import (
    MSG_ID_HEADER,
    SCHEMA_HEADER,
    EmbeddingsRequest,
    decode,
    subjects,
)
from ark_mesh.testing.nats_server import NatsServer


async def test_same_msg_id_is_stored_once(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.work_embeddings(kit.tenant)
    first = await publisher.publish(subject, kit.request(1), msg_id="uid-1:1")
    second = await publisher.publish(subject, kit.request(1), msg_id="uid-1:1")
    third = await publisher.publish(subject, kit.request(2), msg_id="uid-2:1")

    assert first.duplicate is False
    assert second.duplicate is True
    assert second.seq == first.seq
    assert third.seq == first.seq + 1
    info = await bus.jsm.stream_info(subjects.ARK_WORK)
    assert info.state.messages == 2


async def test_windowed_duplicates_are_dropped_by_the_server(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.work_embeddings(kit.tenant)
    for index in range(50):
        await publisher.publish_nowait(subject, kit.request(index % 10), msg_id=f"m-{index % 10}")
    await publisher.flush(within=30)
    info = await bus.jsm.stream_info(subjects.ARK_WORK)
    assert info.state.messages == 10


async def test_headers_and_body_round_trip(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.work_embeddings(kit.tenant)
    ack = await publisher.publish(subject, kit.request(7), msg_id="x:1", headers={"Ark-Extra": "1"})
    stored = await bus.jsm.get_msg(subjects.ARK_WORK, ack.seq)
    assert stored.headers is not None
    assert stored.headers[SCHEMA_HEADER] == EmbeddingsRequest.SCHEMA
    assert stored.headers[MSG_ID_HEADER] == "x:1"
    assert stored.headers["Ark-Extra"] == "1"
    assert stored.data is not None
    assert decode(stored.data, EmbeddingsRequest) == kit.request(7)


async def test_window_bounds_unacknowledged_messages(
    bus: Bus, topology: Topology, kit: type
) -> None:
    small = await Publisher.create(bus, PublisherSettings(window=4))
    subject = subjects.work_embeddings(kit.tenant)
    high_water = 0

    async def produce() -> None:
        nonlocal high_water
        for index in range(200):
            await small.publish_nowait(subject, kit.request(index), msg_id=f"w-{index}")
            high_water = max(high_water, small.pending)

    await produce()
    await small.flush(within=30)
    await small.close()
    assert 1 <= high_water <= 4
    info = await bus.jsm.stream_info(subjects.ARK_WORK)
    assert info.state.messages == 200


async def test_subject_without_stream_fails_with_the_subject_named(
    bus: Bus, topology: Topology, kit: type
) -> None:
    failures: list[str] = []
    impatient = await Publisher.create(
        bus, PublisherSettings(no_responders_for=0.5), on_failure=lambda s, e: failures.append(s)
    )
    with pytest.raises(PublishError, match=r"nowhere\.at\.all"):
        await impatient.publish("nowhere.at.all", kit.request(1))

    await impatient.publish_nowait("nowhere.else", kit.request(1))
    with pytest.raises(PublishError, match=r"nowhere\.else"):
        await impatient.flush(within=30)
    await impatient.close()
    assert failures == ["nowhere.else"]


async def test_no_responders_is_retried_until_a_stream_answers(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    """What a publish sees while a stream's cluster elects a new leader: "no responders" for a
    few seconds, then a stream that stores the message. Neither kind of publish gives up."""

    async def stream_appears() -> None:
        await asyncio.sleep(1.5)
        await bus.js.add_stream(name="LATE", subjects=["late.>"])

    appearing = asyncio.create_task(stream_appears())
    await publisher.publish_nowait("late.windowed", kit.request(1), msg_id="late:1")
    ack = await publisher.publish("late.awaited", kit.request(2), msg_id="late:2")
    await publisher.flush(within=30)
    await appearing

    assert ack.stream == "LATE"
    info = await bus.js.stream_info("LATE")
    assert info.state.messages == 2
    await bus.js.delete_stream("LATE")


async def test_raw_bytes_need_a_schema(publisher: Publisher) -> None:
    with pytest.raises(ValueError, match="schema"):
        await publisher.publish("ark.t.work.query", b"{}")


async def test_publish_during_broker_outage_is_retried_with_the_same_id(
    bus: Bus, topology: Topology, publisher: Publisher, nats_server: NatsServer, kit: type
) -> None:
    subject = subjects.work_embeddings(kit.tenant)
    await nats_server.astop()
    pending = asyncio.create_task(publisher.publish(subject, kit.request(1), msg_id="outage:1"))
    await asyncio.sleep(0.3)
    assert not pending.done()
    await nats_server.astart()
    ack = await asyncio.wait_for(pending, 60)
    assert ack.stream == subjects.ARK_WORK
    info = await bus.jsm.stream_info(subjects.ARK_WORK)
    assert info.state.messages == 1


async def test_settle_waits_for_retried_messages_of_its_subject_only(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    """A query's final chunk settles its subject first: a chunk that had to be sent again (its
    stream had no leader) is stored before the final one, never behind it, and another
    subject's trouble neither delays nor fails the settle."""
    await publisher.publish_nowait("nowhere.other", kit.request(9), msg_id="other:1")

    async def stream_appears() -> None:
        await asyncio.sleep(1.5)
        await bus.js.add_stream(name="SETTLE", subjects=["settle.>"])

    appearing = asyncio.create_task(stream_appears())
    await publisher.publish_nowait("settle.chunks", kit.request(1), msg_id="chunk:1")
    await publisher.settle("settle.chunks", within=30)
    final = await publisher.publish("settle.chunks", kit.request(2), msg_id="chunk:final")
    await appearing

    first = await bus.jsm.get_msg("SETTLE", final.seq - 1)
    assert first.headers is not None
    assert first.headers[MSG_ID_HEADER] == "chunk:1"
    assert final.seq == 2
    await bus.js.delete_stream("SETTLE")


async def test_settle_names_a_loss_on_its_subject(bus: Bus, topology: Topology, kit: type) -> None:
    impatient = await Publisher.create(bus, PublisherSettings(no_responders_for=0.5))
    await impatient.publish_nowait("nowhere.lost", kit.request(1))
    await impatient.publish_nowait(subjects.work_embeddings(kit.tenant), kit.request(2))
    await impatient.settle(subjects.work_embeddings(kit.tenant), within=30)
    with pytest.raises(PublishError, match=r"nowhere\.lost"):
        await impatient.settle("nowhere.lost", within=30)
    await impatient.settle("nowhere.lost", within=30)  # reported once
    await impatient.close()
