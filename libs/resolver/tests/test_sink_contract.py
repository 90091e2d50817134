"""What a resolution hands its sink: encodable bus messages, and best-effort streaming."""

from __future__ import annotations

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
