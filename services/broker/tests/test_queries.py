"""POST /v1/queries → 202 → the read model reaches ``done``; SSE streams with exact resume."""

from __future__ import annotations

import json
import time


async def test_post_is_accepted_and_reaches_done_with_content_and_token_usage(running) -> None:
    status, body, headers = await running.post(
        {
            "input": "What is the weather in Chicago?",
            "target": {"type": "agent", "name": "helper"},
            "sessionId": "s-1",
            "timeout": "2m",
        }
    )
    assert status == 202, body
    assert body["status"] == {"phase": "pending"}
    assert body["namespace"] == "team-a"
    assert headers["Location"] == f"/v1/queries/{body['id']}"

    done = await running.wait_phase(body["id"])
    assert done["status"]["phase"] == "done", done
    assert "What is the weather in Chicago?" in done["status"]["response"]["content"]
    assert done["status"]["tokenUsage"]["totalTokens"] > 0
    assert done["sessionId"] == "s-1"
    assert done["input"] == "What is the weather in Chicago?"

    listed_status, listed = await running.get("/v1/queries")
    assert listed_status == 200
    assert [item["id"] for item in listed["items"]] == [body["id"]]


async def test_stream_ends_with_the_final_chunk_and_done(running) -> None:
    query_id = await running.submit("Tell me a story about streams")
    events, comments = await running.sse(f"/v1/queries/{query_id}/stream")
    assert comments[0] == "connected"
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert chunks, "no chunks before [DONE]"
    assert all(c["ark"]["query"] == query_id for c in chunks)
    assert chunks[-1]["ark"]["completedQuery"]["status"]["phase"] == "done"
    assert sum("completedQuery" in c["ark"] for c in chunks) == 1
    ids = [e.id for e in events[:-1]]
    assert all(i is not None for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    streamed = "".join(
        choice["delta"].get("content") or ""
        for c in chunks[:-1]
        if not c["ark"].get("systemMessage")
        for choice in c["choices"]
    )
    assert streamed == chunks[-1]["ark"]["completedQuery"]["status"]["response"]["content"]


async def test_resume_with_last_event_id_gives_exactly_the_rest(running) -> None:
    query_id = await running.submit("one two three four five six seven eight")
    full, _ = await running.sse(f"/v1/queries/{query_id}/stream")
    sequences = [e.id for e in full if e.id is not None]
    assert len(sequences) >= 4, full

    # A client that saw the first three events reconnects with the last id it saw.
    first, _ = await running.sse(f"/v1/queries/{query_id}/stream", stop_after=3)
    assert [e.id for e in first] == sequences[:3]
    rest, _ = await running.sse(f"/v1/queries/{query_id}/stream", last_event_id=first[-1].id)
    assert [e.id for e in rest if e.id is not None] == sequences[3:]
    assert [e.data for e in rest] == [e.data for e in full[3:]]
    assert rest[-1].data == "[DONE]"

    # Resuming before the first chunk gives everything.
    again, _ = await running.sse(f"/v1/queries/{query_id}/stream", last_event_id=0)
    assert [e.data for e in again] == [e.data for e in full]


async def test_stream_of_a_running_query_sends_heartbeats_while_waiting(running) -> None:
    from ark_mesh.testing.fake_llm import Match, Reply, Rule

    running.fake.add_rule(
        Rule(match=Match(user="slow please"), reply=Reply(content="finally here", delay=1.5))
    )
    query_id = await running.submit("slow please")
    events, comments = await running.sse(f"/v1/queries/{query_id}/stream")
    assert "heartbeat" in comments
    assert events[-1].data == "[DONE]"
    assert json.loads(events[-2].data)["ark"]["completedQuery"]["status"]["phase"] == "done"


async def test_events_lists_the_operation_events(running) -> None:
    query_id = await running.submit()
    await running.wait_phase(query_id)
    await running.sse(f"/v1/queries/{query_id}/stream")  # the final chunk follows the events
    status, body = await running.get(f"/v1/queries/{query_id}/events")
    assert status == 200
    reasons = [item["data"]["reason"] for item in body["items"]]
    assert "QueryExecutionStart" in reasons
    assert body["total"] == len(body["items"])
    assert all(item["data"]["data"].get("queryId") in (None, query_id) for item in body["items"])


async def test_readyz_reports_ready(running) -> None:
    async with running.http.get(f"{running.url}/readyz") as response:
        body = await response.json()
    assert response.status == 200, body
    assert set(body["checks"]) >= {"nats", "consumer", "read_model"}


async def test_unknown_route_answers_with_the_envelope(running) -> None:
    async with running.http.get(f"{running.url}/v2/nothing") as response:
        assert response.status == 404
        body = await response.json()
    assert body["error"]["code"] == "NOT_FOUND"


async def test_idempotency_key_returns_the_same_query(running) -> None:
    body = {"input": "only once", "target": {"type": "agent", "name": "helper"}}
    key = {"Idempotency-Key": "client-retry-1"}
    first_status, first, _ = await running.post(body, headers=key)
    second_status, second, headers = await running.post(body, headers=key)
    assert first_status == second_status == 202
    assert first["id"] == second["id"]
    assert headers.get("Idempotent-Replayed") == "true"
    other_status, other, _ = await running.post(body, headers={"Idempotency-Key": "another"})
    assert other_status == 202
    assert other["id"] != first["id"]
    await running.wait_phase(first["id"])
    _, listed = await running.get("/v1/queries")
    assert sorted(item["id"] for item in listed["items"]) == sorted([first["id"], other["id"]])


async def test_cancel_reaches_the_running_query(running) -> None:
    from ark_mesh.testing.fake_llm import Match, Reply, Rule

    running.fake.add_rule(
        Rule(
            match=Match(user="never ending"),
            reply=Reply(content=" ".join(["word"] * 400), chunk_delay=0.05),
        )
    )
    query_id = await running.submit("never ending")
    # Wait until the model is streaming, so the cancel has a live step to stop.
    await running.sse(f"/v1/queries/{query_id}/stream", stop_after=2)
    async with running.http.post(
        f"{running.url}/v1/queries/{query_id}/cancel", headers=running.auth()
    ) as response:
        assert response.status == 202
        assert (await response.json())["cancelRequested"] is True
    done = await running.wait_phase(query_id)
    assert done["status"]["phase"] == "canceled", done


async def test_a_name_left_claimed_by_a_failed_accept_is_taken_over(world) -> None:
    """A 503 whose clean-up could not reach the bucket (its leader had just died), or a claim
    stored although its answer was lost, leaves a name held for a query that has no record.
    The client's retry must not get a 409 for a query that does not exist: while the claim is
    fresh (another request may still be recording its query) it is a 503 naming ``name``, once
    it is older than the grace it is taken over."""
    from ark_mesh.broker.readmodel import NAME_CLAIM_GRACE

    broker = await world.start_broker()
    assert broker.read_model is not None
    kv = broker.read_model.kv
    key = broker.read_model._name_key("team-a", "orphaned")
    await kv.put(key, b"no-such-query@%.3f" % time.time())
    status, body, headers = await world.post(
        {"name": "orphaned", "input": "hi", "target": {"type": "agent", "name": "helper"}}
    )
    assert status == 503, body
    assert body["error"]["field"] == "name"
    assert "Retry-After" in headers

    await kv.put(key, b"no-such-query@%.3f" % (time.time() - NAME_CLAIM_GRACE - 1))
    status, body, _ = await world.post(
        {"name": "orphaned", "input": "hi", "target": {"type": "agent", "name": "helper"}}
    )
    assert status == 202, body
    status, found = await world.get("/v1/queries/orphaned")
    assert status == 200
    assert found["id"] == body["id"]

    # A name whose query exists is a 409, however old its claim.
    status, body, _ = await world.post(
        {"name": "orphaned", "input": "again", "target": {"type": "agent", "name": "helper"}}
    )
    assert status == 409
    assert body["error"]["field"] == "name"
