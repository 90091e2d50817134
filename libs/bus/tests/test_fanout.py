"""Shared live feed: many followers, one consumer; catch-up then live with no gap and no
duplicate; a lagging follower and a lost NATS end the read instead of hanging it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ark_mesh.bus import (
    Bus,
    Fanout,
    Publisher,
    ReaderLagError,
    ReaderUnavailableError,
    StreamEntry,
    StreamReader,
    Topology,
)
from ark_mesh.bus.fanout import feed_filter
from ark_mesh.contracts import ArkChunkMetadata, Chunk, ChunkChoice, ChunkDelta, decoder_for
from ark_mesh.contracts import subjects as subj
from ark_mesh.testing.nats_server import NatsServer

_decode = decoder_for(Chunk)


def _chunk(n: int) -> Chunk:
    return Chunk(
        id="chatcmpl-1",
        created=1,
        model="m",
        choices=[ChunkChoice(delta=ChunkDelta(content=f"t{n}"))],
        ark=ArkChunkMetadata(query="q"),
        seq=n,
    )


async def _chunks_consumers(server: NatsServer) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.monitor_url}/jsz?consumers=true") as response,
    ):
        body = await response.json()
    for account in body.get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == subj.ARK_CHUNKS:
                return len(stream.get("consumer_detail") or [])
    return 0


def test_feed_filters() -> None:
    assert feed_filter("ark.t.query.q1.chunk") == "ark.*.query.*.chunk"
    assert feed_filter("ark.t.query.*.event") == "ark.*.query.*.event"
    assert feed_filter("ark.*.query.*.chunk") is None
    assert feed_filter("ark.t.memory.c1") is None


async def test_followers_from_anywhere_get_every_entry_once_in_order(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type, nats_server: NatsServer
) -> None:
    """Followers start from the beginning, mid-stream and at the end while entries keep being
    published: each sees exactly the entries from its start on, in order; the live part goes
    through one shared consumer."""
    fanout = Fanout(StreamReader(bus))
    subject = subj.query_chunk(kit.tenant, "q1")
    other = subj.query_chunk(kit.tenant, "q2")
    acks = [await publisher.publish(subject, _chunk(n)) for n in range(20)]
    total = 200
    seen: dict[str, list[int]] = {}
    ready = asyncio.Event()

    async def follow(name: str, start: int | None, count: int) -> None:
        got = seen.setdefault(name, [])
        async for entry in fanout.follow(subject, decoder=_decode, start_seq=start):
            got.append(entry.message.seq or 0)
            if len(got) == count:
                return

    starts = {"first": (None, total), "mid": (acks[9].seq, total - 9), "late": (None, total)}
    tasks = [
        asyncio.create_task(follow(name, start, count)) for name, (start, count) in starts.items()
    ]
    ready.set()
    for n in range(20, total):
        await publisher.publish(subject, _chunk(n))
        await publisher.publish(other, _chunk(n))
        if n == 100:
            tasks.append(asyncio.create_task(follow("joined", acks[0].seq, total)))
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks)
    assert seen["first"] == list(range(total))
    assert seen["late"] == list(range(total))
    assert seen["mid"] == list(range(9, total))
    assert seen["joined"] == list(range(total))
    assert fanout.feeds == 1
    assert fanout.followers == 0
    await fanout.close()


async def test_many_live_followers_hold_one_consumer(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type, nats_server: NatsServer
) -> None:
    fanout = Fanout(StreamReader(bus))
    subjects = [subj.query_chunk(kit.tenant, f"q{n}") for n in range(50)]
    received: list[list[StreamEntry[Chunk]]] = [[] for _ in range(200)]

    async def follow(index: int) -> None:
        start = await StreamReader(bus).last_sequence(subjects[0]) + 1
        async for entry in fanout.follow(subjects[index % 50], decoder=_decode, start_seq=start):
            received[index].append(entry)
            return

    tasks = [asyncio.create_task(follow(n)) for n in range(200)]
    await kit.eventually(lambda: fanout.followers == 200, what="200 followers")
    assert await _chunks_consumers(nats_server) == 1
    for subject in subjects:
        await publisher.publish(subject, _chunk(1))
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)
    assert all(len(entries) == 1 for entries in received)
    await fanout.close()


async def test_a_follower_that_lags_too_far_is_cut_off(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    fanout = Fanout(StreamReader(bus), buffer=5)
    subject = subj.query_chunk(kit.tenant, "q1")
    start = await StreamReader(bus).last_sequence(subject) + 1
    follower = aiter(fanout.follow(subject, decoder=_decode, start_seq=start))
    first = asyncio.ensure_future(anext(follower))
    await kit.eventually(lambda: fanout.followers == 1, what="the follower")
    for n in range(20):
        await publisher.publish(subject, _chunk(n))
    got = [(await first).message.seq]

    async def drain() -> None:
        async for entry in follower:
            got.append(entry.message.seq)

    with pytest.raises(ReaderLagError):
        await drain()
    # What was buffered before the cut-off comes first, in order, then the error.
    assert got == list(range(len(got)))
    assert len(got) <= 1 + 5
    await fanout.close()


async def test_followers_end_when_nats_stays_away(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type, nats_server: NatsServer
) -> None:
    fanout = Fanout(StreamReader(bus, create_within=1.0))
    subject = subj.query_chunk(kit.tenant, "q1")
    follower = aiter(fanout.follow(subject, decoder=_decode))
    pending = asyncio.ensure_future(anext(follower))
    await kit.eventually(lambda: fanout.followers == 1, what="the follower")
    await nats_server.astop()
    try:
        async with asyncio.timeout(30):
            with pytest.raises(ReaderUnavailableError):
                await pending
    finally:
        await nats_server.astart()
        await bus.wait_connected(30)
    await fanout.close()


async def test_a_read_that_cannot_create_its_consumer_raises_within_its_bound(
    bus: Bus, topology: Topology, kit: type, nats_server: NatsServer
) -> None:
    reader = StreamReader(bus, subj.ARK_CHUNKS, create_within=1.0, create_attempt=0.5)
    await nats_server.astop()
    try:
        async with asyncio.timeout(30):
            with pytest.raises(ReaderUnavailableError) as caught:
                async for _ in reader.read(subj.query_chunk(kit.tenant, "q1"), decoder=_decode):
                    pass
        assert "could not be created" in str(caught.value)
    finally:
        await nats_server.astart()
        await bus.wait_connected(30)


async def test_a_read_whose_consumer_cannot_be_recreated_ends_within_its_bound(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    """The stream goes away under a live read: nats-py keeps trying to re-create the ordered
    consumer in the background; the read notices and raises instead of waiting for ever."""
    reader = StreamReader(bus, subj.ARK_CHUNKS, create_within=2.0, create_attempt=1.0)
    subject = subj.query_chunk(kit.tenant, "q1")
    await publisher.publish(subject, _chunk(1))
    entries = aiter(reader.read(subject, decoder=_decode))
    assert (await anext(entries)).message.seq == 1
    await bus.jsm.delete_stream(subj.ARK_CHUNKS)
    async with asyncio.timeout(60):
        with pytest.raises(ReaderUnavailableError, match="could not be re-created"):
            await anext(entries)
