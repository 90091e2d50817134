"""Readers that never hang, errors that are mapped: the broker's SSE routes share one JetStream
consumer per stream, a client leaving costs no traceback, a stream that cannot continue ends
with an error and ``[DONE]`` (and resumes exactly), and a NATS outage is a 503 with
``Retry-After`` on every route family, never a 500 or aiohttp's plain-text 504.

A real nats-server (stopped and restarted under the running broker), the real broker and
query-reconciler, clients over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from ark_mesh.broker import SSEConfig
from ark_mesh.contracts import subjects
from ark_mesh.testing.fake_llm import Match, Reply, Rule

LONG = "tell me a long story"
WORDS = 200


def _long_answers(world: Any, chunk_delay: float = 0.05) -> None:
    world.fake.add_rule(
        Rule(
            match=Match(user=LONG),
            reply=Reply(content=" ".join(["word"] * WORDS), chunk_delay=chunk_delay),
        )
    )


async def _chunk_consumers(world: Any) -> int:
    async with world.http.get(f"{world.nats.monitor_url}/jsz?consumers=true") as response:
        body = await response.json()
    for account in body.get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == subjects.ARK_CHUNKS:
                return len(stream.get("consumer_detail") or [])
    return 0


async def _eventually(check: Any, what: str, within: float = 60.0) -> None:
    """Poll ``check`` (a safety net with a generous bound, never a timing assertion)."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def _first_data(response: aiohttp.ClientResponse) -> str:
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            return line[6:]
    raise AssertionError("the stream ended before its first event")


async def test_two_hundred_followers_hold_one_consumer_and_leave_quietly(
    running: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # As many live queries as the reconciler runs at once, each answering slowly enough to
    # outlast the test (they are canceled at the end).
    _long_answers(running, chunk_delay=0.5)
    broker = running.brokers[0]
    ids = [await running.submit(LONG) for _ in range(4)]
    caplog.set_level(logging.DEBUG)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as clients:
        responses: list[aiohttp.ClientResponse] = []
        try:
            for n in range(200):
                response = await clients.get(
                    f"{running.url}/v1/queries/{ids[n % 4]}/stream", headers=running.auth()
                )
                assert response.status == 200
                responses.append(response)
            await asyncio.gather(*(_first_data(response) for response in responses))
            assert broker.fanout is not None
            assert broker.fanout.followers == 200
            # The catch-up consumers of clients that joined mid-stream go away once they are
            # caught up; what stays is the one shared feed.
            await _eventually(
                lambda: _one(running), "one consumer on ARK_CHUNKS while 200 clients follow"
            )
            assert broker.fanout.followers == 200
        finally:
            for response in responses:  # all at once: 200 clients hang up together
                response.close()
    await _eventually(lambda: _no_followers(broker), "the followers to be dropped")
    for query_id in ids:
        async with running.http.post(
            f"{running.url}/v1/queries/{query_id}/cancel", headers=running.auth()
        ) as response:
            assert response.status == 202
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert tracebacks == []
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "Error handling request" not in out + err


async def _one(world: Any) -> bool:
    return await _chunk_consumers(world) == 1


async def _no_followers(broker: Any) -> bool:
    return bool(broker.fanout.followers == 0)


async def test_a_live_stream_resumed_mid_way_has_no_gap_and_no_duplicate(running: Any) -> None:
    _long_answers(running)
    query_id = await running.submit(LONG)
    first, _ = await running.sse(f"/v1/queries/{query_id}/stream", stop_after=5)
    assert len(first) == 5
    rest, _ = await running.sse(f"/v1/queries/{query_id}/stream", last_event_id=first[-1].id)
    assert rest[-1].data == "[DONE]"
    full, _ = await running.sse(f"/v1/queries/{query_id}/stream")
    assert [(e.id, e.data) for e in first + rest] == [(e.id, e.data) for e in full]


# --------------------------------------------------------------------------- NATS away


async def _answer(
    world: Any, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], str]:
    headers = {**world.auth(), "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    async with (
        asyncio.timeout(120),
        world.http.request(method, f"{world.url}{path}", data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.text()


def _assert_unavailable(route: str, answer: tuple[int, dict[str, str], str]) -> None:
    """A 503 JSON with ``Retry-After``, or a stream that ends with an error line, ``[DONE]``."""
    status, headers, text = answer
    if status == 200 and headers.get("Content-Type", "").startswith("text/event-stream"):
        data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]", (route, text)
        assert "error" in json.loads(data[-2]), (route, text)
        return
    assert status == 503, (route, status, text)
    assert int(headers["Retry-After"]) > 0, route
    assert headers["Content-Type"].startswith("application/json"), (route, headers)
    assert "error" in json.loads(text), (route, text)


async def test_a_nats_outage_is_503_everywhere_and_ends_every_stream(world: Any) -> None:
    _long_answers(world, chunk_delay=0.1)
    await world.start_reconciler()
    config = world.broker_config(
        streaming=SSEConfig(heartbeat_seconds=0.5, read_within_seconds=2.0)
    )
    await world.start_broker(config)
    done = await world.submit()
    await world.wait_phase(done)
    live = await world.submit(LONG)
    path = f"/v1/queries/{live}/stream"
    async with world.http.get(f"{world.url}{path}", headers=world.auth()) as stream:
        first = await _first_data(stream)
        assert json.loads(first)["choices"]
        await world.nats.astop()
        try:
            # The stream that was following ends: the error line, then [DONE], never a cut.
            async with asyncio.timeout(60):
                text = (await stream.read()).decode()
            data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
            assert data[-1] == "[DONE]"
            assert json.loads(data[-2])["error"]["code"] == "unavailable"
            ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
            routes: dict[str, tuple[str, str, Any]] = {
                "get query": ("GET", f"/v1/queries/{done}", None),
                "list queries": ("GET", "/v1/queries", None),
                "create query": (
                    "POST",
                    "/v1/queries",
                    {"input": "hi", "target": {"type": "agent", "name": "helper"}},
                ),
                "cancel": ("POST", f"/v1/queries/{done}/cancel", None),
                "stream": ("GET", f"/v1/queries/{done}/stream", None),
                "events": ("GET", f"/v1/queries/{done}/events", None),
                "ark stream": ("GET", f"/stream/{done}?from-beginning=true", None),
                "ark chunks page": ("GET", "/stream?limit=5", None),
                "ark events page": ("GET", "/events", None),
                "ark events watch": ("GET", "/events?watch=true", None),
                "chat": (
                    "POST",
                    "/openai/v1/chat/completions",
                    {"model": "agent/helper", "messages": [{"role": "user", "content": "hi"}]},
                ),
                "chat stream": (
                    "POST",
                    "/openai/v1/chat/completions",
                    {
                        "model": "agent/helper",
                        "stream": True,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                ),
                "approvals": ("GET", "/v1/tool-approvals", None),
                "update query": ("PUT", f"/v1/queries/{done}", {"cancel": True}),
                "patch cancel": ("PATCH", f"/v1/queries/{done}/cancel", None),
                "delete query": ("DELETE", f"/v1/queries/{done}", None),
                "events watch": ("GET", f"/v1/queries/{done}/events?watch=true", None),
                "ark query events": ("GET", f"/events/{done}", None),
                "ark chunks watch": ("GET", "/stream?watch=true", None),
                "ark-api chunks": ("GET", f"/v1/broker/chunks?watch=true&query-id={done}", None),
                "responses": (
                    "POST",
                    "/openai/v1/responses",
                    {"model": "agent/helper", "input": "hi"},
                ),
                "responses stream": (
                    "POST",
                    "/openai/v1/responses",
                    {"model": "agent/helper", "input": "hi", "stream": True},
                ),
                "stored response": ("GET", "/openai/v1/responses/resp_abc", None),
                "embeddings": ("POST", "/openai/v1/embeddings", {"model": "m", "input": "hi"}),
                "conversations": ("GET", "/conversations", None),
                "memory status": ("GET", "/memory-status", None),
            }
            answers = await asyncio.gather(*(_answer(world, *call) for call in routes.values()))
            for route, answer in zip(routes, answers, strict=True):
                _assert_unavailable(route, answer)
        finally:
            await world.nats.astart()
    # Back: the interrupted stream resumes exactly where it stopped.
    await world.brokers[0].bus.wait_connected(60)
    resumed, _ = await world.sse(path, last_event_id=ids[-1] if ids else 0)
    assert resumed[-1].data == "[DONE]"
    full, _ = await world.sse(path)
    seen = [(i, d) for i, d in zip(ids, data[: len(ids)], strict=True)]
    assert seen + [(e.id, e.data) for e in resumed] == [(e.id, e.data) for e in full]


async def _open_stream(world: Any, path: str, body: Any) -> aiohttp.ClientResponse:
    response = await world.http.post(
        f"{world.url}{path}",
        data=json.dumps(body).encode(),
        headers={**world.auth(), "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    await _first_data(response)
    return response


async def test_streams_on_the_responses_path_end_in_their_dialect_when_nats_goes(
    world: Any,
) -> None:
    """A chat stream on a Model ends with OpenAI's error object and ``[DONE]``; a Responses
    stream with its ``error`` event (OpenAI's Responses streams have no ``[DONE]``)."""
    _long_answers(world, chunk_delay=0.1)
    await world.start_responses_reconciler()
    await world.start_broker(
        world.broker_config(streaming=SSEConfig(heartbeat_seconds=0.5, read_within_seconds=2.0))
    )
    chat = await _open_stream(
        world,
        "/openai/v1/chat/completions",
        {"model": "model/default", "stream": True, "messages": [{"role": "user", "content": LONG}]},
    )
    responses = await _open_stream(
        world, "/openai/v1/responses", {"model": "model/default", "input": LONG, "stream": True}
    )
    await world.nats.astop()
    try:
        async with asyncio.timeout(60):
            chat_text = (await chat.read()).decode()
            responses_text = (await responses.read()).decode()
    finally:
        chat.close()
        responses.close()
        await world.nats.astart()
    data = [line[6:] for line in chat_text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["error"]["code"] == "unavailable"
    kinds = [line[7:] for line in responses_text.splitlines() if line.startswith("event: ")]
    assert kinds[-1] == "error"
    await world.brokers[0].bus.wait_connected(60)


async def test_chunks_stored_out_of_order_are_streamed_in_seq_order_and_resumed_by_seq(
    world: Any,
) -> None:
    """What a ``ARK_CHUNKS`` leader election leaves behind — chunks re-sent after later ones,
    one stored twice — reaches the client as 1, 2, 3 … once each; ``id:`` is the chunk's
    ``seq``, so ``Last-Event-ID`` resumes exactly. (No reconciler: the chunks are stored here,
    in the order an election can leave them.)"""
    from ark_mesh.bus import Publisher
    from ark_mesh.contracts import (
        ArkChunkMetadata,
        Chunk,
        ChunkChoice,
        ChunkDelta,
        ObjectMeta,
        Query,
        QuerySpec,
    )

    broker = await world.start_broker()
    query_id = await world.submit("hi")
    subject = subjects.query_chunk("team-a", query_id)
    done = Query(metadata=ObjectMeta(name="q"), spec=QuerySpec(input="hi"))

    def chunk(seq: int) -> Chunk:
        return Chunk(
            id="chatcmpl-final" if seq == 6 else "chatcmpl-1",
            created=1,
            model="m",
            choices=[ChunkChoice(delta=ChunkDelta(content=f"t{seq}"))],
            ark=ArkChunkMetadata(query=query_id, completed_query=done if seq == 6 else None),
            seq=seq,
        )

    publisher = await Publisher.create(broker.bus)
    try:
        for seq in (1, 2, 4, 5, 2, 3, 6):
            await publisher.publish(subject, chunk(seq))
    finally:
        await publisher.close()
    path = f"/v1/queries/{query_id}/stream"
    full, _ = await world.sse(path)
    assert [e.id for e in full[:-1]] == [1, 2, 3, 4, 5, 6]
    assert [json.loads(e.data)["choices"][0]["delta"]["content"] for e in full[:5]] == [
        "t1",
        "t2",
        "t3",
        "t4",
        "t5",
    ]
    assert full[-1].data == "[DONE]"
    rest, _ = await world.sse(path, last_event_id=3)
    assert [(e.id, e.data) for e in rest] == [(e.id, e.data) for e in full[3:]]


async def test_a_finished_query_without_a_stored_final_chunk_still_ends_its_stream(
    world: Any,
) -> None:
    """The reconciler stored the terminal status but could not store the final chunk (no
    ``ARK_CHUNKS`` leader for long): after the grace period the broker ends the stream with
    the final chunk built from the status, marked ``ark.synthesized``, once, after the chunks
    that were stored."""
    from ark_mesh.broker import SSEConfig
    from ark_mesh.bus import Publisher
    from ark_mesh.contracts import (
        ArkChunkMetadata,
        Chunk,
        ChunkChoice,
        ChunkDelta,
        QueryResponse,
        QueryStatus,
        StatusUpdate,
    )

    config = world.broker_config(
        streaming=SSEConfig(heartbeat_seconds=0.5, final_chunk_grace_seconds=0.5)
    )
    broker = await world.start_broker(config)
    query_id = await world.submit("hi")
    _, record = await world.get(f"/v1/queries/{query_id}")
    publisher = await Publisher.create(broker.bus)
    try:
        for seq in (1, 2):
            await publisher.publish(
                subjects.query_chunk("team-a", query_id),
                Chunk(
                    id="chatcmpl-1",
                    created=1,
                    model="m",
                    choices=[ChunkChoice(delta=ChunkDelta(content=f"t{seq}"))],
                    ark=ArkChunkMetadata(query=query_id),
                    seq=seq,
                ),
            )
        await publisher.publish(
            subjects.query_status("team-a", query_id),
            StatusUpdate(
                query_id=query_id,
                name=record["name"],
                namespace="team-a",
                tenant="team-a",
                seq=1,
                phase="done",
                status=QueryStatus(
                    phase="done", response=QueryResponse(content="t1t2", raw="t1t2")
                ),
                timestamp="2026-01-01T00:00:00Z",
            ),
        )
    finally:
        await publisher.close()
    events, _ = await world.sse(f"/v1/queries/{query_id}/stream")
    assert [e.id for e in events] == [1, 2, 3, None]
    final = json.loads(events[2].data)
    assert final["id"] == "chatcmpl-final"
    assert final["ark"]["synthesized"] is True
    assert final["ark"]["completedQuery"]["status"]["phase"] == "done"
    assert final["ark"]["completedQuery"]["status"]["response"]["content"] == "t1t2"
    assert events[-1].data == "[DONE]"
    # A resume after the built final chunk has nothing left to send.
    rest, _ = await world.sse(f"/v1/queries/{query_id}/stream", last_event_id=3)
    assert [e.data for e in rest] == ["[DONE]"]
