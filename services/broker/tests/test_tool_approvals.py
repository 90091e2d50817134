"""ark-api's tool approvals on the broker: ``/v1/tool-approvals`` over both kinds of query.

Real HTTP against the broker on a real nats-server. Broker mode: the pause is a real
``input-required`` StatusUpdate carrying the approval, published on the query's status subject
as a query-reconciler publishes it; a decision's resume is read back from JetStream (the work
subject). Direct mode: A2ATasks in the Kubernetes API emulator, as the controller creates them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from ark_mesh.broker import ApprovalsConfig, BrokerService
from ark_mesh.broker.readmodel import now
from ark_mesh.bus import KeyNotFoundError, StreamReader
from ark_mesh.contracts import (
    A2ATask,
    QueryRequest,
    QueryStatus,
    StatusUpdate,
    decoder_for,
    subjects,
)
from ark_mesh.contracts.approvals import (
    MAX_APPROVAL_CASCADES,
    ApprovalDecision,
    ApprovalRequest,
    approval_task_name,
    cascade_limit_message,
)
from ark_mesh.kube import ApiResource, KubeClient
from ark_mesh.service import KubernetesConfig

TENANT = "team-a"
TARGET = {"type": "agent", "name": "helper"}
CALL = {
    "id": "call-1",
    "type": "function",
    "function": {"name": "delete_file", "arguments": '{"path": "/tmp/x"}'},
}
_request = decoder_for(QueryRequest).decode


async def _call(
    world: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant: str = TENANT,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    all_headers = {**world.auth(tenant), **(headers or {})}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        all_headers["Content-Type"] = "application/json"
    async with world.http.request(
        method, f"{world.url}{path}", data=data, headers=all_headers
    ) as response:
        text = await response.text()
        return response.status, (msgspec.json.decode(text) if text else None)


async def _query(world: Any, name: str) -> str:
    """A broker-mode query (no reconciler runs: it stays where the test puts it)."""
    status, created = await _call(
        world, "POST", "/v1/queries", {"name": name, "input": "clean up", "target": TARGET}
    )
    assert status == 202, created
    return str(created["id"])


def _approval(task_id: str, **changes: Any) -> ApprovalRequest:
    base = ApprovalRequest(
        task_id=task_id,
        agent="helper",
        agent_namespace=TENANT,
        tool_calls=[CALL],
        requested_at="2026-01-01T00:00:00Z",
    )
    return msgspec.structs.replace(base, **changes) if changes else base


async def _pause(
    broker: BrokerService, query_id: str, name: str, approval: ApprovalRequest
) -> None:
    """Publish what a query-reconciler publishes when the run stops for a human."""
    assert broker.publisher is not None
    update = _paused(query_id, name, approval)
    await broker.publisher.publish(
        subjects.query_status(TENANT, query_id),
        update,
        msg_id=f"{query_id}:{approval.round}:input-required",
    )


def _paused(query_id: str, name: str, approval: ApprovalRequest) -> StatusUpdate:
    return StatusUpdate(
        query_id=query_id,
        name=name,
        namespace=TENANT,
        tenant=TENANT,
        seq=3,
        phase="input-required",
        status=QueryStatus(phase="input-required"),
        timestamp="2026-01-01T00:00:00Z",
        round=approval.round,
        approval=approval,
    )


async def _until_phase(world: Any, name: str, phase: str) -> dict[str, Any]:
    """Poll ``GET /v1/tool-approvals/{name}`` until it shows ``phase`` (a safety bound only)."""
    async with asyncio.timeout(30):
        while True:
            status, body = await _call(world, "GET", f"/v1/tool-approvals/{name}")
            if status == 200 and body["status"]["phase"] == phase:
                return dict(body)
            await asyncio.sleep(0.02)


async def _last_work(broker: BrokerService) -> QueryRequest:
    """The newest work message of the tenant, read back from JetStream."""
    assert broker.bus is not None
    entry = await StreamReader(broker.bus).last(subjects.work_query(TENANT), decoder=_request)
    assert entry is not None
    return entry.message


async def _work_messages(broker: BrokerService) -> list[QueryRequest]:
    """Every work message in JetStream, oldest first (looked up by sequence: a work-queue
    stream takes no second consumer)."""
    assert broker.bus is not None
    bus = broker.bus
    info = await bus.jsm.stream_info(subjects.ARK_WORK)
    found: list[QueryRequest] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.jsm.get_msg(subjects.ARK_WORK, seq)
        headers = {str(k): str(v) for k, v in (raw.headers or {}).items()}
        data = bus.cipher.open(raw.subject or "", raw.data or b"", headers)
        if raw.subject == subjects.work_query(TENANT):
            found.append(_request(data))
    return found


@pytest.fixture
async def broker(world: Any) -> BrokerService:
    return await world.start_broker(
        world.broker_config(approvals=ApprovalsConfig(sweep_seconds=0.05))
    )


# --------------------------------------------------------------------------- broker mode


async def test_a_broker_mode_decision_writes_running_then_publishes_the_resume(
    world: Any, broker: BrokerService
) -> None:
    query_id = await _query(world, "needs-approval")
    await _pause(broker, query_id, "needs-approval", _approval("task-1"))
    name = approval_task_name("task-1")
    detail = await _until_phase(world, name, "pending")
    assert detail["queryRef"] == {"name": "needs-approval", "namespace": TENANT}
    assert detail["toolCalls"] == [
        {
            "id": "call-1",
            "name": "delete_file",
            "type": "function",
            "arguments": '{"path": "/tmp/x"}',
            "description": None,
            "annotations": None,
            "agentReasoning": None,
        }
    ]
    assert detail["executionContext"]["agentName"] == "helper"
    assert (detail["onTimeout"], detail["timeout"], detail["reconciliation"]) == (
        "reject",
        None,
        "broker",
    )
    status, pending = await _call(world, "GET", "/v1/tool-approvals/pending")
    assert status == 200
    assert [(item["name"], item["phase"]) for item in pending["items"]] == [(name, "pending")]
    assert pending["count"] == 1

    status, answer = await _call(
        world,
        "POST",
        f"/v1/tool-approvals/{name}/decision",
        {"action": "approved", "reason": "looks fine"},
        headers={"X-Forwarded-User": "alice", "User-Agent": "ark-cli"},
    )
    assert status == 200, answer
    assert (answer["name"], answer["namespace"], answer["phase"]) == (name, TENANT, "approved")
    assert answer["decision"]["respondedBy"] == "alice"
    assert answer["decision"]["reason"] == "looks fine"
    assert answer["decision"]["clientContext"]["userAgent"] == "ark-cli"

    # The record is running (the resumed run's round-1 updates apply on top of it) …
    _, query = await _call(world, "GET", "/v1/queries/needs-approval")
    assert query["status"]["phase"] == "running"
    # … and the resume sits on the work subject: the original query with the decision.
    resume = await _last_work(broker)
    assert (resume.query_id, resume.name, resume.origin, resume.deadline) == (
        query_id,
        "needs-approval",
        "broker",
        None,
    )
    assert resume.spec.input == "clean up"
    assert resume.resume is not None
    assert (resume.resume.task_id, resume.resume.decision) == ("task-1", "approved")
    assert resume.resume.decided_by == "alice"
    assert resume.msg_id == f"{query_id}:1:task-1"

    # Decided: a second decision is a 409, the listing shows it approved.
    status, error = await _call(
        world, "POST", f"/v1/tool-approvals/{name}/decision", {"action": "rejected"}
    )
    assert (status, error["error"]["code"]) == (409, "CONFLICT"), error
    detail = await _until_phase(world, name, "approved")
    assert detail["status"]["decision"]["action"] == "approved"
    status, approved = await _call(world, "GET", "/v1/tool-approvals?phase=approved")
    assert [item["name"] for item in approved["items"]] == [name]
    status, none = await _call(world, "GET", "/v1/tool-approvals?phase=pending")
    assert none == {"items": [], "count": 0}

    # The paused update of round 0, delivered again, does not take the query back.
    assert broker.read_model is not None
    assert not await broker.read_model.apply(
        _paused(query_id, "needs-approval", _approval("task-1"))
    )
    status, pending = await _call(world, "GET", "/v1/tool-approvals/pending")
    assert pending["count"] == 0
    _, query = await _call(world, "GET", "/v1/queries/needs-approval")
    assert query["status"]["phase"] == "running"
    # An ending is final whichever round reports it.
    ended = msgspec.structs.replace(
        _paused(query_id, "needs-approval", _approval("task-1")),
        phase="canceled",
        status=QueryStatus(phase="canceled"),
        approval=None,
    )
    assert await broker.read_model.apply(ended)


async def test_denials_cascade_to_arks_limit_and_an_approval_resets_the_count(
    world: Any, broker: BrokerService
) -> None:
    query_id = await _query(world, "keeps-asking")
    told: list[tuple[str, str]] = []
    actions = ["rejected", "approved", *["rejected"] * (MAX_APPROVAL_CASCADES + 1)]
    for round_, action in enumerate(actions):
        task_id = f"task-{round_}"
        await _pause(broker, query_id, "keeps-asking", _approval(task_id, round=round_))
        name = approval_task_name(task_id)
        await _until_phase(world, name, "pending")
        status, answer = await _call(
            world, "POST", f"/v1/tool-approvals/{name}/decision", {"action": action}
        )
        assert (status, answer["phase"]) == (200, action), answer
        resume = (await _last_work(broker)).resume
        assert resume is not None
        assert resume.task_id == task_id
        told.append((resume.decision, resume.message))
    assert told == [
        ("rejected", ""),
        ("approved", ""),  # resets the count
        ("rejected", ""),
        ("rejected", ""),
        ("rejected", ""),
        ("failed", cascade_limit_message()),
    ]
    assert cascade_limit_message() == (
        "Approval cascade limit reached (3). The agent kept retrying a denied tool; aborting."
    )


async def test_the_timeout_sweep_applies_on_timeout(world: Any, broker: BrokerService) -> None:
    rejecting = await _query(world, "times-out")
    proceeding = await _query(world, "proceeds")
    waiting = await _query(world, "waits")
    await _pause(broker, rejecting, "times-out", _approval("late-1", timeout="1s"))
    await _pause(
        broker, proceeding, "proceeds", _approval("late-2", timeout="1s", on_timeout="proceed")
    )
    await _pause(broker, waiting, "waits", _approval("forever"))  # no timeout: waits for a human

    rejected = await _until_phase(world, approval_task_name("late-1"), "expired")
    assert rejected["status"]["decision"]["action"] == "rejected"
    assert rejected["status"]["decision"]["respondedBy"] == "system:approval-timeout"
    await _until_phase(world, approval_task_name("late-2"), "expired")
    resumes = {
        request.query_id: request.resume
        for request in await _work_messages(broker)
        if request.resume is not None
    }
    assert {query_id: (r.task_id, r.decision) for query_id, r in resumes.items() if r} == {
        rejecting: ("late-1", "timeout-rejected"),
        proceeding: ("late-2", "timeout-proceeded"),
    }
    for name, phase in (
        ("times-out", "running"),
        ("proceeds", "running"),
        ("waits", "input-required"),
    ):
        _, query = await _call(world, "GET", f"/v1/queries/{name}")
        assert query["status"]["phase"] == phase
    # The sweep applied what had expired; the approval without a timeout is still pending.
    assert broker.approvals is not None
    assert await broker.approvals.sweep() == 0
    _, pending = await _call(world, "GET", "/v1/tool-approvals/pending")
    assert [item["name"] for item in pending["items"]] == [approval_task_name("forever")]
    # Deleting a query forgets its approvals.
    assert (await _call(world, "DELETE", "/v1/queries/waits"))[0] == 204
    status, _ = await _call(world, "GET", f"/v1/tool-approvals/{approval_task_name('forever')}")
    assert status == 404
    assert broker.read_model is not None
    with pytest.raises(KeyNotFoundError):
        await broker.read_model.kv.get(f"{TENANT}.approvals.forever")


async def test_a_decision_a_stopped_broker_did_not_publish_is_published_by_a_sweep(
    world: Any,
) -> None:
    broker = await world.start_broker(
        world.broker_config(approvals=ApprovalsConfig(sweep_seconds=0.05, redispatch_seconds=0))
    )
    query_id = await _query(world, "interrupted")
    await _pause(broker, query_id, "interrupted", _approval("task-x"))
    await _until_phase(world, approval_task_name("task-x"), "pending")
    # A broker that stopped right after recording the decision: the record is running, the
    # resume was never published.
    assert broker.approvals is not None
    answer = ApprovalDecision(
        task_id="task-x", decision="approved", decided_by="alice", decided_at=now()
    )
    _, written, _ = await broker.approvals.record_decision(
        TENANT, query_id, "task-x", answer, "approved"
    )
    assert written.approvals is not None
    assert not written.approvals[0].dispatched
    async with asyncio.timeout(30):
        while True:
            resume = (await _last_work(broker)).resume
            if resume is not None:
                break
            await asyncio.sleep(0.02)
    assert (resume.task_id, resume.decision, resume.decided_by) == ("task-x", "approved", "alice")
    assert broker.read_model is not None
    async with asyncio.timeout(30):
        while True:
            record = await broker.read_model.get(TENANT, query_id)
            assert record is not None
            assert record.approvals is not None
            if record.approvals[0].dispatched:
                break
            await asyncio.sleep(0.02)
    assert record.status.phase == "running"


async def test_bad_decisions_name_the_field_and_approvals_are_tenant_scoped(
    world: Any, broker: BrokerService
) -> None:
    query_id = await _query(world, "scoped")
    await _pause(broker, query_id, "scoped", _approval("task-s"))
    name = approval_task_name("task-s")
    await _until_phase(world, name, "pending")
    path = f"/v1/tool-approvals/{name}/decision"
    for body, field in (
        ({"action": "maybe"}, "action"),
        ({}, "action"),
        ({"action": "approved", "reson": "typo"}, "reson"),
    ):
        status, error = await _call(world, "POST", path, body)
        assert (status, error["error"]["field"]) == (422, field), error
    status, error = await _call(world, "POST", path, b"{not json")
    assert (status, error["error"]["field"]) == (400, "body")
    # Another tenant neither sees nor decides it.
    assert (await _call(world, "GET", f"/v1/tool-approvals/{name}", tenant="team-b"))[0] == 404
    status, _ = await _call(world, "POST", path, {"action": "approved"}, tenant="team-b")
    assert status == 404
    _, listed = await _call(world, "GET", "/v1/tool-approvals", tenant="team-b")
    assert listed == {"items": [], "count": 0}
    status, error = await _call(
        world, "POST", "/v1/tool-approvals/a2a-task-nope/decision", {"action": "approved"}
    )
    assert (status, error["error"]["code"]) == (404, "NOT_FOUND")
    # Still pending after all that.
    await _until_phase(world, name, "pending")


# --------------------------------------------------------------------------- direct mode

_TASKS = ApiResource.of(A2ATask)


@pytest.fixture
async def direct(world: Any, kube_emulator: Any) -> AsyncIterator[Any]:
    """A broker with Kubernetes (the emulator), where the controller's A2ATasks live."""
    for namespace in ("team-a", "team-b"):
        kube_emulator.ensure_namespace(namespace)
    await world.start_broker(
        world.broker_config(
            kubernetes=KubernetesConfig(kubeconfig=str(kube_emulator.kubeconfig_path))
        )
    )
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as client:
        world.kube = client
        yield world


async def _task(kube: KubeClient, task_id: str, *, server: bool = False) -> None:
    """An A2ATask as the controller creates it for a paused Query (``server``: a remote
    agent's task, which is not an approval)."""
    spec: dict[str, Any] = {
        "queryRef": {"name": "direct-query"},
        "agentRef": {"name": "helper", "namespace": TENANT},
        "taskId": task_id,
    }
    if server:
        spec["a2aServerRef"] = {"name": "remote"}
    name = approval_task_name(task_id)
    await kube.create_object(
        _TASKS,
        TENANT,
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "A2ATask",
            "metadata": {"name": name, "namespace": TENANT},
            "spec": spec,
        },
    )
    await kube.patch_object(
        _TASKS,
        TENANT,
        name,
        {
            "status": {
                "phase": "input-required",
                "startTime": "2026-01-01T00:00:00Z",
                "protocolMetadata": {
                    "toolCalls": json.dumps([CALL]),
                    "timeout": "5m",
                    "onTimeout": "reject",
                },
            }
        },
        subresource="status",
    )


async def test_a_direct_decision_patches_the_a2atasks_input(direct: Any) -> None:
    kube: KubeClient = direct.kube
    await _task(kube, "t-direct")
    await _task(kube, "t-remote", server=True)
    name = approval_task_name("t-direct")

    status, listed = await _call(direct, "GET", "/v1/tool-approvals")
    assert status == 200, listed
    assert [(i["name"], i["phase"], i["reconciliation"]) for i in listed["items"]] == [
        (name, "pending", "direct")
    ]
    item = listed["items"][0]
    assert item["queryRef"] == {"name": "direct-query", "namespace": TENANT}
    assert [call["name"] for call in item["toolCalls"]] == ["delete_file"]
    status, detail = await _call(direct, "GET", f"/v1/tool-approvals/{name}")
    assert (status, detail["timeout"], detail["onTimeout"]) == (200, "5m", "reject")
    assert detail["status"]["requestedAt"] == "2026-01-01T00:00:00Z"
    # A remote agent's task is not an approval.
    status, _ = await _call(direct, "GET", "/v1/tool-approvals/a2a-task-t-remote")
    assert status == 404
    assert (await _call(direct, "GET", f"/v1/tool-approvals/{name}", tenant="team-b"))[0] == 404

    status, answer = await _call(
        direct,
        "POST",
        f"/v1/tool-approvals/{name}/decision",
        {"action": "rejected", "reason": "not that file"},
        headers={"X-Forwarded-User": "bob"},
    )
    assert (status, answer["phase"]) == (200, "rejected"), answer
    task = await kube.get_object(_TASKS, TENANT, name)
    assert json.loads(task["spec"]["input"]) == {"decision": "rejected"}
    # The same patch kubectl makes: the controller reads nothing else.
    assert task["spec"]["input"] == '{"decision":"rejected"}'

    # Submitted but not yet processed by the controller: a second decision is refused.
    status, error = await _call(
        direct, "POST", f"/v1/tool-approvals/{name}/decision", {"action": "approved"}
    )
    assert (status, error["error"]["field"]) == (409, "name"), error

    # The controller marks it as Ark's does; the API shows Ark's phase and who decided.
    await kube.patch_object(
        _TASKS,
        TENANT,
        name,
        {
            "status": {
                "phase": "failed",
                "completionTime": "2026-01-01T00:01:00Z",
                "conditions": [
                    {
                        "type": "Completed",
                        "status": "True",
                        "reason": "ApprovalRejected",
                        "message": "Tool execution rejected by user",
                        "lastTransitionTime": "2026-01-01T00:01:00Z",
                    }
                ],
            }
        },
        subresource="status",
    )
    status, detail = await _call(direct, "GET", f"/v1/tool-approvals/{name}")
    assert detail["status"]["phase"] == "rejected"
    assert detail["status"]["decision"]["respondedBy"] == "bob"
    assert detail["status"]["decision"]["reason"] == "not that file"
    assert detail["status"]["approvalDuration"] == "60s"
    status, error = await _call(
        direct, "POST", f"/v1/tool-approvals/{name}/decision", {"action": "approved"}
    )
    assert (status, error["error"]["code"]) == (409, "CONFLICT")
    status, pending = await _call(direct, "GET", "/v1/tool-approvals/pending")
    assert pending == {"items": [], "count": 0}
