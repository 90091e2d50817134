"""The two ways a Direct query is resolved once the controller admits it.

* :class:`InControllerDispatcher` runs the resolver's ``QueryResolver`` in this process,
  bounded by the fair scheduler, writing status through the status port — Ark today.
* :class:`StandaloneDispatcher` publishes one ``QueryRequest`` per Query generation to
  JetStream and leaves resolution to the query-reconciler service and status to status-sync.

Both answer the same three questions for the controller: start this query, is it running here,
stop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from opentelemetry import trace

from ark_mesh.bus import CancelChannel, Publisher
from ark_mesh.contracts import (
    Chunk,
    Query,
    QueryEvent,
    QueryRequest,
    QueryStatus,
    StatusUpdate,
    subjects,
)
from ark_mesh.contracts.approvals import RunLog
from ark_mesh.controller.scheduler import FairScheduler
from ark_mesh.kube import StatusGuard
from ark_mesh.resolver import QueryResolver
from ark_mesh.telemetry import get_logger

__all__ = [
    "ApprovalTaskPort",
    "EventPort",
    "InControllerDispatcher",
    "MemoryJournal",
    "StandaloneDispatcher",
    "StatusPort",
]

log = get_logger("ark_mesh.controller.dispatch")
TRACER = trace.get_tracer("ark_mesh.controller")


def _query_attributes(request: QueryRequest) -> dict[str, str | int]:
    return {
        "ark.queryId": request.query_id,
        "ark.queryName": request.name,
        "ark.queryNamespace": request.namespace,
        "ark.tenant": request.tenant,
        "ark.generation": request.generation,
    }


class StatusPort(Protocol):
    """Writes a Query's status subresource; ``False`` when the Query is gone or already final,
    or when ``guard`` (checked against the stored Query, see :data:`ark_mesh.kube.StatusGuard`)
    declines."""

    async def write(
        self, query: Query, status: QueryStatus, *, guard: StatusGuard | None = None
    ) -> bool: ...


class ApprovalTaskPort(Protocol):
    """Opens the A2ATask of a pause (before ``input-required`` is written), with the run's log."""

    async def open(self, query: Query, update: StatusUpdate, run_log: RunLog | None) -> None: ...


class EventPort(Protocol):
    """Records an operation event about a Query (Kubernetes Events without a broker, as Ark)."""

    async def record(self, query: Query, event: QueryEvent) -> None: ...


ChunkPort = Callable[[Query, Chunk], Awaitable[None]]


@dataclass
class _Running:
    task: asyncio.Task[None]
    cancel: asyncio.Event


class MemoryJournal:
    """The resolver's ``Journal`` for in-controller runs: the latest step log of each run.

    In memory only: a run's log leaves the process when the run pauses, inside its approval
    A2ATask (``protocolMetadata.runLog``), which is what a resume — possibly by another
    controller process — reads back. A crash mid-run loses the log and the run starts over,
    as in Ark.
    """

    def __init__(self) -> None:
        self._logs: dict[str, RunLog] = {}

    async def record(self, log: RunLog) -> None:
        self._logs[log.query_id] = log

    def latest(self, query_id: str) -> RunLog | None:
        return self._logs.get(query_id)

    def forget(self, query_id: str) -> None:
        self._logs.pop(query_id, None)


class _InProcessSink:
    """The resolver's ResolutionSink for one in-controller run."""

    def __init__(
        self,
        query: Query,
        status: StatusPort,
        events: EventPort,
        chunks: ChunkPort | None,
        *,
        approvals: ApprovalTaskPort | None = None,
        journal: MemoryJournal | None = None,
    ) -> None:
        self._query = query
        self._status = status
        self._events = events
        self._chunks = chunks
        self._approvals = approvals
        self._journal = journal
        self.last_phase: str | None = None

    async def chunk(self, chunk: Chunk) -> None:
        if self._chunks is not None:
            await self._chunks(self._query, chunk)

    async def event(self, event: QueryEvent) -> None:
        await self._events.record(self._query, event)

    async def status(self, update: StatusUpdate) -> None:
        if update.approval is not None and self._approvals is not None:
            # The task first: the controller looks for it as soon as it sees input-required.
            run_log = self._journal.latest(update.query_id) if self._journal else None
            await self._approvals.open(self._query, update, run_log)
        self.last_phase = update.phase
        await self._status.write(self._query, update.status)


class InControllerDispatcher:
    """Resolves queries in this process, at most ``scheduler.capacity`` at a time."""

    def __init__(
        self,
        reconciler: QueryResolver,
        scheduler: FairScheduler,
        status: StatusPort,
        events: EventPort,
        *,
        chunks: ChunkPort | None = None,
        approvals: ApprovalTaskPort | None = None,
    ) -> None:
        self._reconciler = reconciler
        self._scheduler = scheduler
        self._status = status
        self._events = events
        self._chunks = chunks
        self._approvals = approvals
        self.journal = MemoryJournal()
        self._running: dict[str, _Running] = {}
        self._attempts: dict[str, int] = {}
        # Runs that ended here (or paused), by uid → generation. A watch event that still shows
        # the query as running (the terminal write's own event has not arrived yet) must not
        # start it again; after a restart this is empty and an interrupted run is started over,
        # as in Ark. A resume clears the entry: the resumed round is a run of its own.
        self._finished: dict[str, int] = {}

    def running(self, query_id: str) -> bool:
        return query_id in self._running

    def finished(self, query_id: str, generation: int) -> bool:
        return self._finished.get(query_id) == generation

    def has_slot_now(self, namespace: str) -> bool:
        """Take a slot if one is free; ``False`` means the query must wait (phase ``queued``)."""
        return self._scheduler.try_acquire(namespace)

    def start(
        self,
        query: Query,
        request: QueryRequest,
        *,
        holds_slot: bool,
        log: RunLog | None = None,
    ) -> None:
        """Resolve ``request`` in the background; waits for a slot unless it already holds one.

        ``log`` is the step log a resumed run replays (``request.resume`` set).
        """
        cancel = asyncio.Event()
        attempt = self._attempts.get(request.query_id, 0) + 1
        self._attempts[request.query_id] = attempt
        task = asyncio.create_task(
            self._run(query, request, cancel, holds_slot, attempt, log),
            name=f"resolve-{request.namespace}/{request.name}",
        )
        self._running[request.query_id] = _Running(task, cancel)

    def resume(self, query: Query, request: QueryRequest, log: RunLog | None) -> bool:
        """Start the round after an approval decision; ``False`` if a run of the query is
        still going here (nothing to resume). It takes a slot like any run: a paused query
        held none."""
        if self.running(request.query_id):
            return False
        self._finished.pop(request.query_id, None)
        holds_slot = self.has_slot_now(request.namespace)
        self.start(query, request, holds_slot=holds_slot, log=log)
        return True

    async def _run(
        self,
        query: Query,
        request: QueryRequest,
        cancel: asyncio.Event,
        holds_slot: bool,
        attempt: int,
        run_log: RunLog | None,
    ) -> None:
        namespace = request.namespace
        sink = _InProcessSink(
            query,
            self._status,
            self._events,
            self._chunks,
            approvals=self._approvals,
            journal=self.journal,
        )
        try:
            if not holds_slot:
                await self._scheduler.acquire(namespace)
            try:
                with TRACER.start_as_current_span(
                    f"resolve query {request.namespace}/{request.name}",
                    attributes=_query_attributes(request),
                ):
                    await self._reconciler.resolve(
                        request,
                        sink,
                        cancel=cancel,
                        attempt=attempt,
                        log=run_log,
                        journal=self.journal,
                    )
            finally:
                self._scheduler.release(namespace)
        except asyncio.CancelledError:
            raise
        except Exception:  # the resolver reports its own failures; this is a bug guard
            log.exception("in-controller resolution crashed", query=request.name)
        finally:
            self._running.pop(request.query_id, None)
            self._finished[request.query_id] = request.generation
            if sink.last_phase != "input-required":
                self.journal.forget(request.query_id)  # ended: the log is no longer needed

    def cancel(self, query_id: str) -> bool:
        """Ask a running resolution to stop (its terminal status says ``canceled``)."""
        running = self._running.get(query_id)
        if running is None:
            return False
        running.cancel.set()
        return True

    async def abandon(self, query_id: str) -> None:
        """Stop a resolution without letting it write anything more (the Query is gone)."""
        self._finished.pop(query_id, None)
        self.journal.forget(query_id)
        running = self._running.pop(query_id, None)
        if running is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)

    async def close(self, grace: float) -> None:
        """Let running resolutions finish within ``grace`` seconds, then cancel the rest."""
        tasks = [r.task for r in self._running.values()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class StandaloneDispatcher:
    """Publishes ``QueryRequest``s; one per (uid, generation), however often it is asked."""

    def __init__(self, publisher: Publisher, cancels: CancelChannel) -> None:
        self._publisher = publisher
        self._cancels = cancels
        self._dispatched: set[str] = set()

    def dispatched(self, request: QueryRequest) -> bool:
        return request.msg_id in self._dispatched

    async def dispatch(self, request: QueryRequest) -> None:
        """Publish and wait for JetStream's ack; ``Nats-Msg-Id`` makes a repeat a no-op.

        The span is the root of the query's trace: the work message carries its context, so
        the reconciler's resolution and the model calls continue it.
        """
        with TRACER.start_as_current_span(
            f"dispatch query {request.namespace}/{request.name}",
            attributes=_query_attributes(request),
        ):
            await self._publisher.publish(
                subjects.work_query(request.tenant), request, msg_id=request.msg_id
            )
        self._dispatched.add(request.msg_id)

    async def cancel(
        self, tenant: str, query_id: str, reason: str, *, at: datetime | None = None
    ) -> None:
        """Raise the cancel flag and tell a running reconciler (idempotent); ``at`` is the
        instant of the ``canceled`` status the controller writes, which the run reuses."""
        await self._cancels.request(
            tenant, query_id, reason=reason, requested_by="controller", at=at
        )
