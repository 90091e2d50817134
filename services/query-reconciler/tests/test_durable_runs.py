"""Durable runs on the bus (issue 15): a paused query holds no worker, a resume continues it
from its step log in ``ark-runs``, stale and duplicate deliveries are acked untouched, and a
log that cannot be used ends the query instead of running it from the start.

The service runs in this process against a real nats-server, the fake model over HTTP and the
counting HTTP tool server of the conftest (a real side effect per call).
"""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ark_mesh.bus import (
    Bus,
    EncryptionKeySettings,
    EncryptionSettings,
    Publisher,
    RunLogStore,
    RunLogUnreadableError,
    TenantEncryptionSettings,
    run_key,
)
from ark_mesh.bus.encryption import sealed_key_id
from ark_mesh.contracts import (
    QueryRequest,
    QueryStatus,
    QueryTarget,
    StatusUpdate,
    subjects,
)
from ark_mesh.contracts.approvals import (
    REJECTED_BY_USER_RESULT,
    ApprovalDecision,
    ApprovalRequest,
    Decision,
    ModelStep,
    RunLog,
)

NOW = "2026-01-01T00:00:00Z"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _approval(request: QueryRequest, task_id: str) -> ApprovalRequest:
    return ApprovalRequest(
        task_id=task_id,
        agent="gatekeeper",
        agent_namespace=request.namespace,
        tool_calls=[
            {
                "id": "call-1",
                "type": "function",
                "function": {"name": "counter", "arguments": '{"job":"j","step":"1"}'},
            }
        ],
        requested_at=NOW,
    )


async def _pause(mesh: Any, request: QueryRequest, task_id: str, *, log: bool = True) -> None:
    """What a run that paused left behind: its ``input-required`` update and (unless ``log`` is
    false) its step log with the pending approval."""
    approval = _approval(request, task_id)
    update = StatusUpdate(
        query_id=request.query_id,
        name=request.name,
        namespace=request.namespace,
        tenant=request.tenant,
        generation=request.generation,
        attempt=1,
        seq=2,
        phase="input-required",
        status=QueryStatus(phase="input-required"),
        timestamp=NOW,
        approval=approval,
    )
    await mesh.publisher.publish(
        subjects.query_status(request.tenant, request.query_id), update, msg_id=f"pause-{task_id}"
    )
    if log:
        turn = ModelStep(
            speaker="gatekeeper",
            message={"role": "assistant", "tool_calls": approval.tool_calls},
        )
        paused = RunLog(query_id=request.query_id, steps=[turn], pending=approval, chunk_seq=1)
        await RunLogStore(mesh.bus).save(request.tenant, paused, revision=0)


def _resume(request: QueryRequest, task_id: str, decision: Decision = "approved") -> QueryRequest:
    return msgspec.structs.replace(
        request,
        resume=ApprovalDecision(task_id=task_id, decision=decision, decided_at=_now()),
    )


def _gated(mesh: Any, name: str) -> QueryRequest:
    return mesh.request(name, input=name, target=QueryTarget(type="agent", name="gatekeeper"))


def _completed(update: StatusUpdate) -> str:
    """The message of the ``Completed`` condition (where an ending's reason is written)."""
    conditions = update.status.conditions or []
    return next(c.message or "" for c in conditions if c.type == "Completed")


async def _stored_log(mesh: Any, request: QueryRequest) -> RunLog | None:
    return (await RunLogStore(mesh.bus).load(request.tenant, request.query_id, 1)).log


# -- deliveries that must not run -------------------------------------------------------------


async def test_the_original_work_of_a_paused_query_is_acked_without_running(mesh: Any) -> None:
    service = await mesh.start(mesh.tool_config())
    request = _gated(mesh, "paused")
    await _pause(mesh, request, "t1")
    before = await _stored_log(mesh, request)

    await mesh.submit(request)  # a redelivery, or the controller submitting it again
    await mesh.wait_acked(service, 1)
    await mesh.settled()

    recorded = await mesh.recorded(request)
    assert [update.phase for update in recorded.statuses] == ["input-required"]
    assert recorded.chunks == []
    assert mesh.fake.requests_to("chat") == []
    assert await _stored_log(mesh, request) == before


async def test_a_stale_or_duplicate_resume_is_acked_untouched(mesh: Any) -> None:
    service = await mesh.start(mesh.tool_config())
    request = _gated(mesh, "paused")
    await _pause(mesh, request, "t2")
    before = await _stored_log(mesh, request)
    never_paused = _gated(mesh, "never-paused")

    await mesh.submit(_resume(request, "t1"))  # answers an approval the run no longer waits for
    await mesh.submit(_resume(never_paused, "t9"))  # a query that has no log at all
    await mesh.wait_acked(service, 2)
    await mesh.settled()

    assert [u.phase for u in (await mesh.recorded(request)).statuses] == ["input-required"]
    assert (await mesh.recorded(never_paused)).statuses == []
    assert mesh.fake.requests_to("chat") == []
    assert mesh.tools.arrivals == []
    assert await _stored_log(mesh, request) == before


async def test_a_resume_whose_log_expired_ends_the_query_in_error(mesh: Any) -> None:
    await mesh.start(mesh.tool_config())
    request = _gated(mesh, "expired")
    await _pause(mesh, request, "t1", log=False)

    await mesh.submit(_resume(request, "t1"))
    outcome = await mesh.outcome(request)

    assert [(u.phase, u.attempt) for u in outcome.statuses] == [
        ("input-required", 1),
        ("error", 2),
    ]
    assert "run log expired" in _completed(outcome.statuses[-1])
    assert len(outcome.finals) == 1
    assert mesh.fake.requests_to("chat") == []
    assert mesh.tools.arrivals == []


async def test_an_unreadable_log_ends_the_query_instead_of_starting_over(mesh: Any) -> None:
    await mesh.start(mesh.tool_config())
    request = mesh.request("garbled")
    kv = await mesh.bus.key_value(subjects.RUNS_BUCKET)
    await kv.put(run_key(request.tenant, request.query_id), b'{"steps": "not a list"}')

    await mesh.submit(request)
    outcome = await mesh.outcome(request)

    assert [u.phase for u in outcome.statuses] == ["error"]
    assert f"run log of query {request.query_id}" in _completed(outcome.statuses[-1])
    assert mesh.fake.requests_to("chat") == []
    assert await _stored_log(mesh, request) is None  # deleted with the ending


# -- the approval round trip on the bus --------------------------------------------------------


def _gate_rules(mesh: Any, name: str) -> None:
    """The model asks for the gated call, then answers with what the tool returned."""
    mesh.fake.add_rule(
        {
            "match": {"user": name, "last_role": "user"},
            "reply": {"tool_calls": [{"name": "counter", "arguments": {"job": name, "step": "1"}}]},
        }
    )
    mesh.fake.add_rule(
        {"match": {"user": name, "last_role": "tool"}, "reply": {"content": "result: {{tool}}"}}
    )


async def test_an_approved_call_runs_once_after_the_resume(mesh: Any) -> None:
    _gate_rules(mesh, "approve-me")
    request = _gated(mesh, "approve-me")
    service = await mesh.start(mesh.tool_config())

    await mesh.submit(request)
    paused = await mesh.wait_phase(request, "input-required")
    await mesh.wait_acked(service, 1)  # the pause released the work (and its slot)
    assert paused.approval is not None
    assert mesh.tools.arrivals == []  # not called before the decision
    log = await _stored_log(mesh, request)
    assert log is not None
    assert log.pending == paused.approval

    await mesh.submit(_resume(request, paused.approval.task_id))
    outcome = await mesh.outcome(request)

    assert mesh.tools.calls[("approve-me", "1")] == 1
    assert outcome.statuses[-1].phase == "done"
    final = outcome.statuses[-1]
    assert final.round == 1
    assert final.attempt > paused.attempt
    assert final.status.response is not None
    assert final.status.response.content == "result: approve-me step 1 recorded (call 1)"
    approvals = [c for c in outcome.chunks if c.ark.tool_approval is not None]
    assert [c.ark.tool_approval.type for c in approvals if c.ark.tool_approval] == [
        "tool_approval_request",
        "tool_approval_response",
    ]
    seqs = [chunk.seq for chunk in outcome.chunks]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(outcome.finals) == 1
    assert await _stored_log(mesh, request) is None  # deleted once the query ended

    # The resume again (a duplicate): the query has ended, nothing runs.
    await mesh.submit(_resume(request, paused.approval.task_id), msg_id="resume-again")
    await mesh.wait_acked(service, 3)
    assert mesh.tools.calls[("approve-me", "1")] == 1


async def test_a_rejected_call_is_answered_and_the_query_goes_on(mesh: Any) -> None:
    _gate_rules(mesh, "reject-me")
    request = _gated(mesh, "reject-me")
    await mesh.start(mesh.tool_config())
    await mesh.submit(request)
    paused = await mesh.wait_phase(request, "input-required")
    assert paused.approval is not None

    await mesh.submit(_resume(request, paused.approval.task_id, "rejected"))
    outcome = await mesh.outcome(request)

    assert mesh.tools.arrivals == []
    last_turn = mesh.fake.requests_to("chat")[-1].body["messages"][-1]
    assert last_turn["role"] == "tool"
    assert last_turn["content"] == REJECTED_BY_USER_RESULT
    assert outcome.statuses[-1].phase == "done"
    assert outcome.statuses[-1].status.response is not None
    assert outcome.statuses[-1].status.response.content == f"result: {REJECTED_BY_USER_RESULT}"


PAUSED = 200
SLOTS = 2
FLOWING = 10


async def test_paused_queries_hold_no_reconciler_slots(mesh: Any) -> None:
    mesh.fake.add_rule(
        {
            "match": {"user": "pause", "last_role": "user"},
            "reply": {"tool_calls": [{"name": "counter", "arguments": {"job": "p", "step": "1"}}]},
        }
    )
    mesh.fake.add_rule({"match": {"user": "flow"}, "reply": {"content": "flowing"}})
    service = await mesh.start(mesh.tool_config(slots=SLOTS))
    paused = [_gated(mesh, f"pause-{i}") for i in range(PAUSED)]
    for request in paused:
        await mesh.submit(request)
    await mesh.wait_acked(service, PAUSED)

    # Every paused query was acked; with SLOTS workers, more queries still run to the end.
    flowing = [mesh.request(f"flow-{i}", input=f"flow {i}") for i in range(FLOWING)]
    for request in flowing:
        await mesh.submit(request)
    outcomes = [await mesh.outcome(request) for request in flowing]

    assert [o.statuses[-1].phase for o in outcomes] == ["done"] * FLOWING
    for request in paused:
        statuses = (await mesh.recorded(request)).statuses
        assert statuses[-1].phase == "input-required"
    assert mesh.tools.arrivals == []
    binding = service.config.bus.topology.work_consumers[0]
    consumer = await mesh.bus.jsm.consumer_info(subjects.ARK_WORK, binding.durable)
    assert consumer.num_ack_pending == 0
    # The paused runs' logs are kept; the finished ones' are deleted.
    kv = await mesh.bus.key_value(subjects.RUNS_BUCKET)
    keys = set(await kv.keys())
    assert keys == {run_key(r.tenant, r.query_id) for r in paused}


async def test_a_run_that_loses_its_log_to_another_writer_is_retried_not_ended(mesh: Any) -> None:
    """Another process saves the log while this run is inside a tool call (what a replica
    that lost its delivery would meet): this run must not end the query; it stops, and the
    redelivery replays what the log holds and finishes."""
    mesh.fake.add_rule(
        {
            "match": {"user": "contested", "last_role": "user"},
            "reply": {
                "tool_calls": [{"name": "counter-idem", "arguments": {"job": "c", "step": "1"}}]
            },
        }
    )
    mesh.fake.add_rule(
        {"match": {"user": "contested", "last_role": "tool"}, "reply": {"content": "{{tool}}"}}
    )
    request = mesh.request(
        "contested", input="contested", target=QueryTarget(type="agent", name="careful")
    )
    store = RunLogStore(mesh.bus)

    async def other_writer(key: tuple[str, str]) -> None:
        if mesh.tools.calls[key] == 1:
            stored = await store.load(request.tenant, request.query_id, request.generation)
            assert stored.log is not None
            await store.save(request.tenant, stored.log, revision=stored.revision)

    mesh.tools.on_call = other_writer
    await mesh.start(mesh.tool_config())

    await mesh.submit(request)
    outcome = await mesh.outcome(request)

    assert [(u.phase, u.attempt) for u in outcome.statuses] == [
        ("running", 1),
        ("running", 2),
        ("done", 2),
    ]
    assert any(e.data.get("transient") == "true" for e in outcome.events)
    assert mesh.tools.calls[("c", "1")] == 2  # idempotent: called again after the replay
    assert len(_turns_of(mesh, "contested")) == 2  # turn 1 replayed, not asked again
    assert outcome.statuses[-1].status.response is not None
    assert outcome.statuses[-1].status.response.content == "c step 1 recorded (call 2)"


def _turns_of(mesh: Any, user: str) -> list[Any]:
    return [
        r
        for r in mesh.fake.requests_to("chat")
        if any(m.get("content") == user for m in r.body["messages"] if m.get("role") == "user")
    ]


async def test_a_paused_runs_log_is_sealed_with_the_tenants_key(
    mesh: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARK_TEST_TENANT_KEY", base64.b64encode(os.urandom(32)).decode())
    keys = EncryptionSettings(
        tenants={
            mesh.tenant: TenantEncryptionSettings(
                keys=(EncryptionKeySettings(id="tenant-1", env="ARK_TEST_TENANT_KEY"),)
            )
        }
    )
    config = mesh.tool_config()
    config = msgspec.structs.replace(
        config, bus=msgspec.structs.replace(config.bus, encryption=keys)
    )
    await mesh.start(config)
    # Everything of the tenant is sealed now: read and write it through a bus with the key.
    bus = await Bus.connect(servers=(mesh.nats.url,), name="sealed-test", encryption=keys)
    publisher = await Publisher.create(bus)
    sealed = dataclasses.replace(mesh, bus=bus, publisher=publisher)
    try:
        secret = "sealed-job-7f3a"
        _gate_rules(mesh, secret)
        request = _gated(mesh, secret)
        await sealed.submit(request)
        paused = await sealed.wait_phase(request, "input-required")  # after the pause is stored

        kv = await mesh.bus.key_value(subjects.RUNS_BUCKET)
        stored = (await kv.get(run_key(request.tenant, request.query_id))).value or b""
        assert secret.encode() not in stored
        assert sealed_key_id(stored) == "tenant-1"
        with pytest.raises(RunLogUnreadableError):  # a bus without the key cannot replay it
            await RunLogStore(mesh.bus).load(request.tenant, request.query_id, 1)

        assert paused.approval is not None
        await sealed.submit(_resume(request, paused.approval.task_id))
        outcome = await sealed.outcome(request)
        assert outcome.statuses[-1].phase == "done"
        assert mesh.tools.calls[(secret, "1")] == 1
    finally:
        await publisher.close()
        await bus.close()
