"""What a resolution hands its sink: encodable bus messages, and best-effort streaming."""

from __future__ import annotations

import pytest

from ark_mesh.contracts import (
    Chunk,
    QueryEvent,
    QueryTarget,
    StatusUpdate,
    decode,
    encode,
)
from ark_mesh.resolver import RecordingSink

from .conftest import World


async def test_everything_reported_survives_the_bus_codec(world: World) -> None:
    world.model()
    world.agent("helper")
    _, sink = await world.resolve(world.request(target=QueryTarget(type="agent", name="helper")))
    for chunk in sink.chunks:
        assert decode(encode(chunk), Chunk) == chunk
    for event in sink.events:
        assert decode(encode(event), QueryEvent) == event
    for update in sink.statuses:
        assert decode(encode(update), StatusUpdate) == update


class BrokenStream(RecordingSink):
    """A sink whose chunk and event deliveries fail, like a broker that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.chunk_attempts = 0

    async def chunk(self, chunk: Chunk) -> None:
        self.chunk_attempts += 1
        if chunk.ark.completed_query is None:
            raise ConnectionError("stream broken")
        await super().chunk(chunk)

    async def event(self, event: QueryEvent) -> None:
        raise ConnectionError("events broken")


async def test_broken_chunk_and_event_delivery_does_not_fail_the_query(world: World) -> None:
    world.model()
    world.agent("helper")
    sink = BrokenStream()
    status = await world.reconciler.resolve(
        world.request(target=QueryTarget(type="agent", name="helper")), sink
    )
    assert status.phase == "done"
    assert [u.phase for u in sink.statuses] == ["running", "done"]
    # One failed content chunk abandons the stream; the final chunk is still attempted.
    assert sink.chunk_attempts == 2
    assert [c.id for c in sink.chunks] == ["chatcmpl-final"]


class LostFinalChunk(RecordingSink):
    """A sink that stores everything but the final chunk (its stream's leader is gone)."""

    async def chunk(self, chunk: Chunk) -> None:
        if chunk.ark.completed_query is not None:
            raise ConnectionError("no responders")
        await super().chunk(chunk)


async def test_a_final_chunk_that_cannot_be_delivered_fails_the_attempt(world: World) -> None:
    """Readers wait for the final chunk: losing it quietly would leave every stream open. The
    failure reaches the caller, after the terminal status, so redelivery can publish it."""
    world.model()
    world.agent("helper")
    sink = LostFinalChunk()
    with pytest.raises(ConnectionError, match="no responders"):
        await world.reconciler.resolve(
            world.request(target=QueryTarget(type="agent", name="helper")), sink
        )
    assert [u.phase for u in sink.statuses] == ["running", "done"]
    assert all(c.ark.completed_query is None for c in sink.chunks)
