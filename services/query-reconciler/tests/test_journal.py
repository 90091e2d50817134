"""The resolver's journal on the bus: checkpoints store query-wide chunk numbers, coalesced
chunks reach the stream before the checkpoint that counts them, and a second writer on the same
query is stopped — transiently, so the query is retried rather than ended."""

from __future__ import annotations

from typing import Any

import pytest

from ark_mesh.bus import RunLogStore, StoredRun
from ark_mesh.contracts.approvals import ModelStep, RunLog
from ark_mesh.query_reconciler import CheckpointError, JetStreamSink, RunJournal
from ark_mesh.query_reconciler.config import ChunkStreamConfig
from ark_mesh.query_reconciler.journal import chunk_offset, resumed_log


def _turn(text: str) -> ModelStep:
    return ModelStep(speaker="helper", message={"role": "assistant", "content": text})


async def test_checkpoints_count_chunks_query_wide_and_after_the_chunks(mesh: Any) -> None:
    await mesh.start()  # provisions the topology
    request = mesh.request()
    store = RunLogStore(mesh.bus)
    # An earlier attempt left 5 chunks; this one coalesces (chunks wait in a buffer).
    streaming = ChunkStreamConfig(coalesce=True, coalesce_delay=3600.0)
    sink = JetStreamSink(mesh.publisher, request, attempt=2, chunk_offset=5, streaming=streaming)
    journal = RunJournal(store, request, sink, StoredRun(None, 0))
    for seq, text in enumerate(("one ", "two ", "three"), start=1):
        await sink.chunk(mesh.text_chunk(request, text, seq))

    # Between pauses the resolver leaves ``chunk_seq`` as it got it (0): the sink knows.
    await journal.record(RunLog(query_id=request.query_id, steps=[_turn("x")]))

    stored = await store.load(request.tenant, request.query_id, request.generation)
    assert stored.log is not None
    # 5 before this attempt + the one chunk its 3 merged into: numbers stay dense.
    assert stored.log.chunk_seq == 6
    assert stored.revision == journal.revision
    await mesh.settled()
    chunks = (await mesh.recorded(request)).chunks
    assert chunks  # the buffer was flushed before the checkpoint, not after an hour
    assert [chunk.seq for chunk in chunks] == [6]

    # At a pause the resolver counts the approval line it is about to send (its 4th chunk).
    paused = RunLog(query_id=request.query_id, steps=[_turn("x")], chunk_seq=4)
    await journal.record(paused)
    stored = await store.load(request.tenant, request.query_id, request.generation)
    assert stored.log is not None
    assert stored.log.chunk_seq == 7
    await sink.close()

    # The next attempt: the resolver counts from zero again, the sink continues after 7 even
    # when the stream no longer holds the chunks (aged out during a long pause).
    assert chunk_offset(0, stored.log) == 7
    assert chunk_offset(11, stored.log) == 11
    assert chunk_offset(4, None) == 4
    assert resumed_log(stored.log).chunk_seq == 0
    assert resumed_log(stored.log).steps == stored.log.steps


async def test_a_second_writer_on_the_same_run_is_stopped(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request()
    store = RunLogStore(mesh.bus)
    loaded = await store.load(request.tenant, request.query_id, request.generation)
    first = RunJournal(store, request, JetStreamSink(mesh.publisher, request, attempt=1), loaded)
    second = RunJournal(store, request, JetStreamSink(mesh.publisher, request, attempt=2), loaded)
    log = RunLog(query_id=request.query_id, steps=[_turn("a")])

    await first.record(log)
    with pytest.raises(CheckpointError) as lost:
        await second.record(log)
    assert lost.value.conflict  # transient for the resolver: the run stops, the work retries
    await first.record(RunLog(query_id=request.query_id, steps=[_turn("a"), _turn("b")]))

    stored = await store.load(request.tenant, request.query_id, request.generation)
    assert stored.log is not None
    assert len(stored.log.steps) == 2
