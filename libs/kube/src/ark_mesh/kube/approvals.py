"""An approval's A2ATask: opening it from a pause, and reading the decision back.

Ark keeps a paused query's pending tool calls in an ``A2ATask a2a-task-<taskId>`` without an
``a2aServerRef`` (reference §3.8): a human decides by writing ``spec.input``, the A2ATask
controller turns that (or the approval timeout) into a terminal phase and a ``Completed``
condition, and the Query controller resumes the query from it. Both writers of Query status
(status-sync, and the controller's in-process sink) open the task the same way, with
:func:`open_approval_task`, *before* they write ``input-required``: the Query controller looks
for the task as soon as it sees that phase.

The task is owned by its Query (an ownerReference), so deleting the Query — its TTL after a
cancel, say — garbage-collects the task with it. In-controller runs also keep their step log in
``status.protocolMetadata["runLog"]`` (Ark's protocolMetadata is a string map): it is the one
place a paused run's state survives a controller restart without a bus.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ark_mesh.contracts import A2ATask, DurationError, Query, format_duration, parse_duration
from ark_mesh.contracts.approvals import (
    ApprovalDecision,
    ApprovalReason,
    ApprovalRequest,
    Decision,
    RunLog,
)
from ark_mesh.contracts.ark import COMPLETED
from ark_mesh.kube.client import ApiResource, KubeClient
from ark_mesh.kube.errors import AlreadyExistsError, NotFoundError
from ark_mesh.kube.status import StatusWriter
from ark_mesh.telemetry import get_logger

__all__ = [
    "A2ATASKS",
    "QUERY_LABEL",
    "RUN_LOG_KEY",
    "TASK_ID_LABEL",
    "approval_task_body",
    "approval_task_status",
    "decision_of",
    "open_approval_task",
    "run_log_of",
]

log = get_logger(__name__)

A2ATASKS: Final = ApiResource.of(A2ATask)
QUERY_LABEL: Final = "ark.mckinsey.com/query"
"""Names the task's Query, so ``kubectl get a2atasks -l ark.mckinsey.com/query=<name>`` works."""
TASK_ID_LABEL: Final = "ark.mckinsey.com/task-id"
RUN_LOG_KEY: Final = "runLog"
"""``status.protocolMetadata`` key of an in-controller run's step log (RunLog JSON)."""

_OPEN_PHASES: Final = frozenset({None, "", "pending"})
"""A task still in one of these was created but its status not yet written; any other phase
means the pause was already recorded (or decided) and a repeated update must not undo that."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kube_time(text: str | None) -> str:
    """An RFC 3339 instant as the API server keeps a ``metav1.Time`` (whole seconds, ``Z``)."""
    if not text:
        return _now()
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_duration(text: str) -> str:
    """``5m`` as Ark writes it (Go's ``Duration.String()``: ``5m0s``); unparseable kept as is."""
    if not text:
        return text
    try:
        return format_duration(parse_duration(text))
    except DurationError:
        return text


def approval_task_body(
    *, namespace: str, query_name: str, query_uid: str, approval: ApprovalRequest
) -> dict[str, Any]:
    """The A2ATask of ``approval`` (spec and metadata; status is written separately, as the API
    server drops a status sent on create)."""
    owner = {
        "apiVersion": Query.api_version_string(),
        "kind": Query.KIND,
        "name": query_name,
        "uid": query_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec: dict[str, Any] = {
        "queryRef": {"name": query_name, "namespace": namespace},
        "agentRef": {"name": approval.agent},
        "taskId": approval.task_id,
    }
    if approval.context_id:
        spec["contextId"] = approval.context_id
    return {
        "apiVersion": A2ATask.api_version_string(),
        "kind": A2ATask.KIND,
        "metadata": {
            "name": approval.task_name,
            "namespace": namespace,
            "labels": {QUERY_LABEL: query_name, TASK_ID_LABEL: approval.task_id},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def approval_task_status(
    approval: ApprovalRequest,
    *,
    conversation_id: str | None = None,
    run_log: RunLog | None = None,
    started_at: str | None = None,
) -> dict[str, Any]:
    """Ark's status of a fresh approval task: ``input-required`` with the pending calls, the
    approval timeout and policy, and the run's context, each a JSON string."""
    context = {
        "conversationId": conversation_id or "",
        "agentName": approval.agent,
        "agentNamespace": approval.agent_namespace,
        "round": approval.round,
    }
    metadata = {
        "toolCalls": json.dumps(approval.tool_calls),
        "timeout": _go_duration(approval.timeout),
        "onTimeout": approval.on_timeout,
        "context": json.dumps(context),
    }
    if run_log is not None:
        metadata[RUN_LOG_KEY] = msgspec.json.encode(run_log).decode()
    status: dict[str, Any] = {
        "phase": "input-required",
        "protocolState": "input-required",
        "startTime": _kube_time(started_at or approval.requested_at),
        "protocolMetadata": metadata,
    }
    if approval.context_id:
        status["contextId"] = approval.context_id
    return status


async def open_approval_task(
    client: KubeClient,
    *,
    namespace: str,
    query_name: str,
    query_uid: str,
    approval: ApprovalRequest,
    conversation_id: str | None = None,
    run_log: RunLog | None = None,
    writer: StatusWriter | None = None,
) -> bool:
    """Create the approval's A2ATask and write its ``input-required`` status; idempotent.

    A task that already exists is kept; its status is written only while it has none yet, so a
    redelivered pause never reopens a task a human has decided. Returns whether the status was
    written now.
    """
    body = approval_task_body(
        namespace=namespace, query_name=query_name, query_uid=query_uid, approval=approval
    )
    with contextlib.suppress(AlreadyExistsError):
        await client.create_object(A2ATASKS, namespace, body)
        log.info("approval task created", task=approval.task_name, query=query_name)
    status = approval_task_status(approval, conversation_id=conversation_id, run_log=run_log)

    def still_open(current: Mapping[str, Any]) -> str | None:
        phase = (current.get("status") or {}).get("phase")
        return None if phase in _OPEN_PHASES else f"the task is already {phase!r}"

    try:
        result = await (writer or StatusWriter(client)).write_object(
            A2ATASKS, namespace, approval.task_name, status, guard=still_open
        )
    except NotFoundError:
        return False  # deleted in between (its Query is gone)
    return result.written


def _completed(task: A2ATask) -> tuple[str, str]:
    for existing in (task.status.conditions if task.status else None) or []:
        if existing.type == COMPLETED:
            return existing.reason or "", existing.message or ""
    return "", ""


_BY_REASON: Final[Mapping[str, Decision]] = {
    ApprovalReason.GRANTED: "approved",
    ApprovalReason.TIMEOUT_PROCEEDED: "timeout-proceeded",
    ApprovalReason.REJECTED: "rejected",
    ApprovalReason.TIMEOUT_REJECTED: "timeout-rejected",
}


def decision_of(task: A2ATask, *, now: datetime | None = None) -> ApprovalDecision | None:
    """The decision a terminal approval task records; ``None`` while it is still open.

    ``completed`` resumes the query (approved, or the timeout proceeded); ``failed`` after an
    explicit or timed-out reject is a denial the agent is resumed to answer; any other failure
    (an invalid decision, ``cancelled``) is ``failed``, with the task's ``status.error``.
    """
    status = task.status
    phase = status.phase if status else None
    if phase not in ("completed", "failed", "cancelled"):
        return None
    reason, message = _completed(task)
    decision: Decision
    if phase == "completed":
        decision = "timeout-proceeded" if reason == ApprovalReason.TIMEOUT_PROCEEDED else "approved"
    else:
        found = _BY_REASON.get(reason)
        decision = found if found in ("rejected", "timeout-rejected") else "failed"
    assert status is not None
    if decision == "failed":
        message = status.error or message or f"approval task {task.metadata.name} {phase}"
    decided_at = status.completion_time or (now or datetime.now(UTC)).isoformat()
    return ApprovalDecision(
        task_id=task.spec.task_id, decision=decision, message=message, decided_at=decided_at
    )


def run_log_of(task: A2ATask) -> RunLog | None:
    """The step log an in-controller run stored in its approval task (``None``: none, or one
    that no longer decodes — the run then starts over, as after any lost checkpoint)."""
    text = ((task.status.protocol_metadata if task.status else None) or {}).get(RUN_LOG_KEY)
    if not text:
        return None
    try:
        return msgspec.json.decode(text, type=RunLog)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        log.warning("undecodable run log in approval task", task=task.metadata.name, error=str(exc))
        return None
