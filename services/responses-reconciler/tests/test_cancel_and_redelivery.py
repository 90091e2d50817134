"""The request's cancel channel and redelivery: a cancel stops the model call and answers
``canceled``; a retry after partial streaming continues the chunk numbering after a restart
notice; a delivery of a request already answered does nothing again."""

from __future__ import annotations

import asyncio
from typing import Any

from ark_mesh.bus import CancelChannel, StreamReader
from ark_mesh.contracts import Chunk, decoder_for, subjects

SLOW = " ".join(f"word{n}" for n in range(40))


async def _first_chunk(world: Any, tenant: str, request_id: str) -> Chunk:
    reader = StreamReader(world.bus)
    async with asyncio.timeout(30):
        async for entry in reader.read(
            subjects.query_chunk(tenant, request_id), decoder=decoder_for(Chunk).decode
        ):
            chunk: Chunk = entry.message
            return chunk
    raise AssertionError("no chunk")


async def test_a_cancel_stops_the_model_call_and_answers_canceled(world: Any) -> None:
    world.fake.add_rule(
        {"match": {"user": "slowly"}, "reply": {"content": SLOW, "chunk_delay": 0.25}}
    )
    await world.start()
    request = world.request("model/default", [{"role": "user", "content": "slowly"}], stream=True)
    await world.submit(request)
    await _first_chunk(world, request.tenant, request.request_id)

    await CancelChannel(world.bus).request(request.tenant, request.request_id, reason="test")
    result = await world.result(request)
    await world.settled()

    assert result.status == "canceled"
    chunks = await world.chunks(request)
    final = chunks[-1]
    assert final.is_final
    assert final.ark.completed_query is not None
    assert final.ark.completed_query.status is not None
    assert final.ark.completed_query.status.phase == "canceled"
    text = "".join(c.delta.content or "" for chunk in chunks[:-1] for c in chunk.choices)
    assert text != SLOW  # stopped before the model finished
    assert [chunk.seq for chunk in chunks] == list(range(1, len(chunks) + 1))
    async with asyncio.timeout(30):
        while True:
            if world.fake.requests_to("chat")[0].outcome != "pending":
                break
            await asyncio.sleep(0.05)
    assert world.fake.requests_to("chat")[0].outcome == "client_disconnected"


async def test_a_request_canceled_before_it_starts_never_calls_the_model(world: Any) -> None:
    await world.start()
    request = world.request("model/default", [{"role": "user", "content": "hi"}], stream=True)
    await CancelChannel(world.bus).request(request.tenant, request.request_id, reason="test")
    await world.submit(request)

    result = await world.result(request)
    await world.settled()

    assert result.status == "canceled"
    assert world.fake.requests_to("chat") == []
    assert [chunk.id for chunk in await world.chunks(request)] == ["chatcmpl-final"]


async def test_a_retry_after_partial_streaming_continues_the_numbering(world: Any) -> None:
    answer = "alpha beta gamma delta epsilon zeta"
    world.fake.add_rule(
        {
            "match": {"user": "flaky"},
            "replies": [{"content": answer, "drop_after": 3}, {"content": answer}],
        }
    )
    await world.start()
    request = world.request("model/default", [{"role": "user", "content": "flaky"}], stream=True)
    await world.submit(request)

    result = await world.result(request)
    await world.settled()
    chunks = await world.chunks(request)

    assert result.status == "completed"
    assert result.message == {"role": "assistant", "content": answer}
    assert len(world.fake.requests_to("chat")) == 2
    # One number per chunk, never reused: nothing of the retry was dropped as a duplicate.
    assert [chunk.seq for chunk in chunks] == list(range(1, len(chunks) + 1))
    notices = [i for i, chunk in enumerate(chunks) if chunk.ark.system_message is not None]
    assert len(notices) == 1
    after = chunks[notices[0] + 1 : -1]
    assert "".join(c.delta.content or "" for chunk in after for c in chunk.choices) == answer
    assert chunks[-1].is_final
    assert len(await world.results(request)) == 1


async def test_a_delivery_of_an_answered_request_does_nothing_again(world: Any) -> None:
    await world.start()
    request = world.request("model/default", [{"role": "user", "content": "once"}])
    await world.submit(request)
    assert (await world.result(request)).status == "completed"
    await world.settled()

    # The same request again, past the publish deduplication (another message id).
    await world.publisher.publish(
        subjects.work_responses(request.tenant), request, msg_id=f"{request.request_id}:again"
    )
    await world.publisher.flush()
    async with asyncio.timeout(30):
        while True:
            if world.services[0].worker.stats.acked >= 2:
                break
            await asyncio.sleep(0.05)

    assert len(world.fake.requests_to("chat")) == 1
    assert len(await world.results(request)) == 1
