"""Cancel, transient failures and dead letters: every query still ends with one terminal status
and one final chunk, and nothing follows the final chunk."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from ark_mesh.bus import CancelChannel, StreamReader
from ark_mesh.contracts import DeadLetter, StatusUpdate, decoder_for, subjects
from ark_mesh.query_reconciler.config import ChunkStreamConfig

SLOW_WORDS = " ".join(f"w{i}" for i in range(60))


def completed(update: StatusUpdate) -> tuple[str, str]:
    condition = next(c for c in update.status.conditions or [] if c.type == "Completed")
    return condition.reason, condition.message


async def dead_letters(mesh: Any) -> list[DeadLetter]:
    reader = StreamReader(mesh.bus, subjects.ARK_DLQ)
    return [
        entry.message
        async for entry in reader.read(
            subjects.dlq(mesh.tenant, "query"),
            decoder=decoder_for(DeadLetter),
            caught_up=True,
            idle_timeout=10.0,
        )
    ]


async def test_cancel_request_stops_the_live_model_stream(mesh: Any) -> None:
    mesh.fake.add_rule(
        {"match": {"user": "slow"}, "reply": {"content": SLOW_WORDS, "chunk_delay": 0.1}}
    )
    # A service configured to stream model calls by default (nothing in the namespace says).
    await mesh.start(mesh.config(streaming=ChunkStreamConfig(stream_model_calls=True)))
    request = mesh.request(input="slow story")
    await mesh.submit(request)
    async with asyncio.timeout(60):
        await mesh.wait_chunks(request, 2)

    await CancelChannel(mesh.bus).request(request.tenant, request.query_id, reason="user")
    outcome = await mesh.outcome(request)

    assert [update.phase for update in outcome.statuses] == ["running", "canceled"]
    assert completed(outcome.statuses[-1])[0] == "QueryCanceled"
    assert outcome.chunks[-1].is_final
    assert len(outcome.finals) == 1
    assert 0 < len(outcome.content.split()) < 60
    assert "QueryExecutionCanceled" in outcome.reasons()
    async with asyncio.timeout(30):
        await mesh.fake.wait_until(lambda requests: requests[-1].outcome != "pending")
    assert mesh.fake.requests_to("chat")[-1].outcome == "client_disconnected"


async def test_a_cancel_flag_raised_before_the_work_started_ends_it_canceled(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request()
    await CancelChannel(mesh.bus).request(request.tenant, request.query_id)
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert [update.phase for update in outcome.statuses] == ["canceled"]
    assert [chunk.is_final for chunk in outcome.chunks] == [True]
    assert outcome.reasons() == ["QueryExecutionCanceled"]
    assert mesh.fake.requests_to("chat") == []


async def test_a_transient_model_failure_is_retried_with_a_new_attempt(mesh: Any) -> None:
    mesh.fake.add_rule(
        {
            "match": {"user": "busy"},
            "replies": [
                {"error": {"status": 429, "message": "slow down", "retry_after": 0.05}},
                {"content": "made it"},
            ],
        }
    )
    service = await mesh.start()
    request = mesh.request(input="busy day")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert [(u.phase, u.attempt) for u in outcome.statuses] == [
        ("running", 1),
        ("running", 2),
        ("done", 2),
    ]
    assert outcome.content == "made it"
    assert len(mesh.fake.requests_to("chat")) == 2
    assert service.worker.stats.retried == 1
    transient = [e for e in outcome.events if e.data.get("transient") == "true"]
    assert len(transient) == 1
    assert "429" in transient[0].data["error"]


async def test_work_dead_lettered_after_max_deliver_still_ends_the_query(mesh: Any) -> None:
    mesh.fake.add_rule(
        {"match": {"user": "broken"}, "reply": {"error": {"status": 500, "message": "kaput"}}}
    )
    await mesh.start()
    request = mesh.request(input="broken model")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert [(u.phase, u.attempt) for u in outcome.statuses] == [
        ("running", 1),
        ("running", 2),
        ("running", 3),
        ("error", 4),
    ]
    reason, message = completed(outcome.statuses[-1])
    assert reason == "QueryErrored"
    assert "gave up after 3 deliveries" in message
    assert "kaput" in message
    assert outcome.statuses[-1].status.response is not None
    assert outcome.statuses[-1].status.response.content == message
    assert len(outcome.finals) == 1
    assert outcome.chunks[-1].is_final
    assert len(mesh.fake.requests_to("chat")) == 3
    (letter,) = await dead_letters(mesh)
    assert letter.subject == subjects.work_query(mesh.tenant)
    assert letter.deliveries == 3


async def test_an_undecodable_work_message_still_ends_its_query(mesh: Any) -> None:
    await mesh.start()
    query_id = str(uuid.uuid4())
    # Valid JSON naming the query, but no spec and no submittedAt: not a QueryRequest.
    body = msgspec.json.encode(
        {
            "schema": "ark.query-request.v1",
            "queryId": query_id,
            "name": "mangled",
            "namespace": "team-a",
            "tenant": "team-a",
            "generation": 1,
        }
    )
    await mesh.publisher.publish(
        subjects.work_query(mesh.tenant),
        body,
        schema="ark.query-request.v1",
        msg_id=f"{query_id}:1",
    )
    request = msgspec.structs.replace(mesh.request("mangled"), query_id=query_id)

    outcome = await mesh.outcome(request)

    (update,) = outcome.statuses
    assert (update.phase, update.name, update.namespace) == ("error", "mangled", "team-a")
    assert "undecodable" in completed(update)[1]
    assert len(outcome.finals) == 1
    (letter,) = await dead_letters(mesh)
    assert letter.data == body


async def test_work_naming_another_tenant_is_refused_without_reporting_anything(
    mesh: Any,
) -> None:
    service = await mesh.start()
    request = msgspec.structs.replace(mesh.request(), tenant="other-tenant")
    await mesh.publisher.publish(subjects.work_query(mesh.tenant), request, msg_id=request.msg_id)
    await mesh.eventually(
        lambda: service.worker.stats.dead_lettered == 1, what="the work to be dead-lettered"
    )
    await mesh.settled()

    (letter,) = await dead_letters(mesh)
    assert "another tenant" in letter.reason
    for tenant in (mesh.tenant, "other-tenant"):
        recorded = await mesh.recorded(msgspec.structs.replace(request, tenant=tenant))
        assert (recorded.statuses, recorded.chunks, recorded.events) == ([], [], [])
    assert mesh.fake.requests_to("chat") == []
