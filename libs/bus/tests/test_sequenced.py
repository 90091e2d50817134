"""A query's chunks read back in ``seq`` order whatever order JetStream stored them in (what a
leader election leaves behind), each once, and never stalled for ever behind a lost one."""

from __future__ import annotations

import asyncio

from ark_mesh.bus import Fanout, Publisher, StreamReader, Topology, in_sequence
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ObjectMeta,
    Query,
    QuerySpec,
    decoder_for,
)
from ark_mesh.contracts import subjects as subj

_decode = decoder_for(Chunk)


def _chunk(n: int, *, final: bool = False) -> Chunk:
    done = Query(metadata=ObjectMeta(name="q"), spec=QuerySpec(input="hi")) if final else None
    ark = ArkChunkMetadata(query="q", completed_query=done)
    return Chunk(
        id="chatcmpl-final" if final else "chatcmpl-1",
        created=1,
        model="m",
        choices=[ChunkChoice(delta=ChunkDelta(content=f"t{n}"))],
        ark=ark,
        seq=n,
    )


async def _store(publisher: Publisher, subject: str, order: list[int], final: int) -> None:
    for n in order:
        await publisher.publish(subject, _chunk(n, final=n == final))


async def test_chunks_stored_out_of_order_are_read_in_order_each_once(
    topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subj.query_chunk(kit.tenant, "q1")
    await _store(publisher, subject, [1, 2, 5, 6, 3, 3, 4, 6, 7], final=7)
    reader = StreamReader(publisher.bus)
    entries = reader.read(subject, decoder=_decode, until=lambda e: e.message.is_final)
    got = [entry.message.seq async for entry in in_sequence(entries)]
    assert got == [1, 2, 3, 4, 5, 6, 7]

    # A client resuming after seq 4 (its Last-Event-ID) gets the rest, in order, once.
    entries = reader.read(subject, decoder=_decode, until=lambda e: e.message.is_final)
    assert [e.message.seq async for e in in_sequence(entries, after=4)] == [5, 6, 7]


async def test_a_live_follower_waits_for_the_late_chunk(
    topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subj.query_chunk(kit.tenant, "q2")
    fanout = Fanout(StreamReader(publisher.bus))
    got: list[int] = []

    async def follow() -> None:
        entries = fanout.follow(subject, decoder=_decode, until=lambda e: e.message.is_final)
        async for entry in in_sequence(entries):
            got.append(entry.message.seq)

    task = asyncio.create_task(follow())
    await _store(publisher, subject, [1, 3, 4], final=0)
    await asyncio.sleep(0.3)
    assert got == [1]  # 3 and 4 wait for 2
    await _store(publisher, subject, [2, 5], final=5)
    await asyncio.wait_for(task, 10)
    assert got == [1, 2, 3, 4, 5]
    await fanout.close()


async def test_a_chunk_lost_for_good_stalls_the_stream_only_for_gap_wait(
    topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subj.query_chunk(kit.tenant, "q3")
    fanout = Fanout(StreamReader(publisher.bus))
    got: list[int] = []
    released = asyncio.Event()

    async def follow() -> None:
        entries = fanout.follow(subject, decoder=_decode, until=lambda e: e.message.is_final)
        async for entry in in_sequence(entries, gap_wait=0.5):
            got.append(entry.message.seq)
            if entry.message.seq == 4:
                released.set()

    task = asyncio.create_task(follow())
    await _store(publisher, subject, [1, 3, 4], final=0)
    # Released by the gap wait while the read of the next entry is still pending: nothing
    # more is published until 3 and 4 are out.
    await asyncio.wait_for(released.wait(), 10)
    assert got == [1, 3, 4]
    await _store(publisher, subject, [2, 5, 6], final=6)  # 2 comes too late: a duplicate now
    await asyncio.wait_for(task, 10)
    assert got == [1, 3, 4, 5, 6]
    await fanout.close()
