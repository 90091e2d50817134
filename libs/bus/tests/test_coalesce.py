"""Chunk coalescing: text deltas of one query merge, everything else keeps its place."""

from __future__ import annotations

from ark_mesh.bus import Bus, ChunkCoalescer, Publisher, StreamReader, Topology, can_merge
from ark_mesh.bus.coalesce import merge_chunks
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkFunctionCall,
    ChunkToolCall,
    ObjectMeta,
    Query,
    QuerySpec,
    decoder_for,
    subjects,
)


def text(seq: int, content: str, *, role: str | None = None, agent: str = "a") -> Chunk:
    return Chunk(
        id="chatcmpl-1",
        created=1,
        model="gpt",
        choices=[ChunkChoice(delta=ChunkDelta(role=role, content=content))],
        ark=ArkChunkMetadata(query="q1", agent=agent),
        seq=seq,
    )


def tool_call(seq: int) -> Chunk:
    call = ChunkToolCall(index=0, id="c1", function=ChunkFunctionCall(name="weather"))
    return Chunk(
        id="chatcmpl-1",
        created=1,
        model="gpt",
        choices=[ChunkChoice(delta=ChunkDelta(tool_calls=[call]))],
        ark=ArkChunkMetadata(query="q1", agent="a"),
        seq=seq,
    )


def final(seq: int) -> Chunk:
    done = Query(metadata=ObjectMeta(name="q"), spec=QuerySpec(input="hi"))
    return Chunk(
        id="chatcmpl-final",
        created=1,
        model="q",
        choices=[ChunkChoice(delta=ChunkDelta(content=""), finish_reason="stop")],
        ark=ArkChunkMetadata(query="q1", completed_query=done),
        seq=seq,
    )


def test_merge_rules() -> None:
    assert can_merge(text(1, "Hel", role="assistant"), text(2, "lo"))
    assert not can_merge(text(1, "a"), text(2, "b", role="assistant"))
    assert not can_merge(text(1, "a"), text(2, "b", agent="other"))
    assert not can_merge(text(1, "a"), tool_call(2))
    assert not can_merge(text(1, "a"), final(2))
    merged = merge_chunks([text(1, "Hel", role="assistant"), text(2, "lo "), text(3, "world")])
    assert merged.choices[0].delta.content == "Hello world"
    assert merged.choices[0].delta.role == "assistant"
    assert merged.seq == 3
    assert merged.ark == text(1, "").ark


async def test_coalesced_stream_reads_back_the_same_text_in_order(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.query_chunk(kit.tenant, "q1")
    coalescer = ChunkCoalescer(
        publisher, max_delay=10.0, max_bytes=12, msg_id=lambda c: f"q1:1:{c.seq}"
    )
    produced = [text(1, "Hel", role="assistant"), *(text(n, f" w{n}") for n in range(2, 9))]
    produced += [tool_call(9), text(10, "after"), text(11, " tool"), final(12)]
    for chunk in produced:
        await coalescer.add(subject, chunk)
    await coalescer.close()
    await publisher.flush(within=30)

    stored = [
        entry.message
        async for entry in StreamReader(bus, subjects.ARK_CHUNKS).read(
            subject, decoder=decoder_for(Chunk), caught_up=True
        )
    ]
    assert len(stored) < len(produced)
    assert coalescer.received == len(produced)
    assert coalescer.published == len(stored)

    def joined(chunks: list[Chunk]) -> str:
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert joined(stored) == joined(produced)
    seqs = [chunk.seq for chunk in stored]
    assert seqs == sorted(set(seqs))
    assert stored[-1].is_final
    assert [c.choices[0].delta.tool_calls is not None for c in stored].count(True) == 1
    # The byte budget bounds every merged message.
    assert all(len(c.choices[0].delta.content or "") <= 12 + 3 for c in stored)


async def test_timer_flushes_a_quiet_stream(
    bus: Bus, topology: Topology, publisher: Publisher, kit: type
) -> None:
    subject = subjects.query_chunk(kit.tenant, "q2")
    coalescer = ChunkCoalescer(publisher, max_delay=0.02)
    await coalescer.add(subject, text(1, "only"))
    entries = [
        entry
        async for entry in StreamReader(bus, subjects.ARK_CHUNKS).read(
            subject, decoder=decoder_for(Chunk), limit=1, idle_timeout=30
        )
    ]
    assert entries[0].message.choices[0].delta.content == "only"
    await coalescer.close()
