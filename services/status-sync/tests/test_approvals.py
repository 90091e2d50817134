"""status-sync and a paused run: the update that carries ``approval`` opens the approval's
A2ATask (Ark's shape) before the Query shows ``input-required``, once, whatever redelivers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec

from ark_mesh.contracts import A2AMetadata, A2ATask, Query, QueryResponse, QueryStatus
from ark_mesh.contracts.approvals import ApprovalRequest
from ark_mesh.kube import A2ATASKS, NotFoundError, StatusWriter

TOOL_CALLS = [{"id": "c1", "type": "function", "function": {"name": "wipe", "arguments": "{}"}}]


def paused(sync: Any, query: Query, task_id: str, *, seq: int = 2) -> Any:
    update = sync.update(query, "running", seq=seq)
    request = ApprovalRequest(
        task_id=task_id,
        agent="helper",
        agent_namespace=sync.namespace,
        tool_calls=TOOL_CALLS,
        timeout="10m",
        on_timeout="proceed",
        context_id="conv-1",
        requested_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    status = QueryStatus(
        phase="input-required",
        response=QueryResponse(
            content="",
            raw="{}",
            phase="input-required",
            a2a=A2AMetadata(context_id="conv-1", task_id=task_id),
        ),
        conversation_id="conv-1",
    )
    return msgspec.structs.replace(update, phase="input-required", status=status, approval=request)


async def test_a_pause_opens_the_approval_task_then_writes_input_required(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query("careful")
    await sync.publish(sync.update(query, "running"))
    await sync.wait_phase(query, "running")
    await sync.publish(paused(sync, query, "task-9"))
    stored = await sync.wait_phase(query, "input-required")
    assert stored.status is not None
    assert stored.status.response is not None
    assert stored.status.response.a2a == A2AMetadata(context_id="conv-1", task_id="task-9")

    task = await sync.kube.get(A2ATask, sync.namespace, "a2a-task-task-9")
    assert task.spec.query_ref.name == "careful"
    assert task.spec.a2a_server_ref is None
    assert (task.spec.task_id, task.spec.context_id) == ("task-9", "conv-1")
    owner = (task.metadata.owner_references or [])[0]
    assert (owner["kind"], owner["uid"]) == ("Query", query.metadata.uid)
    assert task.status is not None
    assert task.status.phase == "input-required"
    metadata = task.status.protocol_metadata or {}
    assert json.loads(metadata["toolCalls"]) == TOOL_CALLS
    assert (metadata["timeout"], metadata["onTimeout"]) == ("10m0s", "proceed")
    assert json.loads(metadata["context"])["conversationId"] == "conv-1"
    assert "runLog" not in metadata  # standalone runs keep their log on the bus

    # A human decided; then the pause is delivered again: the decision stays.
    await StatusWriter(sync.kube).write_object(
        A2ATASKS, sync.namespace, "a2a-task-task-9", {"phase": "completed"}
    )
    await sync.publish(paused(sync, query, "task-9"))
    await sync.wait_acked(3)
    task = await sync.kube.get(A2ATask, sync.namespace, "a2a-task-task-9")
    assert task.status is not None
    assert task.status.phase == "completed"


async def test_a_pause_of_a_missing_query_opens_no_task(sync: Any) -> None:
    await sync.start()
    query = await sync.create_query("short-lived")
    await sync.kube.delete(Query, sync.namespace, "short-lived")
    await sync.publish(paused(sync, query, "task-gone"))
    await sync.wait_acked(1)
    try:
        await sync.kube.get(A2ATask, sync.namespace, "a2a-task-task-gone")
    except NotFoundError:
        return
    raise AssertionError("a task was opened for a Query that does not exist")
