"""Stream reader: replay from the start or a sequence, follow live, stop on a condition."""

from __future__ import annotations

import asyncio

from ark_mesh.bus import Bus, Publisher, StreamEntry, StreamReader, Topology
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    DecodeError,
    ObjectMeta,
    Query,
    QueryEvent,
    QuerySpec,
    decoder_for,
    subjects,
)


def _chunk(seq: int, *, final: bool = False) -> Chunk:
    spec = QuerySpec(input="hello")
    completed = Query(metadata=ObjectMeta(name="q"), spec=spec) if final else None
    return Chunk(
        id="chatcmpl-final" if final else "chatcmpl-1",
        created=1,
        model="m",
        choices=[ChunkChoice(delta=ChunkDelta(content=f"t{seq}"))],
        ark=ArkChunkMetadata(query="q1", completed_query=completed),
        seq=seq,
    )


async def test_replay_then_follow_live_until_the_final_chunk(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.query_chunk(kit.tenant, "q1")
    other = subjects.query_chunk(kit.tenant, "q2")
    for seq in (1, 2, 3):
        await publisher.publish(subject, _chunk(seq))
        await publisher.publish(other, _chunk(seq))
    reader = StreamReader(bus, subjects.ARK_CHUNKS)
    received: list[StreamEntry[Chunk]] = []
    three_seen = asyncio.Event()

    async def consume() -> None:
        async for entry in reader.read(
            subject, decoder=decoder_for(Chunk), until=lambda e: e.message.is_final
        ):
            received.append(entry)
            if len(received) == 3:
                three_seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three_seen.wait(), 30)
    await publisher.publish(subject, _chunk(4))
    await publisher.publish(subject, _chunk(5, final=True))
    await publisher.publish(subject, _chunk(6))  # after the end: never read
    await asyncio.wait_for(task, 30)

    assert [entry.message.seq for entry in received] == [1, 2, 3, 4, 5]
    assert all(entry.subject == subject for entry in received)
    stream_seqs = [entry.seq for entry in received]
    assert stream_seqs == sorted(stream_seqs)

    # Resume after the second entry, as an SSE client with Last-Event-ID would.
    resumed = [
        entry.message.seq
        async for entry in reader.read(
            subject,
            decoder=decoder_for(Chunk),
            start_seq=received[1].seq + 1,
            until=lambda e: e.message.is_final,
        )
    ]
    assert resumed == [3, 4, 5]


async def test_caught_up_and_idle_timeout_end_a_read(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.query_event(kit.tenant, "q9")
    reader = StreamReader(bus)  # stream looked up from the subject
    decoder = decoder_for(QueryEvent)
    empty = [e async for e in reader.read(subject, decoder=decoder, caught_up=True)]
    assert empty == []

    for index in range(4):
        event = QueryEvent(timestamp="2026-01-01T00:00:00Z", reason=f"Step{index}")
        await publisher.publish(subject, event)
    everything = [
        e.message.reason async for e in reader.read(subject, decoder=decoder, caught_up=True)
    ]
    assert everything == ["Step0", "Step1", "Step2", "Step3"]

    idle = [e async for e in reader.read(subject, decoder=decoder, idle_timeout=0.3)]
    assert len(idle) == 4
    limited = [e async for e in reader.read(subject, decoder=decoder, limit=2)]
    assert len(limited) == 2

    last = await reader.last(subject, decoder=decoder)
    assert last is not None
    assert last.message.reason == "Step3"
    assert await reader.last(subjects.query_event(kit.tenant, "nothing"), decoder=decoder) is None


async def test_undecodable_entries_are_skipped_or_raised(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.query_event(kit.tenant, "q5")
    await publisher.publish(subject, b"garbage", schema="ark.event.v1")
    await publisher.publish(subject, QueryEvent(timestamp="t", reason="Fine"))
    reader = StreamReader(bus, subjects.ARK_EVENTS)
    decoder = decoder_for(QueryEvent)
    kept = [e.message.reason async for e in reader.read(subject, decoder=decoder, caught_up=True)]
    assert kept == ["Fine"]
    raised: list[str] = []
    try:
        async for _ in reader.read(subject, decoder=decoder, skip_undecodable=False):
            pass
    except DecodeError as error:
        raised.append(error.reason)
    assert raised
    assert "malformed JSON" in raised[0]


async def test_count_and_last_sequence_of_a_subject(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    reader = StreamReader(bus)
    mine = f"ark.{kit.tenant}.query.*.event"
    assert await reader.count(mine) == 0
    assert await reader.last_sequence(mine) == 0
    for query_id, steps in (("qa", 3), ("qb", 2)):
        for index in range(steps):
            event = QueryEvent(timestamp="2026-01-01T00:00:00Z", reason=f"Step{index}")
            await publisher.publish(subjects.query_event(kit.tenant, query_id), event)
    await publisher.publish(
        subjects.query_event("someone-else", "qa"),
        QueryEvent(timestamp="2026-01-01T00:00:00Z", reason="Theirs"),
    )
    assert await reader.count(mine) == 5
    assert await reader.count(subjects.query_event(kit.tenant, "qb")) == 2
    last = await reader.last_sequence(mine)
    theirs = await reader.last(
        subjects.query_event("someone-else", "qa"), decoder=decoder_for(QueryEvent)
    )
    assert theirs is not None
    assert last == theirs.seq  # the stream's last sequence, whoever's subject it is
    # A read from the next sequence sends exactly what is stored from then on.
    await publisher.publish(
        subjects.query_event(kit.tenant, "qc"),
        QueryEvent(timestamp="2026-01-01T00:00:00Z", reason="Later"),
    )
    later = [
        entry.message.reason
        async for entry in reader.read(
            mine, decoder=decoder_for(QueryEvent), start_seq=last + 1, caught_up=True
        )
    ]
    assert later == ["Later"]
