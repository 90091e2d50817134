"""A2ATask: the human-approval tasks of paused queries (the ones without ``a2aServerRef``).

Ark's rules (reference §3.8), in its order: a task past its ``spec.ttl`` (720h by default,
counted from creation) is deleted; a task without conditions gets ``Completed=False /
TaskNotStarted``; an ``input-required`` task whose approval timeout has passed (``startTime`` +
``protocolMetadata.timeout``) ends by its ``onTimeout`` policy; otherwise a decision written to
``spec.input`` (``{"decision": "approved" | "rejected"}``) ends it, and input that is not such a
decision fails it (``InvalidApprovalDecision``) rather than being retried forever.

Instead of Ark's 5-second poll, the task is looked at again exactly when its approval expires
(and when its TTL does): a human's decision is a spec change, which the watch delivers anyway.
The Query controller watches these tasks too and resumes the query once one is terminal.

Tasks with an ``a2aServerRef`` (a remote agent that answered with a task) are not polled here;
ark-mesh's A2A client waits for those inline (see docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ark_mesh.contracts import A2ATask, DurationError, Resource, format_duration, parse_duration
from ark_mesh.contracts.approvals import REJECTED_BY_USER_RESULT, ApprovalReason
from ark_mesh.contracts.ark import COMPLETED
from ark_mesh.controller.resource_controllers.skeleton import (
    Observed,
    ReconcileContext,
    condition,
)
from ark_mesh.kube import A2ATASKS, NotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["DEFAULT_TASK_TTL", "ApprovalTasks"]

log = get_logger("ark_mesh.controller.resources")

DEFAULT_TASK_TTL: Final = timedelta(hours=720)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


class ApprovalTasks:
    """The A2ATask controller for approval tasks; ``clock`` is injectable for the rules' tests."""

    kind = A2ATask
    watches: tuple[type[Resource], ...] = ()

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    async def reconcile(self, task: A2ATask, ctx: ReconcileContext) -> Observed:
        now = self._clock()
        meta = task.metadata
        try:
            ttl = parse_duration(task.spec.ttl) if task.spec.ttl else DEFAULT_TASK_TTL
        except DurationError:
            ttl = DEFAULT_TASK_TTL
        created = _parse_time(meta.creation_timestamp) or now
        ttl_left = (created + ttl - now).total_seconds()
        if ttl_left <= 0:
            log.info("A2ATask TTL elapsed; deleting", task=meta.name, ttl=format_duration(ttl))
            with contextlib.suppress(NotFoundError):
                await ctx.client.delete_object(A2ATASKS, meta.namespace, meta.name, uid=meta.uid)
            return Observed()
        status = task.status
        if status is None or not status.conditions:
            return Observed(
                conditions=[
                    condition(
                        COMPLETED,
                        "False",
                        ApprovalReason.NOT_STARTED,
                        "Task has not been started yet",
                    )
                ],
                requeue_after=ttl_left,
            )
        if task.spec.a2a_server_ref is not None or status.phase != "input-required":
            return Observed(requeue_after=ttl_left)

        metadata = status.protocol_metadata or {}
        expiry = self._expiry(task, metadata)
        if expiry is not None and now >= expiry[0]:
            return self._timed_out(metadata.get("onTimeout") or "", expiry[1], now, ttl_left)
        decided = self._decision(task.spec.input, now, ttl_left)
        if decided is not None:
            return decided
        wake = ttl_left if expiry is None else min(ttl_left, (expiry[0] - now).total_seconds())
        return Observed(requeue_after=wake)

    @staticmethod
    def _expiry(task: A2ATask, metadata: dict[str, str]) -> tuple[datetime, timedelta] | None:
        text = metadata.get("timeout")
        started = _parse_time(task.status.start_time if task.status else None)
        if not text or started is None:
            return None
        try:
            timeout = parse_duration(text)
        except DurationError:
            log.warning("invalid approval timeout; waiting", task=task.metadata.name, timeout=text)
            return None
        return started + timeout, timeout

    @staticmethod
    def _timed_out(policy: str, timeout: timedelta, now: datetime, ttl_left: float) -> Observed:
        if policy == "proceed":
            return Observed(
                status={"phase": "completed", "completionTime": _stamp(now)},
                conditions=[
                    condition(
                        COMPLETED,
                        "True",
                        ApprovalReason.TIMEOUT_PROCEEDED,
                        "Approval timeout exceeded, proceeding per onTimeout policy",
                    )
                ],
                requeue_after=ttl_left,
            )
        if policy not in ("reject", ""):
            log.warning("invalid onTimeout; treated as reject", on_timeout=policy)
        return Observed(
            status={
                "phase": "failed",
                "completionTime": _stamp(now),
                "error": f"Approval timeout exceeded after {format_duration(timeout)}",
            },
            conditions=[
                condition(
                    COMPLETED,
                    "True",
                    ApprovalReason.TIMEOUT_REJECTED,
                    "Approval timeout exceeded, rejecting per onTimeout policy",
                )
            ],
            requeue_after=ttl_left,
        )

    @staticmethod
    def _decision(text: str | None, now: datetime, ttl_left: float) -> Observed | None:
        """The outcome of ``spec.input``; ``None`` while no decision has been written."""
        if not text:
            return None
        parsed: Any
        try:
            parsed = json.loads(text)
            if not isinstance(parsed, dict) or not isinstance(parsed.get("decision", ""), str):
                raise ValueError("expected an object with a string field 'decision'")
        except ValueError as exc:
            return Observed(
                status={
                    "phase": "failed",
                    "completionTime": _stamp(now),
                    "error": f"Invalid approval decision format: {exc}",
                },
                conditions=[
                    condition(
                        COMPLETED,
                        "False",
                        ApprovalReason.INVALID,
                        f"Failed to parse approval decision: {exc}",
                    )
                ],
                requeue_after=ttl_left,
            )
        decision = parsed.get("decision", "")
        if decision == "":
            return None
        stamped = {"completionTime": _stamp(now)}
        if decision == "approved":
            return Observed(
                status={"phase": "completed", **stamped},
                conditions=[
                    condition(
                        COMPLETED, "True", ApprovalReason.GRANTED, "User approved the tool calls"
                    )
                ],
                requeue_after=ttl_left,
            )
        if decision == "rejected":
            return Observed(
                status={"phase": "failed", "error": REJECTED_BY_USER_RESULT, **stamped},
                conditions=[
                    condition(COMPLETED, "True", ApprovalReason.REJECTED, REJECTED_BY_USER_RESULT)
                ],
                requeue_after=ttl_left,
            )
        return Observed(
            status={"phase": "failed", "error": f"Invalid decision value: {decision}", **stamped},
            conditions=[
                condition(
                    COMPLETED,
                    "False",
                    ApprovalReason.INVALID,
                    f"Unknown decision value: {decision}",
                )
            ],
            requeue_after=ttl_left,
        )

    async def aclose(self) -> None:
        return None
