"""Tool approvals through the broker: ark-api's ``/v1/tool-approvals`` over both kinds of query.

An approval is named ``a2a-task-<taskId>`` (:func:`~ark_mesh.contracts.approvals.approval_task_name`)
whichever mode its query runs in:

- **A Query resource** (a direct query): the approval is the ``A2ATask`` without
  ``a2aServerRef`` in the tenant's namespace. A decision is a merge patch of its ``spec.input``
  to ``{"decision": "approved"}`` or ``{"decision": "rejected"}`` — what ``kubectl patch`` does
  — and the controller does the rest (the A2ATask's phase and reason, the cascade counter, the
  resume, the approval timeout). The patch carries the object's ``resourceVersion``, so of two
  decisions sent at once one is a 409.
- **A broker-mode query**: the approval is the pending
  :class:`~ark_mesh.contracts.approvals.ApprovalRequest` the read model kept from the
  ``input-required`` status update. The broker does what Ark's controller does on a decision:
  it applies the cascade rule, writes the record back to ``running`` in a new round (the status
  ordering only moves forward, and the resumed run reports ``running`` again), and only then
  publishes the work that resumes the query — the original ``QueryRequest`` with
  ``resume=ApprovalDecision(...)``, whose ``Nats-Msg-Id`` names the task, so a decision sent
  twice (two replicas sweeping, a client retrying) runs once. Ark's cascade rule: an approval
  resets the count of denials in a row; a denial the agent is resumed after increments it; a
  denial when it is already :data:`~ark_mesh.contracts.approvals.MAX_APPROVAL_CASCADES` ends the
  query in ``error`` with Ark's message (the resume's decision is then ``failed``). The
  approval timeout (``onTimeout``) is applied by :meth:`ToolApprovals.sweep`, which every
  replica runs; the same sweep publishes a resume that a broker stopped before publishing
  (the record marks each outcome ``dispatched`` once its resume is published).

Phases as ark-api shows them: ``pending`` while waiting, then ``approved``, ``rejected`` or
``expired`` (a timeout); an A2ATask that ended otherwise shows ``failed`` or ``cancelled``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from ark_mesh.broker.bodies import is_name
from ark_mesh.broker.errors import ConflictError, NotFoundError, UnavailableError
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import ApprovalOutcome, QueryRecord, now, parse_instant
from ark_mesh.broker.responses import (
    ApprovalDecisionResponse,
    ClientContext,
    ExecutionContext,
    QueryReference,
    ToolApprovalDecision,
    ToolApprovalDetailResponse,
    ToolApprovalPhase,
    ToolApprovalRequestStatus,
    ToolApprovalResponse,
    ToolCallInfo,
)
from ark_mesh.bus import BusError
from ark_mesh.contracts import A2ATask, subjects
from ark_mesh.contracts.approvals import (
    APPROVAL_TASK_PREFIX,
    MAX_APPROVAL_CASCADES,
    ApprovalDecision,
    ApprovalReason,
    ApprovalRequest,
    Decision,
    approval_task_name,
    cascade_limit_message,
    is_resumable_denial,
)
from ark_mesh.kube import ApiResource, KubeError, PermanentKubeError
from ark_mesh.kube import ConflictError as KubeConflictError
from ark_mesh.kube import NotFoundError as KubeNotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["TIMEOUT_RESPONDER", "Action", "ToolApprovals", "settle"]

_log = get_logger(__name__)

Action = Literal["approved", "rejected"]

TIMEOUT_RESPONDER = "system:approval-timeout"
"""``respondedBy`` of a decision the approval timeout made."""

RESPONDED_BY_ANNOTATION = "ark.mckinsey.com/approval-responded-by"
RESPONDED_AT_ANNOTATION = "ark.mckinsey.com/approval-responded-at"
REASON_ANNOTATION = "ark.mckinsey.com/approval-reason"
"""On a direct query's A2ATask: who decided through the broker, when, and why (the
controller reads only ``spec.input``)."""

_TASKS = ApiResource.of(A2ATask)


def settle(decision: Decision, cascades: int) -> tuple[Decision, str, int]:
    """Ark's cascade rule: the decision the resumed run gets, its message, and the new count
    of denials in a row. An approval (or a timeout that proceeds) resets the count; a denial
    increments it, unless it already is the limit: then the query ends in ``error``."""
    if not is_resumable_denial(decision):
        return decision, "", 0
    if cascades >= MAX_APPROVAL_CASCADES:
        return "failed", cascade_limit_message(MAX_APPROVAL_CASCADES), cascades
    return decision, "", cascades + 1


def _tool_calls(calls: Any) -> list[ToolCallInfo]:
    """The model's tool calls (OpenAI shape) as ark-api's ``ToolCallInfo``."""
    infos: list[ToolCallInfo] = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            continue
        raw = call.get("function")
        function: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        arguments = function.get("arguments", call.get("arguments", ""))
        infos.append(
            ToolCallInfo(
                id=str(call.get("id") or ""),
                name=str(function.get("name") or call.get("name") or ""),
                type=str(call.get("type") or "function"),
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
        )
    return infos


def _duration(start: str | None, end: str | None) -> str | None:
    """``end - start`` as a Go duration in whole seconds (``approvalDuration``)."""
    began, ended = parse_instant(start or ""), parse_instant(end or "")
    if began is None or ended is None:
        return None
    return f"{max(int((ended - began).total_seconds()), 0)}s"


def _action(decision: Decision) -> Action:
    """What a decision means for the tool calls: run them, or answer them as rejected."""
    return "approved" if decision in ("approved", "timeout-proceeded") else "rejected"


# --------------------------------------------------------------------------- broker mode


def _outcome_phase(outcome: ApprovalOutcome) -> ToolApprovalPhase:
    if outcome.decision.decision in ("timeout-rejected", "timeout-proceeded"):
        return "expired"
    return outcome.action


def _broker_views(
    record: QueryRecord,
) -> list[tuple[ApprovalRequest, ToolApprovalPhase, ApprovalOutcome | None]]:
    """Every approval of a broker-mode query: the decided ones, then the pending one."""
    views: list[tuple[ApprovalRequest, ToolApprovalPhase, ApprovalOutcome | None]] = [
        (outcome.request, _outcome_phase(outcome), outcome) for outcome in record.approvals or []
    ]
    pending = record.pending_approval
    if pending is not None:
        views.append((pending, "pending", None))
    return views


def _broker_summary(
    record: QueryRecord, request: ApprovalRequest, phase: ToolApprovalPhase
) -> ToolApprovalResponse:
    return ToolApprovalResponse(
        name=approval_task_name(request.task_id),
        namespace=record.namespace,
        query_ref=QueryReference(name=record.name, namespace=record.namespace),
        tool_calls=_tool_calls(request.tool_calls),
        phase=phase,
        creation_timestamp=request.requested_at,
        reconciliation="broker",
    )


def _broker_decision(outcome: ApprovalOutcome) -> ToolApprovalDecision:
    client = (
        ClientContext(ip_address=outcome.ip_address, user_agent=outcome.user_agent)
        if outcome.ip_address or outcome.user_agent
        else None
    )
    return ToolApprovalDecision(
        action=outcome.action,
        responded_by=outcome.decision.decided_by or "unknown",
        responded_at=outcome.decision.decided_at,
        reason=outcome.reason,
        client_context=client,
    )


def _broker_detail(
    record: QueryRecord,
    request: ApprovalRequest,
    phase: ToolApprovalPhase,
    outcome: ApprovalOutcome | None,
) -> ToolApprovalDetailResponse:
    summary = _broker_summary(record, request, phase)
    decision = _broker_decision(outcome) if outcome is not None else None
    return ToolApprovalDetailResponse(
        name=summary.name,
        namespace=summary.namespace,
        query_ref=summary.query_ref,
        tool_calls=summary.tool_calls,
        timeout=request.timeout or None,
        on_timeout=request.on_timeout,
        execution_context=ExecutionContext(
            agent_name=request.agent, agent_namespace=request.agent_namespace
        ),
        status=ToolApprovalRequestStatus(
            phase=phase,
            requested_at=request.requested_at,
            decision=decision,
            approval_duration=_duration(request.requested_at, decision.responded_at)
            if decision is not None
            else None,
        ),
        metadata={
            "name": summary.name,
            "namespace": summary.namespace,
            "creationTimestamp": request.requested_at,
            "labels": {"ark.mckinsey.com/query": record.name},
        },
        reconciliation="broker",
    )


# --------------------------------------------------------------------------- direct mode


def _is_approval_task(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec") or {}
    name = str((obj.get("metadata") or {}).get("name") or "")
    return not spec.get("a2aServerRef") and name.startswith(APPROVAL_TASK_PREFIX)


def _completed_reason(status: Mapping[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Completed":
            reason = condition.get("reason")
            return str(reason) if reason else None
    return None


def _submitted(obj: Mapping[str, Any]) -> str | None:
    """The decision already written into ``spec.input``, if any."""
    raw = (obj.get("spec") or {}).get("input")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return str(raw)
    decision = value.get("decision") if isinstance(value, dict) else None
    return str(decision) if decision else None


def _task_phase(obj: Mapping[str, Any]) -> ToolApprovalPhase:
    status = obj.get("status") or {}
    phase = status.get("phase") or "pending"
    if phase not in ("completed", "failed", "cancelled"):
        return "pending"
    reason = _completed_reason(status)
    if reason in (ApprovalReason.TIMEOUT_PROCEEDED, ApprovalReason.TIMEOUT_REJECTED):
        return "expired"
    if reason == ApprovalReason.GRANTED:
        return "approved"
    if reason == ApprovalReason.REJECTED:
        return "rejected"
    if phase == "cancelled":
        return "cancelled"
    return "approved" if phase == "completed" else "failed"


def _task_metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("status") or {}).get("protocolMetadata") or {})


def _task_summary(obj: Mapping[str, Any]) -> ToolApprovalResponse:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    query = spec.get("queryRef") or {}
    try:
        calls = json.loads(_task_metadata(obj).get("toolCalls") or "[]")
    except ValueError:
        calls = []
    return ToolApprovalResponse(
        name=str(meta.get("name") or ""),
        namespace=namespace,
        query_ref=QueryReference(
            name=str(query.get("name") or ""), namespace=str(query.get("namespace") or namespace)
        ),
        tool_calls=_tool_calls(calls),
        phase=_task_phase(obj),
        creation_timestamp=meta.get("creationTimestamp"),
        reconciliation="direct",
    )


def _task_decision(obj: Mapping[str, Any], phase: ToolApprovalPhase) -> ToolApprovalDecision | None:
    if phase in ("pending", "failed", "cancelled"):
        return None
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    status = obj.get("status") or {}
    if phase == "expired":
        on_timeout = _task_metadata(obj).get("onTimeout") or "reject"
        return ToolApprovalDecision(
            action="approved" if on_timeout == "proceed" else "rejected",
            responded_by=TIMEOUT_RESPONDER,
            responded_at=str(status.get("completionTime") or ""),
        )
    return ToolApprovalDecision(
        action=phase,
        responded_by=annotations.get(RESPONDED_BY_ANNOTATION) or "unknown",
        responded_at=annotations.get(RESPONDED_AT_ANNOTATION)
        or str(status.get("completionTime") or ""),
        reason=annotations.get(REASON_ANNOTATION),
    )


def _task_detail(obj: Mapping[str, Any]) -> ToolApprovalDetailResponse:
    summary = _task_summary(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    agent = spec.get("agentRef") or {}
    protocol = _task_metadata(obj)
    decision = _task_decision(obj, summary.phase or "pending")
    requested = status.get("startTime") or summary.creation_timestamp
    return ToolApprovalDetailResponse(
        name=summary.name,
        namespace=summary.namespace,
        query_ref=summary.query_ref,
        tool_calls=summary.tool_calls,
        timeout=protocol.get("timeout") or None,
        on_timeout=protocol.get("onTimeout") or None,
        execution_context=ExecutionContext(
            agent_name=str(agent.get("name") or ""),
            agent_namespace=str(agent.get("namespace") or summary.namespace),
        ),
        status=ToolApprovalRequestStatus(
            phase=summary.phase,
            observed_generation=(obj.get("metadata") or {}).get("generation"),
            requested_at=requested,
            decision=decision,
            approval_duration=_duration(requested, status.get("completionTime"))
            if decision is not None
            else None,
            conditions=status.get("conditions"),
        ),
        metadata=dict(obj.get("metadata") or {}),
        reconciliation="direct",
    )


# --------------------------------------------------------------------------- the service


class ToolApprovals:
    """ark-api's tool approvals over broker-mode records and the tenant's A2ATasks."""

    def __init__(self, broker: QueryBroker, *, redispatch_after: float = 30.0) -> None:
        self.broker = broker
        self.redispatch_after = redispatch_after

    # -- reads ----------------------------------------------------------------------------------

    async def list(self, tenant: str, phase: str | None = None) -> list[ToolApprovalResponse]:
        """The tenant's approvals, newest first; ``phase`` filters (Ark's ``?phase=``)."""
        items: list[ToolApprovalResponse] = []
        for record in await self.broker.list_queries(tenant):
            items += [
                _broker_summary(record, request, view_phase)
                for request, view_phase, _ in _broker_views(record)
            ]
        seen = {item.name for item in items}
        items += [
            summary
            for summary in map(_task_summary, await self._tasks(tenant))
            if summary.name not in seen
        ]
        if phase is not None:
            items = [item for item in items if item.phase == phase]
        items.sort(key=lambda item: (item.creation_timestamp or "", item.name), reverse=True)
        return items

    async def get(self, tenant: str, name: str) -> ToolApprovalDetailResponse:
        found = await self._broker_approval(tenant, name)
        if found is not None:
            record, request, phase, outcome = found
            return _broker_detail(record, request, phase, outcome)
        return _task_detail(await self._task(tenant, name))

    async def _broker_approval(
        self, tenant: str, name: str
    ) -> tuple[QueryRecord, ApprovalRequest, ToolApprovalPhase, ApprovalOutcome | None] | None:
        if not name.startswith(APPROVAL_TASK_PREFIX):
            return None
        task_id = name[len(APPROVAL_TASK_PREFIX) :]
        record = await self.broker.read_model.by_task(tenant, task_id)
        if record is None:
            return None
        for request, phase, outcome in _broker_views(record):
            if request.task_id == task_id:
                return record, request, phase, outcome
        return None

    async def _tasks(self, tenant: str) -> builtins.list[dict[str, Any]]:
        if self.broker.kube is None:
            return []
        try:
            found = await self.broker.kube.list_objects(_TASKS, tenant)
        except KubeError as exc:
            raise UnavailableError(f"Kubernetes is unavailable: {exc}") from exc
        return [obj for obj in found.items if _is_approval_task(obj)]

    async def _task(self, tenant: str, name: str) -> dict[str, Any]:
        missing = NotFoundError(f"tool approval {name!r} not found", field="name")
        if self.broker.kube is None or not is_name(name):
            raise missing
        try:
            obj = await self.broker.kube.get_object(_TASKS, tenant, name)
        except (KubeNotFoundError, PermanentKubeError):
            raise missing from None
        except KubeError as exc:
            raise UnavailableError(f"Kubernetes is unavailable: {exc}") from exc
        if not _is_approval_task(obj):
            raise missing
        return obj

    # -- decisions ------------------------------------------------------------------------------

    async def decide(
        self,
        tenant: str,
        name: str,
        action: Action,
        *,
        reason: str | None,
        responded_by: str,
        client: ClientContext | None = None,
    ) -> ApprovalDecisionResponse:
        """Answer the pending approval ``name``: 404 when there is none by that name, 409 when
        it is no longer pending."""
        decided_at = now()
        found = await self._broker_approval(tenant, name)
        if found is not None:
            record, request, phase, _ = found
            if phase != "pending":
                raise ConflictError(
                    f"Cannot submit decision: approval {name} is in {phase!r} phase, not 'pending'",
                    field="name",
                )
            answer = ApprovalDecision(
                task_id=request.task_id,
                decision=action,
                message=reason or "",
                decided_by=responded_by,
                decided_at=decided_at,
            )
            await self._resume(tenant, record.id, request.task_id, answer, action, client)
            namespace = record.namespace
        else:
            namespace = await self._decide_task(
                tenant, name, action, reason=reason, responded_by=responded_by, at=decided_at
            )
        return ApprovalDecisionResponse(
            name=name,
            namespace=namespace,
            phase=action,
            decision=ToolApprovalDecision(
                action=action,
                responded_by=responded_by,
                responded_at=decided_at,
                reason=reason,
                client_context=client,
            ),
        )

    async def _decide_task(
        self,
        tenant: str,
        name: str,
        action: Action,
        *,
        reason: str | None,
        responded_by: str,
        at: str,
    ) -> str:
        """A direct query's approval: merge-patch ``spec.input`` (and who decided) on the
        A2ATask, as ``kubectl patch`` would; the object's ``resourceVersion`` guards it."""
        obj = await self._task(tenant, name)
        phase = _task_phase(obj)
        if phase != "pending":
            raise ConflictError(
                f"Cannot submit decision: approval {name} is in {phase!r} phase, not 'pending'",
                field="name",
            )
        if _submitted(obj) is not None:
            raise ConflictError(
                f"A decision has already been submitted for approval {name}", field="name"
            )
        meta = obj.get("metadata") or {}
        annotations = {
            RESPONDED_BY_ANNOTATION: responded_by,
            RESPONDED_AT_ANNOTATION: at,
        }
        if reason:
            annotations[REASON_ANNOTATION] = reason
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": annotations,
            },
            "spec": {"input": json.dumps({"decision": action}, separators=(",", ":"))},
        }
        assert self.broker.kube is not None  # _task found it through Kubernetes
        try:
            await self.broker.kube.patch_object(_TASKS, tenant, name, patch)
        except KubeConflictError:
            raise ConflictError(
                f"approval {name} changed meanwhile (another decision?); read it again",
                field="name",
            ) from None
        except KubeNotFoundError:
            raise NotFoundError(f"tool approval {name!r} not found", field="name") from None
        except KubeError as exc:
            raise UnavailableError(f"Kubernetes is unavailable: {exc}") from exc
        _log.info("approval decided", tenant=tenant, task=name, action=action, mode="direct")
        return str(meta.get("namespace") or tenant)

    async def _resume(
        self,
        tenant: str,
        query_id: str,
        task_id: str,
        answer: ApprovalDecision,
        action: Action,
        client: ClientContext | None,
    ) -> ApprovalDecision:
        """A broker-mode decision: the record to ``running`` in a new round (with the cascade
        rule applied), then the resume on the query's work subject. Returns what the run is
        told. A publish that fails puts the record back as it was (503, retry)."""
        before, written, told = await self.record_decision(
            tenant, query_id, task_id, answer, action, client
        )
        try:
            await self._dispatch(written, told)
        except BusError as exc:
            await self._undo(tenant, query_id, written, before)
            raise UnavailableError(f"the resume could not be queued: {exc}") from exc
        _log.info(
            "approval decided",
            tenant=tenant,
            query_id=query_id,
            task_id=task_id,
            decision=told.decision,
            mode="broker",
        )
        return told

    async def record_decision(
        self,
        tenant: str,
        query_id: str,
        task_id: str,
        answer: ApprovalDecision,
        action: Action,
        client: ClientContext | None = None,
    ) -> tuple[QueryRecord, QueryRecord, ApprovalDecision]:
        """The first half of a decision: the record as it was, as written (``running``, the
        outcome not yet dispatched), and what the run is told. 409 when the approval is no
        longer pending; 404 when the query is gone."""
        before: QueryRecord | None = None
        told: ApprovalDecision | None = None

        def apply_decision(record: QueryRecord) -> QueryRecord:
            nonlocal before, told
            pending = record.pending_approval
            if pending is None or pending.task_id != task_id:
                raise ConflictError(
                    f"Cannot submit decision: approval {approval_task_name(task_id)} is no "
                    f"longer pending (query {record.name} is {record.status.phase!r})",
                    field="name",
                )
            before = msgspec.structs.replace(record)
            decision, message, cascades = settle(answer.decision, record.approval_cascades)
            told = msgspec.structs.replace(
                answer, decision=decision, message=message or answer.message
            )
            record.status = msgspec.structs.replace(record.status, phase="running")
            record.approval = None
            record.approvals = [
                *(record.approvals or []),
                ApprovalOutcome(
                    request=pending,
                    decision=told,
                    action=action,
                    reason=answer.message or None,
                    ip_address=client.ip_address if client else None,
                    user_agent=client.user_agent if client else None,
                ),
            ]
            record.approval_cascades = cascades
            record.round = max(record.round, pending.round) + 1
            record.updated_at = answer.decided_at
            return record

        written = await self.broker.read_model.mutate(tenant, query_id, apply_decision)
        if written is None or before is None or told is None:
            raise NotFoundError(
                f"tool approval {approval_task_name(task_id)!r} not found", field="name"
            )
        return before, written, told

    async def _dispatch(self, record: QueryRecord, told: ApprovalDecision) -> None:
        """The second half: publish the resume, then mark the outcome dispatched (a broker
        that stops between the two halves leaves it undispatched, and a sweep publishes it)."""
        request = record.work(submitted_at=told.decided_at, resume=told)
        await self.broker.publisher.publish(
            subjects.work_query(record.tenant), request, msg_id=request.msg_id
        )

        def mark(current: QueryRecord) -> QueryRecord | None:
            outcomes = list(current.approvals or [])
            for index, outcome in enumerate(outcomes):
                if outcome.decision.task_id == told.task_id and not outcome.dispatched:
                    outcomes[index] = msgspec.structs.replace(outcome, dispatched=True)
                    current.approvals = outcomes
                    return current
            return None

        try:
            await self.broker.read_model.mutate(record.tenant, record.id, mark)
        except UnavailableError as exc:  # published: a later sweep's duplicate is dropped
            _log.warning("resume not marked dispatched", query_id=record.id, error=str(exc))

    async def _undo(
        self, tenant: str, query_id: str, written: QueryRecord, before: QueryRecord
    ) -> None:
        def restore(record: QueryRecord) -> QueryRecord | None:
            if record.round != written.round or record.status.phase != "running":
                return None  # the run went on meanwhile: nothing to put back
            return before

        with contextlib.suppress(Exception):
            await self.broker.read_model.mutate(tenant, query_id, restore)

    # -- the approval timeout (broker mode) -----------------------------------------------------

    async def sweep(self, at: datetime | None = None) -> int:
        """Apply ``onTimeout`` to every broker-mode approval whose timeout has passed, and
        publish the resumes a stopped broker left undispatched for ``redispatch_after``; how
        many were applied or published. Every replica sweeps: the record's compare-and-set lets
        one win, and the resume's message id drops a duplicate publish."""
        at = at or datetime.now(UTC)
        applied = 0
        for tenant, query_id, task_id in self.broker.in_flight.undispatched(
            at - timedelta(seconds=self.redispatch_after)
        ):
            record = await self.broker.read_model.get(tenant, query_id)
            if record is None or record.terminal:
                continue
            for outcome in record.approvals or []:
                if outcome.decision.task_id == task_id and not outcome.dispatched:
                    _log.warning("publishing an undispatched resume", query_id=query_id)
                    try:
                        await self._dispatch(record, outcome.decision)
                    except BusError as exc:
                        _log.warning("resume not published", query_id=query_id, error=str(exc))
                        continue
                    applied += 1
        for tenant, query_id, task_id in self.broker.in_flight.expired(at):
            record = await self.broker.read_model.get(tenant, query_id)
            pending = record.pending_approval if record is not None else None
            if pending is None or pending.task_id != task_id:
                continue
            decision: Decision = (
                "timeout-proceeded" if pending.on_timeout == "proceed" else "timeout-rejected"
            )
            answer = ApprovalDecision(
                task_id=task_id,
                decision=decision,
                decided_by=TIMEOUT_RESPONDER,
                decided_at=now(),
            )
            try:
                await self._resume(tenant, query_id, task_id, answer, _action(decision), None)
            except (ConflictError, NotFoundError):
                continue  # another replica (or a human) was first
            except UnavailableError as exc:
                _log.warning("approval timeout not applied", query_id=query_id, error=str(exc))
                continue  # the next sweep tries again
            applied += 1
        return applied

    async def run_sweeps(self, interval: float) -> None:
        """:meth:`sweep` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("approval timeout sweep failed")
