"""A QueryRequest on ``ark.<t>.work.query`` ends with chunks, events and one terminal status on
the query's subjects; a finished query is never run again, and replicas that race store one
terminal status and one final chunk."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ark_mesh.contracts import MSG_ID_HEADER, QueryRequest, QueryStatus, StatusUpdate, subjects
from ark_mesh.contracts.endings import Ending, RunFacts, terminal_status
from ark_mesh.query_reconciler import (
    ChunkStreamConfig,
    JetStreamSink,
    final_chunk_msg_id,
    terminal_msg_id,
)
from ark_mesh.resolver import RunReporter, SystemClock, running_status


def dead_status(request: QueryRequest, ending: Ending) -> QueryStatus:
    """The terminal status a replica reports for ``ending``, from the shared endings."""
    facts = RunFacts.before_start(request.spec)
    return terminal_status(ending, facts, now=datetime.now(UTC), generation=request.generation)


def completed_reason(update: StatusUpdate) -> str:
    conditions = update.status.conditions or []
    return next(c.reason for c in conditions if c.type == "Completed")


async def test_query_ends_with_chunks_events_and_done(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request("greeting", input="Hello there")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert [update.phase for update in outcome.statuses] == ["running", "done"]
    done = outcome.statuses[-1]
    assert done.status.response is not None
    assert done.status.response.content == "Echo: Hello there"
    assert done.status.token_usage is not None
    usage = done.status.token_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (50, 100, 150)
    assert completed_reason(done) == "QuerySucceeded"
    assert (done.attempt, done.reconciler) == (1, "test-replica")
    assert outcome.content == "Echo: Hello there"
    seqs = [chunk.seq for chunk in outcome.chunks]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(outcome.finals) == 1
    final = outcome.chunks[-1]
    assert final.is_final
    assert final.id == "chatcmpl-final"
    assert final.ark.completed_query is not None
    assert final.ark.completed_query.status is not None
    assert final.ark.completed_query.status.phase == "done"
    assert final.ark.target == "agent/helper"
    assert all(chunk.ark.query == request.query_id for chunk in outcome.chunks)
    reasons = outcome.reasons()
    assert reasons[0] == "QueryExecutionStart"
    assert reasons[-1] == "QueryExecutionComplete"
    assert "LLMCallComplete" in reasons
    assert outcome.status_ids[-1] == terminal_msg_id(request.query_id, 1)
    assert outcome.chunk_ids[-1] == final_chunk_msg_id(request.query_id, 1)


async def test_headers_of_the_published_messages(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request()
    await mesh.submit(request)
    await mesh.outcome(request)

    raw = await mesh.bus.jsm.get_last_msg(
        subjects.ARK_STATUS, subjects.query_status(request.tenant, request.query_id)
    )
    assert raw.headers is not None
    assert raw.headers["Ark-Schema"] == "ark.status.v1"
    assert raw.headers[MSG_ID_HEADER] == terminal_msg_id(request.query_id, 1)


async def test_coalesced_chunks_keep_the_text_and_increasing_seq(mesh: Any) -> None:
    words = " ".join(["word"] * 40)
    mesh.fake.add_rule({"match": {"user": "long"}, "reply": {"content": words}})
    await mesh.start(mesh.config(streaming=ChunkStreamConfig(coalesce=True, coalesce_delay=0.05)))
    request = mesh.request(input="a long answer please")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert outcome.content == words
    seqs = [chunk.seq for chunk in outcome.chunks]
    assert seqs == sorted(set(seqs))
    assert outcome.chunks[-1].is_final
    assert len(outcome.finals) == 1


async def test_a_finished_query_delivered_again_is_not_run_again(mesh: Any) -> None:
    service = await mesh.start()
    request = mesh.request()
    await mesh.submit(request)
    await mesh.outcome(request)

    # The same work again under another message id (past JetStream's duplicate window), as
    # when a replica finished the query but died before its ack.
    await mesh.submit(request, msg_id=f"{request.msg_id}:again")
    await mesh.wait_acked(service, 2)
    outcome = await mesh.recorded(request)

    assert len(mesh.fake.requests_to("chat")) == 1
    assert len(outcome.terminal) == 1
    assert len(outcome.finals) == 1
    assert [update.phase for update in outcome.statuses] == ["running", "done"]


async def test_a_missing_final_chunk_is_published_from_the_terminal_status(mesh: Any) -> None:
    service = await mesh.start()
    request = mesh.request()
    # What a replica that died between the terminal status and the final chunk left behind.
    dead = JetStreamSink(mesh.publisher, request, attempt=1)
    report = RunReporter(request, dead, SystemClock(), reconciler="dead")
    await report.status("running", running_status(datetime.now(UTC), 1))
    await dead.chunk(mesh.text_chunk(request, "Par", 1))
    await dead.chunk(mesh.text_chunk(request, "tial", 2))
    terminal = dead_status(request, Ending.error("model exploded"))
    await report.status("error", terminal)
    await mesh.publisher.flush()

    await mesh.submit(request)
    await mesh.wait_acked(service, 1)
    outcome = await mesh.recorded(request)

    assert mesh.fake.requests_to("chat") == []
    assert len(outcome.terminal) == 1
    assert [chunk.seq for chunk in outcome.chunks] == [1, 2, 3]
    final = outcome.chunks[-1]
    assert final.is_final
    assert final.ark.completed_query is not None
    assert final.ark.completed_query.status == terminal

    await mesh.submit(request, msg_id=f"{request.msg_id}:again")
    await mesh.wait_acked(service, 2)
    assert len((await mesh.recorded(request)).finals) == 1


async def test_racing_replicas_store_one_terminal_status_and_one_final_chunk(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request()
    for replica in ("a", "b"):
        sink = JetStreamSink(mesh.publisher, request, attempt=1)
        report = RunReporter(request, sink, SystemClock(), reconciler=replica)
        status = dead_status(request, Ending.error(f"ended by {replica}"))
        await report.status("error", status)
        await report.final_chunk(status)
    outcome = await mesh.recorded(request)

    assert [update.reconciler for update in outcome.terminal] == ["a"]
    assert len(outcome.finals) == 1


async def test_a_past_deadline_ends_the_query_timed_out_in_queue(mesh: Any) -> None:
    await mesh.start()
    request = mesh.request(deadline="2020-01-01T00:00:00Z")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert [update.phase for update in outcome.statuses] == ["error"]
    assert completed_reason(outcome.statuses[0]) == "TimedOutInQueue"
    assert [chunk.is_final for chunk in outcome.chunks] == [True]
    assert mesh.fake.requests_to("chat") == []
