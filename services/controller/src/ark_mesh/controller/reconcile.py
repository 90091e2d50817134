"""One reconcile of one Query: level-triggered, idempotent, status-only.

Every watch event of a Query ends up here with the Query as it is now; the function decides
from that state alone what (if anything) to do, so a repeated or late event changes nothing.
The order follows Ark's controller (reference §3.1): finalizer, TTL, initial condition, cancel,
input-required, mode, start-by timeout, then dispatch. The metadata writes are the finalizer,
added once at creation, and the approval cascade count (neither bumps ``generation``);
everything the resolution produces goes to status, one write per phase change.

``input-required`` (reference §3.8): the query waits for its approval A2ATask; once the task is
terminal the controller resumes it — ``running`` written here, guarded by the task id it
resumes, so a stale event can never resume the same decision twice — or ends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from ark_mesh.bus import PayloadTooLargeError
from ark_mesh.contracts import (
    TERMINAL_PHASES,
    A2ATask,
    DurationError,
    Query,
    QueryRequest,
    QueryStatus,
    format_duration,
    parse_duration,
)
from ark_mesh.contracts.approvals import (
    APPROVAL_CASCADE_ANNOTATION,
    MAX_APPROVAL_CASCADES,
    approval_task_name,
    cascade_limit_message,
)
from ark_mesh.contracts.ark import (
    BROKER_MIRROR_LABEL,
    COMPLETED,
    DEFAULT_QUERY_TIMEOUT,
    FINALIZER,
    Reason,
)
from ark_mesh.contracts.endings import (
    TIMED_OUT_IN_QUEUE_MESSAGE,
    Ending,
    RunFacts,
    terminal_status,
)
from ark_mesh.controller.config import ControllerConfig
from ark_mesh.controller.dispatch import InControllerDispatcher, StandaloneDispatcher, StatusPort
from ark_mesh.controller.modes import ModeRefused, choose_mode
from ark_mesh.kube import ConflictError, StatusGuard, decision_of, run_log_of
from ark_mesh.resolver import running_status, waiting_status
from ark_mesh.telemetry import get_logger

__all__ = ["QueryPort", "Reconciler", "TaskLookup", "query_request", "tenant_of"]

log = get_logger("ark_mesh.controller")

WAITING_PHASES = frozenset({None, "", "pending", "provisioning", "queued"})
TASK_RECHECK_SECONDS = 5.0
"""How soon to look again for an approval task that is not there yet (Ark's 5 s)."""

TaskLookup = Callable[[str, str], Awaitable[A2ATask | None]]
"""The A2ATask ``(namespace, name)`` as the controller sees it now, or ``None``."""


class QueryPort(Protocol):
    """The metadata writes the controller makes: finalizer on, finalizer off, the approval
    cascade annotation, delete. Each is conditioned on the resourceVersion it was decided on."""

    async def add_finalizer(self, query: Query) -> None: ...

    async def remove_finalizer(self, query: Query) -> None: ...

    async def set_annotation(self, query: Query, key: str, value: str | None) -> None: ...

    async def delete(self, query: Query) -> None: ...


def tenant_of(query: Query) -> str:
    """The tenant is the Query's namespace (the second token of every subject)."""
    return query.metadata.namespace or "default"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _timeout(query: Query) -> timedelta:
    return parse_duration(query.spec.timeout) if query.spec.timeout else DEFAULT_QUERY_TIMEOUT


def _cascades(annotations: Mapping[str, str]) -> int:
    """The approval cascade count a Query carries (Ark's annotation; unreadable counts as 0)."""
    try:
        return max(0, int(annotations.get(APPROVAL_CASCADE_ANNOTATION, "0")))
    except ValueError:
        return 0


def query_request(query: Query, now: datetime) -> QueryRequest:
    """The work message for ``query``: full spec, start-by deadline = creation + timeout."""
    created = _parse_time(query.metadata.creation_timestamp) or now
    deadline = created + _timeout(query)
    return QueryRequest(
        query_id=query.metadata.uid or "",
        name=query.metadata.name,
        namespace=query.metadata.namespace or "default",
        tenant=tenant_of(query),
        generation=query.metadata.generation or 1,
        origin="controller",
        spec=query.spec,
        labels=query.metadata.labels,
        annotations=query.metadata.annotations,
        submitted_at=now.isoformat(),
        deadline=deadline.isoformat(),
    )


@dataclass
class Reconciler:
    """Decides and acts for one Query; returns seconds until it wants to look again (or None)."""

    config: ControllerConfig
    queries: QueryPort
    status: StatusPort
    in_controller: InControllerDispatcher | None
    standalone: StandaloneDispatcher | None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    tasks: TaskLookup | None = None

    async def reconcile(self, query: Query) -> float | None:
        meta = query.metadata
        uid = meta.uid or ""
        if (meta.labels or {}).get(BROKER_MIRROR_LABEL) == "true":
            return None  # a broker-mode query's mirror: resolved elsewhere, status by status-sync
        if meta.deletion_timestamp:
            await self._finalize(query)
            return None
        if FINALIZER not in (meta.finalizers or []):
            await self.queries.add_finalizer(query)
            return None  # the write comes back as an event; continue from there

        status = query.status or QueryStatus()
        phase = status.phase
        now = self.clock()
        generation = meta.generation or 1

        if phase in TERMINAL_PHASES:
            return await self._expire(query, status, now)

        if not status.conditions:
            await self._write(
                query,
                waiting_status(
                    "pending",
                    Reason.NOT_STARTED,
                    "The query has not been started yet",
                    now,
                    generation,
                ),
            )
            return None

        if query.spec.cancel:
            await self._cancel(query, now)
            return None

        if phase == "input-required":
            return await self._input_required(query, status, now)

        decision = choose_mode(
            meta.annotations,
            self.config.reconciliation.default_reconciliation,
            self.config.reconciliation.allowed_modes,
        )
        if isinstance(decision, ModeRefused):
            await self._end(query, now, Ending.error(decision.message, Reason.MODE_NOT_ALLOWED))
            return None

        try:
            request = query_request(query, now)
        except DurationError as exc:
            await self._end(query, now, Ending.error(f"spec.timeout: {exc}"))
            return None
        deadline = datetime.fromisoformat(request.deadline or now.isoformat())

        if decision == "inController":
            assert self.in_controller is not None
            if self.in_controller.running(uid) or self.in_controller.finished(uid, generation):
                return None
            if phase == "running":
                # A run this process does not have (it was interrupted by a restart): start it
                # again with no start-by deadline. Ark bounds only the phases before execution;
                # and a query resumed after an approval is long past creation + spec.timeout.
                request = msgspec.structs.replace(request, deadline=None)
            if phase in WAITING_PHASES and now >= deadline:
                message = (
                    "Query timed out waiting for controller capacity"
                    if phase == "queued"
                    else TIMED_OUT_IN_QUEUE_MESSAGE
                )
                await self._end(query, now, Ending.timed_out_in_queue(message))
                return None
            holds_slot = self.in_controller.has_slot_now(request.namespace)
            if not holds_slot and phase != "queued":
                await self._write(
                    query,
                    waiting_status(
                        "queued",
                        Reason.QUEUED,
                        "Waiting for controller capacity",
                        now,
                        generation,
                    ),
                )
            self.in_controller.start(query, request, holds_slot=holds_slot)
            # While it waits for a slot, look again at the start-by deadline.
            return None if holds_slot else max((deadline - now).total_seconds(), 0.0)

        assert self.standalone is not None
        if phase in WAITING_PHASES:
            if now >= deadline:
                await self._end(query, now, Ending.timed_out_in_queue())
                return None
            if not self.standalone.dispatched(request):
                try:
                    await self.standalone.dispatch(request)
                except PayloadTooLargeError as exc:
                    # Larger than one NATS message: no retry can make it fit; say so now.
                    message = f"The query is too large to be sent to a reconciler: {exc.detail}"
                    await self._end(query, now, Ending.error(message))
                    return None
                log.info("query dispatched", query=meta.name, namespace=meta.namespace)
            return (deadline - now).total_seconds()
        return None

    async def _write(self, query: Query, status: QueryStatus) -> bool:
        return await self.status.write(query, status)

    async def _end(
        self, query: Query, now: datetime, ending: Ending, *, guard: StatusGuard | None = None
    ) -> None:
        """End a query the controller decided itself (nothing ran), in the shared shape."""
        facts = RunFacts.before_start(query.spec)
        generation = query.metadata.generation or 1
        status = terminal_status(ending, facts, now=now, generation=generation)
        if guard is None:
            await self._write(query, status)
        else:
            await self.status.write(query, status, guard=guard)

    async def _cancel(self, query: Query, now: datetime) -> None:
        uid = query.metadata.uid or ""
        if self.in_controller is not None and self.in_controller.cancel(uid):
            return  # the running resolution writes ``canceled`` itself, after it stopped
        paused = query.status is not None and query.status.phase == "input-required"
        if self.standalone is not None and not paused:  # a paused query has no run to stop
            # The run stops and reports ``canceled`` too; it stamps the same instant.
            await self.standalone.cancel(tenant_of(query), uid, "spec.cancel set", at=now)
        await self._end(query, now, Ending.canceled())

    async def _input_required(
        self, query: Query, status: QueryStatus, now: datetime
    ) -> float | None:
        """Ark's rules for a paused query, from its approval task (module docstring)."""
        meta = query.metadata
        a2a = status.response.a2a if status.response else None
        task_id = a2a.task_id if a2a else None
        if not task_id:
            await self._end(query, now, Ending.error("input-required without an A2A task id"))
            return None
        if self.tasks is None:
            return None  # this controller does not watch A2ATasks
        namespace = meta.namespace or "default"
        task = await self.tasks(namespace, approval_task_name(task_id))
        if task is None:
            return TASK_RECHECK_SECONDS
        decision = decision_of(task, now=now)
        if decision is None:
            return None  # still waiting: the task's own change wakes us

        # Every write below is conditioned on the stored Query still waiting on this very task:
        # a watch event that predates our own writes (the annotation patch comes back before
        # the status write does) must not act on the same decision a second time.
        def still_paused_on_it(current: Mapping[str, Any]) -> str | None:
            stored = msgspec.convert(current.get("status") or {}, QueryStatus)
            response = stored.response
            stored_id = response.a2a.task_id if response and response.a2a else None
            if stored.phase != "input-required" or stored_id != task_id:
                return f"no longer paused on task {task_id} (phase {stored.phase!r})"
            return None

        if decision.decision == "failed":
            await self._end(query, now, Ending.error(decision.message), guard=still_paused_on_it)
            return None
        annotations = meta.annotations or {}
        count = _cascades(annotations)
        wanted: str | None = None
        if decision.resumable_denial:
            if count >= MAX_APPROVAL_CASCADES:
                ending = Ending.error(cascade_limit_message())
                await self._end(query, now, ending, guard=still_paused_on_it)
                return None
            wanted = str(count + 1)
        if annotations.get(APPROVAL_CASCADE_ANNOTATION) != wanted:
            # Conditioned on this object's resourceVersion: a reconcile of a stale copy fails
            # here instead of counting the same denial twice. The newer object is on its way
            # (the watch delivers every change), and its own reconcile decides again.
            try:
                await self.queries.set_annotation(query, APPROVAL_CASCADE_ANNOTATION, wanted)
            except ConflictError:
                return None

        generation = meta.generation or 1
        if not await self.status.write(
            query, running_status(now, generation), guard=still_paused_on_it
        ):
            return None  # another reconcile resumed it already
        try:
            request = query_request(query, now)
        except DurationError as exc:
            await self._end(query, now, Ending.error(f"spec.timeout: {exc}"))
            return None
        # A fresh spec.timeout budget for the round (Ark re-stamps its round anchor): no
        # start-by deadline carried over from the query's creation.
        request = msgspec.structs.replace(request, resume=decision, deadline=None)
        log.info(
            "query resumed after approval",
            query=meta.name,
            namespace=namespace,
            task=task.metadata.name,
            decision=decision.decision,
        )
        if self.in_controller is not None and self._mode(query) == "inController":
            self.in_controller.resume(query, request, run_log_of(task))
        elif self.standalone is not None:
            await self.standalone.dispatch(request)
        return None

    def _mode(self, query: Query) -> str:
        decision = choose_mode(
            query.metadata.annotations,
            self.config.reconciliation.default_reconciliation,
            self.config.reconciliation.allowed_modes,
        )
        return "refused" if isinstance(decision, ModeRefused) else decision

    async def _expire(self, query: Query, status: QueryStatus, now: datetime) -> float | None:
        """TTL counts from completion (``Completed=True`` transition time), then delete."""
        try:
            ttl = parse_duration(query.spec.ttl or self.config.default_query_ttl)
        except DurationError:
            log.warning("invalid spec.ttl; keeping the query", query=query.metadata.name)
            return None
        completed_at = None
        for condition in status.conditions or []:
            if condition.type == COMPLETED and condition.status == "True":
                completed_at = _parse_time(condition.last_transition_time)
        start = completed_at or _parse_time(query.metadata.creation_timestamp) or now
        remaining = (start + ttl - now).total_seconds()
        if remaining > 0:
            return remaining
        log.info("query TTL elapsed; deleting", query=query.metadata.name, ttl=format_duration(ttl))
        await self.queries.delete(query)
        return None

    async def _finalize(self, query: Query) -> None:
        uid = query.metadata.uid or ""
        if self.in_controller is not None:
            await self.in_controller.abandon(uid)
        phase = query.status.phase if query.status else None
        if self.standalone is not None and phase not in TERMINAL_PHASES:
            await self.standalone.cancel(tenant_of(query), uid, "query deleted")
        if FINALIZER in (query.metadata.finalizers or []):
            await self.queries.remove_finalizer(query)
