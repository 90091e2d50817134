"""Ark broker's read routes on the mesh: ``GET /stream/{queryName}``, ``GET /events[/{id}]``
and ark-api's ``/v1/broker/…`` proxies, against a real broker, reconciler and nats-server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ark_mesh.broker.api import BROKER
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkError,
    QueryEvent,
    subjects,
)
from ark_mesh.service import KubernetesConfig
from ark_mesh.testing.fake_llm import Match, Reply, Rule

TARGET = {"type": "agent", "name": "helper"}
TIMEOUT_EVENT = {
    "error": {
        "message": "Request timeout waiting for streaming query response",
        "type": "timeout_error",
        "code": "timeout",
    }
}


async def _submit(
    world: Any, text: str, *, tenant: str = "team-a", **extra: Any
) -> tuple[str, str]:
    """Accept a query; its id and name."""
    status, body, _ = await world.post(
        {"input": text, "target": {"type": "agent", "name": "helper"}, **extra}, tenant=tenant
    )
    assert status == 202, body
    return str(body["id"]), str(body["name"])


async def _finished(
    world: Any, text: str, *, tenant: str = "team-a", **extra: Any
) -> tuple[str, str]:
    """A query run to its end, its whole chunk stream stored (the final chunk follows the
    events, so every event is stored too)."""
    query_id, name = await _submit(world, text, tenant=tenant, **extra)
    await world.wait_phase(query_id, tenant=tenant)
    await world.sse(f"/v1/queries/{query_id}/stream", tenant=tenant)
    return query_id, name


async def _error(world: Any, path: str, *, tenant: str = "team-a") -> tuple[int, dict[str, Any]]:
    async with world.http.get(f"{world.url}{path}", headers=world.auth(tenant)) as response:
        return response.status, await response.json()


# --------------------------------------------------------------------------- GET /stream/{name}


async def test_a_finished_query_replays_from_the_beginning_to_done(running) -> None:
    query_id, name = await _finished(running, "Replay me a story")
    mesh, _ = await running.sse(f"/v1/queries/{query_id}/stream")

    async with running.http.get(
        f"{running.url}/stream/{name}?from-beginning=true", headers=running.auth()
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        raw = (await response.read()).decode()
    assert raw.startswith(": connected\n\n")
    assert raw.endswith("data: [DONE]\n\n")
    assert "\nid:" not in raw  # Ark's broker sends no ids on this stream

    events, comments = await running.sse(f"/stream/{name}?from-beginning=true")
    assert comments[0] == "connected"
    # The very chunks /v1/queries/{id}/stream sends, in order: one shape for both.
    assert [e.data for e in events] == [e.data for e in mesh]
    final = json.loads(events[-2].data)
    assert final["ark"]["query"] == query_id
    assert final["ark"]["completedQuery"]["status"]["phase"] == "done"


async def test_a_finished_query_without_from_beginning_ends_at_once(running) -> None:
    _, name = await _finished(running, "Already over")
    events, _ = await running.sse(f"/stream/{name}")
    assert [e.data for e in events] == ["[DONE]"]


async def test_a_live_query_is_followed_to_done(running) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="follow me live"),
            reply=Reply(content=" ".join(["token"] * 30), delay=0.5, chunk_delay=0.02),
        )
    )
    query_id, name = await _submit(running, "follow me live")
    live, _ = await running.sse(f"/stream/{name}")
    replayed, _ = await running.sse(f"/stream/{name}?from-beginning=true")
    assert live[-1].data == "[DONE]"
    assert json.loads(live[-2].data)["ark"]["completedQuery"]["status"]["phase"] == "done"
    # What the live reader saw is exactly the end of the stored stream.
    assert [e.data for e in live] == [e.data for e in replayed[len(replayed) - len(live) :]]

    followed, _ = await running.sse(f"/stream/{query_id}?from-beginning=true")
    assert [e.data for e in followed] == [e.data for e in replayed]


async def test_an_error_chunk_is_forwarded_then_done(running) -> None:
    """A writer's error line (Ark's executor sends one when a model call fails mid-stream)
    ends the stream: forwarded, then ``[DONE]``, whatever follows it."""
    running.fake.add_rule(
        Rule(match=Match(user="fails mid-stream"), reply=Reply(content="late", delay=2.0))
    )
    query_id, name = await _submit(running, "fails mid-stream")
    error = Chunk(
        id="chatcmpl-error",
        created=int(time.time()),
        model=name,
        error=ChunkError(message="the model went away", code="model_error"),
        ark=ArkChunkMetadata(query=query_id),
        seq=10_000,
    )
    publisher = running.brokers[0].app[BROKER].publisher
    await publisher.publish(subjects.query_chunk("team-a", query_id), error)

    events, _ = await running.sse(f"/stream/{name}?from-beginning=true")
    assert events[-1].data == "[DONE]"
    forwarded = json.loads(events[-2].data)
    assert forwarded["error"] == {
        "message": "the model went away",
        "type": "server_error",
        "code": "model_error",
    }
    assert all("completedQuery" not in json.loads(e.data)["ark"] for e in events[:-1])


async def test_wait_for_query_times_out_with_arks_error_event(running) -> None:
    events, comments = await running.sse("/stream/no-such-query?wait-for-query=1")
    assert comments[0] == "connected"
    assert [e.data for e in events] == [json.dumps(TIMEOUT_EVENT, separators=(",", ":")), "[DONE]"]
    assert json.loads(events[0].data) == TIMEOUT_EVENT

    status, body = await _error(running, "/stream/no-such-query")
    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["error"]["field"] == "queryName"


async def test_wait_for_query_finds_a_query_created_while_waiting(running) -> None:
    running.fake.add_rule(
        Rule(match=Match(user="created later"), reply=Reply(content="here now", delay=0.3))
    )
    async with running.http.get(
        f"{running.url}/stream/late-query?wait-for-query=30&from-beginning=true",
        headers=running.auth(),
    ) as response:
        assert response.status == 200
        first = await response.content.readline()
        assert first == b": connected\n"
        await _submit(running, "created later", name="late-query")
        raw = (await response.read()).decode()
    lines = [line[6:] for line in raw.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    assert json.loads(lines[-2])["ark"]["completedQuery"]["status"]["response"]["content"]


async def test_another_tenants_query_name_is_never_streamed(running) -> None:
    query_id, name = await _finished(running, "team a's secret")
    events, _ = await running.sse(
        f"/stream/{name}?from-beginning=true&wait-for-query=1", tenant="team-b"
    )
    assert [json.loads(e.data) if e.data != "[DONE]" else e.data for e in events] == [
        TIMEOUT_EVENT,
        "[DONE]",
    ]
    for ref in (name, query_id):
        status, body = await _error(running, f"/stream/{ref}?from-beginning=true", tenant="team-b")
        assert status == 404, body

    status, page = await running.get(f"/events/{query_id}", tenant="team-b")
    assert status == 200
    assert page == {"items": [], "total": 0, "hasMore": False}


async def test_stream_parameters_are_checked(running) -> None:
    _, name = await _finished(running, "params")
    for query, field in (
        ("from-beginning=yes", "from-beginning"),
        ("wait-for-query=soon", "wait-for-query"),
        ("max-chunk-size=0", "max-chunk-size"),
    ):
        status, body = await _error(running, f"/stream/{name}?{query}")
        assert status == 400, body
        assert body["error"]["code"] == "VALIDATION_ERROR"
        assert body["error"]["field"] == field


# --------------------------------------------------------------------------- GET /events


async def test_events_page_through_with_cursor_and_limit(running) -> None:
    first, _ = await _finished(running, "first query", sessionId="s-pages")
    second, _ = await _finished(running, "second query")
    await _finished(running, "other tenant's query", tenant="team-b")

    status, everything = await running.get("/events?limit=1000")
    assert status == 200
    assert everything["hasMore"] is False
    assert "nextCursor" not in everything
    assert everything["total"] == len(everything["items"])
    owners = {item["data"]["queryId"] for item in everything["items"]}
    assert owners == {first, second}  # only the caller's tenant
    for item in everything["items"]:
        assert set(item) == {"timestamp", "eventType", "reason", "message", "data"}
        assert item["data"]["queryNamespace"] == "team-a"

    pages: list[dict[str, Any]] = []
    path = "/events?limit=2"
    while True:
        status, body = await running.get(path)
        assert status == 200, body
        assert body["total"] == everything["total"]
        assert len(body["items"]) <= 2
        pages += body["items"]
        if not body["hasMore"]:
            assert "nextCursor" not in body
            break
        path = f"/events?limit=2&cursor={body['nextCursor']}"
    assert pages == everything["items"]

    status, one = await running.get(f"/events/{first}")
    assert status == 200
    assert one["items"] == [i for i in everything["items"] if i["data"]["queryId"] == first]
    _, listed = await running.get(f"/v1/queries/{first}/events")
    assert one["items"] == [item["data"] for item in listed["items"]]
    reasons = [item["reason"] for item in one["items"]]
    assert "QueryExecutionStart" in reasons

    status, session = await running.get("/events?session_id=s-pages&limit=1")
    assert status == 200
    assert session["total"] == len(one["items"])
    assert session["hasMore"] is (len(one["items"]) > 1)
    assert session["items"] == one["items"][:1]

    status, proxied = await running.get("/v1/broker/events?limit=1000&memory=default")
    assert status == 200
    assert proxied == everything
    status, proxied_one = await running.get(f"/v1/broker/events/{first}")
    assert proxied_one == one


async def test_event_page_parameters_are_checked(running) -> None:
    for query, field in (
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=-1", "cursor"),
        ("cursor=99999999999999999999", "cursor"),
    ):
        for path in ("/events", "/events/some-id", "/v1/broker/events"):
            status, body = await _error(running, f"{path}?{query}")
            assert status == 400, (path, query, body)
            assert body["error"]["code"] == "PAGINATION_ERROR"
            assert body["error"]["field"] == field
    for bad in ("a.b", "a*", "a%3Eb", "a%20b"):
        for path in (f"/events/{bad}", f"/stream/{bad}"):
            status, body = await _error(running, path)
            assert status == 404, (path, body)
            assert body["error"]["code"] == "NOT_FOUND"
    status, body = await _error(running, "/events?watch=maybe")
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["field"] == "watch"


async def _watch_until(
    world: Any, path: str, reason: str, *submit: tuple[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Open ``path``, accept queries (text, extra fields) once it is connected, and read
    events until one with ``reason`` comes (the caller's timeout bounds the wait)."""
    seen: list[dict[str, Any]] = []
    async with world.http.get(f"{world.url}{path}", headers=world.auth()) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert await response.content.readline() == b": connected\n"
        for text, extra in submit:
            await _submit(world, text, **extra)
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if seen[-1]["reason"] == reason:
                    return seen
    raise AssertionError(f"the watch ended before a {reason} event: {seen}")


async def test_events_watch_sends_new_events(running) -> None:
    old, _ = await _finished(running, "before the watch")
    seen = await _watch_until(running, "/events?watch=true", "QueryExecutionStart", ("watched", {}))
    assert all(item["data"]["queryId"] != old for item in seen)
    assert seen[-1]["data"]["queryNamespace"] == "team-a"

    # from-beginning replays what was stored first.
    seen = await _watch_until(
        running, "/events?watch=true&from-beginning=true", "QueryExecutionStart", ("again", {})
    )
    assert seen[0]["data"]["queryId"] == old

    # session_id keeps that session's events only.
    seen = await _watch_until(
        running,
        "/events?watch=true&session_id=s-watched",
        "QueryExecutionStart",
        ("no session", {}),
        ("in the session", {"sessionId": "s-watched"}),
    )
    assert {item["data"]["sessionId"] for item in seen} == {"s-watched"}


async def test_query_events_watch_is_sse_with_sequence_ids(running) -> None:
    query_id, _ = await _finished(running, "watch my events")
    _, listed = await running.get(f"/v1/queries/{query_id}/events")
    count = len(listed["items"])
    events, _ = await running.sse(f"/v1/queries/{query_id}/events?watch=true", stop_after=count)
    assert [json.loads(e.data) for e in events] == listed["items"]
    assert [e.id for e in events] == [item["sequenceNumber"] for item in listed["items"]]

    rest, _ = await running.sse(
        f"/v1/queries/{query_id}/events?watch=true",
        last_event_id=events[0].id,
        stop_after=count - 1,
    )
    assert [e.id for e in rest] == [e.id for e in events[1:]]

    ark, _ = await running.sse(
        f"/events/{query_id}?watch=true&from-beginning=true", stop_after=count
    )
    assert [json.loads(e.data) for e in ark] == [item["data"] for item in listed["items"]]
    assert all(e.id is None for e in ark)


# --------------------------------------------------------------------------- /v1/broker/chunks


async def test_ark_api_chunks_proxy_streams_one_query(running) -> None:
    _, name = await _finished(running, "proxied chunks")
    direct, _ = await running.sse(f"/stream/{name}?from-beginning=true")
    proxied, _ = await running.sse(f"/v1/broker/chunks?watch=true&query-id={name}&memory=default")
    assert [e.data for e in proxied] == [e.data for e in direct]


async def test_chunks_page_through_every_query_of_the_tenant(running) -> None:
    first, first_name = await _finished(running, "chunks of one")
    second, second_name = await _finished(running, "chunks of two")
    await _finished(running, "not yours", tenant="team-b")
    stored = {}
    for query_id, name in ((first, first_name), (second, second_name)):
        events, _ = await running.sse(f"/stream/{name}?from-beginning=true")
        stored[query_id] = [json.loads(e.data) for e in events[:-1]]

    status, everything = await running.get("/stream?limit=1000")
    assert status == 200
    assert everything["hasMore"] is False
    assert everything["total"] == len(everything["items"]) == sum(map(len, stored.values()))
    for query_id, chunks in stored.items():
        mine = [i for i in everything["items"] if i["data"]["queryId"] == query_id]
        assert [item["data"]["chunk"] for item in mine] == chunks
    numbers = [item["sequenceNumber"] for item in everything["items"]]
    assert numbers == sorted(numbers)

    pages: list[dict[str, Any]] = []
    path = "/stream?limit=3"
    while True:
        status, body = await running.get(path)
        assert status == 200, body
        pages += body["items"]
        if not body["hasMore"]:
            break
        assert body["nextCursor"] == body["items"][-1]["sequenceNumber"]
        path = f"/stream?limit=3&cursor={body['nextCursor']}"
    assert pages == everything["items"]

    status, proxied = await running.get("/v1/broker/chunks?limit=1000&memory=default")
    assert status == 200
    assert proxied == everything


# --------------------------------------------------------------------------- direct mode


@pytest.fixture
async def direct(world: Any, kube_emulator: Any) -> Any:
    """A broker with Kubernetes (the emulator): direct queries are Query resources."""
    for namespace in ("team-a", "team-b"):
        kube_emulator.ensure_namespace(namespace)
    await world.start_reconciler()
    await world.start_broker(
        world.broker_config(
            kubernetes=KubernetesConfig(kubeconfig=str(kube_emulator.kubeconfig_path))
        )
    )
    return world


async def test_a_query_resource_is_streamed_and_its_events_read_by_its_uid(direct: Any) -> None:
    """A Query resource's chunks and events are keyed by its uid (what a standalone
    reconciler publishes); the name finds them. No controller runs here, so this test writes
    them as one would, on the real bus."""
    status, created, _ = await direct.post(
        {"name": "direct-1", "input": "hi", "target": TARGET, "reconciliation": "direct"}
    )
    assert status == 200, created
    uid = created["id"]
    publisher = direct.brokers[0].app[BROKER].publisher
    now = int(time.time())
    token = Chunk(
        id="chatcmpl-1",
        created=now,
        model="fake-model",
        choices=[ChunkChoice(delta=ChunkDelta(content="hello"))],
        ark=ArkChunkMetadata(query=uid),
        seq=1,
    )
    failure = Chunk(
        id="chatcmpl-error",
        created=now,
        model="fake-model",
        error=ChunkError(message="gone", code="model_error"),
        ark=ArkChunkMetadata(query=uid),
        seq=2,
    )
    started = QueryEvent(
        timestamp="2026-01-01T00:00:00Z",
        reason="QueryExecutionStart",
        message="Executing query direct-1",
        data={"queryId": uid, "queryName": "direct-1", "queryNamespace": "team-a"},
    )
    for message in (token, failure):
        await publisher.publish(subjects.query_chunk("team-a", uid), message)
    await publisher.publish(subjects.query_event("team-a", uid), started)

    events, _ = await direct.sse("/stream/direct-1?from-beginning=true")
    assert [json.loads(e.data)["id"] for e in events[:-1]] == ["chatcmpl-1", "chatcmpl-error"]
    assert json.loads(events[0].data)["choices"][0]["delta"]["content"] == "hello"
    assert events[-1].data == "[DONE]"

    for ref in ("direct-1", uid):
        status, page = await direct.get(f"/events/{ref}")
        assert status == 200
        assert [item["reason"] for item in page["items"]] == ["QueryExecutionStart"]
        assert page["items"][0]["eventType"] == "Normal"

    status, body = await _error(direct, "/stream/direct-1", tenant="team-b")
    assert status == 404, body
    status, page = await direct.get(f"/events/{uid}", tenant="team-b")
    assert page["total"] == 0
