"""Kill tests of durable runs (issue 15, acceptance 3): a reconciler process is SIGKILLed in the
middle of its queries and another replica takes them over by replaying their step logs.

Every query's agent makes two sequential calls of an HTTP tool with a side effect (the counting
tool server of the conftest records each call). The first replica is a real subprocess; the
replica that takes over runs in this process.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec

from ark_mesh.contracts import QueryRequest, QueryTarget
from ark_mesh.contracts.approvals import ApprovalDecision

JOBS = 6


def _call(job: str, step: str, tool: str = "counter") -> dict[str, Any]:
    return {"name": tool, "arguments": {"job": job, "step": step}}


def _two_steps(mesh: Any, job: str, tool: str = "counter", *, hold_turn_two: bool) -> None:
    """The model of ``job``: call step 1; then call step 2; then answer with the last result.

    With ``hold_turn_two`` the first answer to turn 2 is held (the replica dies waiting for it),
    so the next replica asks for turn 2 again and gets the call of step 2.
    """
    mesh.fake.add_rule(
        {
            "match": {"user": job, "last_role": "user"},
            "reply": {"tool_calls": [_call(job, "1", tool)]},
        }
    )
    second = {"tool_calls": [_call(job, "2", tool)]}
    replies = [{**second, "delay": 600}, second] if hold_turn_two else [second]
    # Turn 2 and turn 3 both follow a tool result; the rule moves through its replies in order.
    mesh.fake.add_rule(
        {
            "match": {"user": job, "last_role": "tool"},
            "replies": [*replies, {"content": "finished: {{tool}}"}],
        }
    )


def _turns(mesh: Any, job: str) -> list[dict[str, Any]]:
    """The messages of each model request of ``job``, in order."""
    return [
        request.body["messages"]
        for request in mesh.fake.requests_to("chat")
        if any(
            m.get("role") == "user" and m.get("content") == job for m in request.body["messages"]
        )
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _query(mesh: Any, job: str, agent: str) -> QueryRequest:
    return mesh.request(job, input=job, target=QueryTarget(type="agent", name=agent))


async def test_a_killed_replica_is_replaced_and_no_completed_call_runs_twice(mesh: Any) -> None:
    jobs = [f"job-{i}" for i in range(JOBS)]
    for job in jobs:
        _two_steps(mesh, job, hold_turn_two=True)
    requests = [_query(mesh, job, "worker") for job in jobs]
    config = mesh.tool_config(slots=JOBS)

    async with mesh.process("doomed", config) as (process, _):
        for request in requests:
            await mesh.submit(request)
        # Turn 2 is asked for only after step 1's result is checkpointed: kill then.
        async with asyncio.timeout(120):
            await mesh.fake.wait_until(lambda _: all(len(_turns(mesh, job)) == 2 for job in jobs))
        process.kill()
        await process.wait()
    assert all(mesh.tools.calls[(job, "1")] == 1 for job in jobs)
    assert not any(mesh.tools.calls[(job, "2")] for job in jobs)

    await mesh.start(config)  # another replica; JetStream redelivers after AckWait
    outcomes = [await mesh.outcome(request, within=120) for request in requests]

    for job, outcome in zip(jobs, outcomes, strict=True):
        assert outcome.statuses[-1].phase == "done", job
        assert mesh.tools.calls[(job, "1")] == 1, job
        assert mesh.tools.calls[(job, "2")] == 1, job
        response = outcome.statuses[-1].status.response
        assert response is not None
        assert response.content == f"finished: {job} step 2 recorded (call 1)"
        turns = _turns(mesh, job)
        # Turn 1 was never asked again: the next replica's first call is turn 2 once more,
        # carrying step 1's result from the log.
        assert len(turns) == 4, job
        assert turns[2] == turns[1]
        assert turns[2][-1]["role"] == "tool"
        assert turns[2][-1]["content"] == f"{job} step 1 recorded (call 1)"
        assert [(u.phase, u.attempt) for u in outcome.statuses] == [
            ("running", 1),
            ("running", 2),
            ("done", 2),
        ]
        assert [u.reconciler for u in outcome.statuses][1:] == ["test-replica"] * 2
        seqs = [chunk.seq for chunk in outcome.chunks]
        assert seqs == list(range(1, len(seqs) + 1)), job
        assert len(outcome.finals) == 1


async def test_a_call_in_flight_at_the_kill_is_repeated_only_if_idempotent(mesh: Any) -> None:
    _two_steps(mesh, "risky", "counter", hold_turn_two=False)
    _two_steps(mesh, "safe", "counter-idem", hold_turn_two=False)
    mesh.tools.holds = {("risky", "2"), ("safe", "2")}  # arrive (the effect), never answer
    risky, safe = _query(mesh, "risky", "worker"), _query(mesh, "safe", "careful")
    config = mesh.tool_config()

    async with mesh.process("doomed", config) as (process, _):
        await mesh.submit(risky)
        await mesh.submit(safe)
        async with asyncio.timeout(120):
            await mesh.tools.wait_until(
                lambda: (
                    mesh.tools.calls[("risky", "2")] == 1 and mesh.tools.calls[("safe", "2")] == 1
                )
            )
        process.kill()
        await process.wait()

    await mesh.start(config)
    failed = await mesh.outcome(risky, within=120)
    finished = await mesh.outcome(safe, within=120)

    # Not idempotent: its effect may have happened, so it is not repeated; the query says why.
    assert failed.statuses[-1].phase == "error"
    conditions = failed.statuses[-1].status.conditions or []
    completed = next(c for c in conditions if c.type == "Completed")
    assert "counter" in (completed.message or "")
    assert mesh.tools.calls[("risky", "1")] == 1
    assert mesh.tools.calls[("risky", "2")] == 1
    # Idempotent: repeated once by the next replica, and the query ends well.
    assert finished.statuses[-1].phase == "done"
    assert mesh.tools.calls[("safe", "1")] == 1
    assert mesh.tools.calls[("safe", "2")] == 2
    response = finished.statuses[-1].status.response
    assert response is not None
    assert response.content == "finished: safe step 2 recorded (call 2)"
    for outcome in (failed, finished):
        seqs = [chunk.seq for chunk in outcome.chunks]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(outcome.finals) == 1


async def test_a_resumed_round_killed_mid_way_continues_on_another_replica(mesh: Any) -> None:
    job = "round-trip"
    mesh.fake.add_rule(
        {"match": {"user": job, "last_role": "user"}, "reply": {"tool_calls": [_call(job, "1")]}}
    )
    mesh.fake.add_rule(
        {
            "match": {"user": job, "last_role": "tool"},
            "replies": [{"content": "never seen", "delay": 600}, {"content": "finished: {{tool}}"}],
        }
    )
    request = _query(mesh, job, "gatekeeper")
    config = mesh.tool_config()

    async with mesh.process("doomed", config) as (process, _):
        await mesh.submit(request)
        paused = await mesh.wait_phase(request, "input-required")
        assert paused.approval is not None
        resume = msgspec.structs.replace(
            request,
            resume=ApprovalDecision(
                task_id=paused.approval.task_id, decision="approved", decided_at=_now()
            ),
        )
        await mesh.submit(resume)
        # The approved call ran and was checkpointed; the model's next turn is held: kill.
        async with asyncio.timeout(120):
            await mesh.fake.wait_until(lambda _: len(_turns(mesh, job)) == 2)
        process.kill()
        await process.wait()

    await mesh.start(config)  # the resume message is redelivered to this replica
    outcome = await mesh.outcome(request, within=120)

    assert mesh.tools.calls[(job, "1")] == 1
    final = outcome.statuses[-1]
    assert final.phase == "done"
    assert final.round == 1
    assert final.status.response is not None
    assert final.status.response.content == f"finished: {job} step 1 recorded (call 1)"
    assert len(_turns(mesh, job)) == 3  # turn 1 once, turn 2 held, turn 2 again
    attempts = [update.attempt for update in outcome.statuses]
    assert attempts == sorted(attempts)
    assert [u.round for u in outcome.statuses] == sorted(u.round for u in outcome.statuses)
    seqs = [chunk.seq for chunk in outcome.chunks]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(outcome.finals) == 1
