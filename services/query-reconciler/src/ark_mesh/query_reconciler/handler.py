"""One delivery of a ``QueryRequest``: decide, resolve, report — exactly one outcome per query.

For each delivery the :class:`QueryWork` handler

1. reads the query's :class:`~ark_mesh.query_reconciler.ledger.Ledger`. If a terminal status
   of this generation is already published (the previous replica finished but died before its
   ack, or a duplicate submit), it does not run the query again: it only publishes the final
   chunk if that is missing, built from the terminal status, and acks. Work for a generation
   older than one already reported is stale and acked untouched;
2. loads the run's step log from ``ark-runs`` (:class:`~ark_mesh.bus.RunLogStore`) and decides
   whether this delivery runs at all: the original work of a query paused at
   ``input-required`` is acked untouched (the pause holds no worker; only a decision moves it
   on), and so is a resume that does not answer the approval the run waits for (stale or
   duplicate). A log that cannot be read ends the query in ``error`` — starting over could
   repeat the side effects it records;
3. watches the query's cancel channel (core subject + KV flag). A flag raised before the work
   started ends the query ``canceled`` without running it;
4. otherwise runs :meth:`QueryResolver.resolve` with a
   :class:`~ark_mesh.query_reconciler.sink.JetStreamSink` (chunk numbering continuing after
   everything already published), ``attempt`` after any reported attempt, the cancel watch as
   the cancel event, and the log plus a :class:`~ark_mesh.query_reconciler.journal.RunJournal`:
   the resolver replays the recorded steps (no model call, no tool call, no chunks) and
   checkpoints every new one. The start-by ``deadline`` (``TimedOutInQueue``) is the
   resolver's to enforce; it is dropped on a *restart* and on a *resume* — an earlier attempt
   already started in time, and the new one gets a fresh ``spec.timeout`` (MaxDeliver bounds
   the total). A restart whose stream holds output after the last checkpoint says so with a
   notice chunk. The run returns ``input-required`` (paused: the work is acked, the log kept)
   or a terminal status (the log is deleted);
5. maps a transient resolver failure (provider 429/5xx, dropped connection) to the bus's
   :class:`~ark_mesh.bus.TransientError`, honouring a provider's ``Retry-After``: the worker
   redelivers with backoff, and the redelivery replays the log. A checkpoint that cannot be
   stored (KV unreachable, or another process saved the log since: it owns the run now) is
   such a failure too, never the query's end. Permanent failures end the
   query in ``error`` inside the resolver.

:meth:`QueryWork.end_dead_letter` ends the query of a work message the bus gave up on (MaxDeliver
used up by transient failures or by replicas that died, or an undecodable body whose query can
be recovered with :func:`~ark_mesh.query_reconciler.recovery.recover_request`): a terminal
``error`` status naming the reason and a final chunk, so every reader's stream still ends. The
tenant check of each delivery and dead letter is the service skeleton's
(:class:`~ark_mesh.service.WorkQueueService`).
"""

from __future__ import annotations

from datetime import datetime

import aiohttp
import msgspec
from opentelemetry import trace

from ark_mesh.bus import (
    Bus,
    BusError,
    CancelChannel,
    CancelWatch,
    DeadLetterNotice,
    MessageContext,
    NatsError,
    Publisher,
    RunLogStore,
    RunLogUnreadableError,
    StoredRun,
    TransientError,
)
from ark_mesh.contracts import TERMINAL_PHASES, QueryRequest
from ark_mesh.contracts.endings import Ending, RunFacts, final_chunk
from ark_mesh.query_reconciler.config import ChunkStreamConfig, MemoryConfig
from ark_mesh.query_reconciler.journal import RunJournal, chunk_offset, resumed_log
from ark_mesh.query_reconciler.ledger import Ledger, LedgerReader
from ark_mesh.query_reconciler.memory import JetStreamMemory
from ark_mesh.query_reconciler.sink import JetStreamSink
from ark_mesh.resolver import (
    MemoryFactory,
    ModelClient,
    ModelUnavailableError,
    QueryResolver,
    ResourceStore,
    RunReporter,
    SystemClock,
    TransientResolutionError,
)
from ark_mesh.telemetry import bound_context, get_logger

__all__ = ["RESTART_NOTICE", "RESUME_NOTICE", "QueryWork"]

log = get_logger(__name__)

RESTART_NOTICE = (
    "The previous attempt of this query was interrupted; the query restarts and its output "
    "follows. Output above this line is superseded."
)
RESUME_NOTICE = (
    "The previous attempt of this query was interrupted; the query continues from its last "
    "completed step. Output above this line after that step is superseded."
)


class QueryWork:
    """The worker's handler and dead-letter callback; shared by every delivery of a replica."""

    def __init__(
        self,
        bus: Bus,
        publisher: Publisher,
        store: ResourceStore,
        *,
        models: ModelClient,
        http: aiohttp.ClientSession,
        reconciler_id: str,
        memory: MemoryConfig | None = None,
        streaming: ChunkStreamConfig | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._bus = bus
        self._publisher = publisher
        self._store = store
        self._models = models
        self._http = http
        self._reconciler_id = reconciler_id
        self._memory = memory or MemoryConfig()
        self._streaming = streaming or ChunkStreamConfig()
        self._tracer = tracer or trace.get_tracer(__name__)
        self._clock = SystemClock()
        self._ledger = LedgerReader(bus)
        self._cancels = CancelChannel(bus)
        self._runs = RunLogStore(bus)

    # -- the handler ----------------------------------------------------------------------------

    async def handle(self, request: QueryRequest, context: MessageContext) -> None:
        with (
            bound_context(
                query_id=request.query_id,
                query=request.name,
                namespace=request.namespace,
                delivery=context.delivery,
            ),
            self._tracer.start_as_current_span(
                "resolve query", attributes=_span_attributes(request, context.delivery)
            ),
        ):
            try:
                await self._handle(request, context.delivery)
            except (BusError, NatsError, TimeoutError) as exc:
                # NATS could not answer (a leader election, an outage): the delivery is retried
                # with backoff, and the next one reads the ledger and the log again.
                raise TransientError(f"NATS could not answer: {exc!r}") from exc

    async def _handle(self, request: QueryRequest, delivery: int) -> None:
        ledger = await self._ledger.read(request.tenant, request.query_id, request.generation)
        if ledger.superseded:
            log.info(
                "stale work: a newer generation of the query was already reported",
                generation=request.generation,
                reported_generation=ledger.last_status.generation if ledger.last_status else None,
            )
            return
        if ledger.terminal is not None:
            await self._complete_stream(request, ledger)
            return
        attempt = ledger.next_attempt(delivery)
        try:
            stored = await self._runs.load(request.tenant, request.query_id, request.generation)
        except RunLogUnreadableError as exc:
            # Starting over could repeat the side effects the log records: end it instead.
            log.error("the run's step log cannot be read", error=str(exc))
            await self._end_now(request, ledger, Ending.error(str(exc)), attempt)
            return
        if not await self._should_run(request, ledger, stored, attempt):
            return
        sink = self._sink(request, attempt, chunk_offset(ledger.last_chunk_seq, stored.log))
        journal = RunJournal(self._runs, request, sink, stored)
        try:
            async with self._cancels.watch(request.tenant, request.query_id) as cancel:
                if cancel.is_set():
                    reason = cancel.request.reason if cancel.request is not None else None
                    log.info("canceled before it started", reason=reason)
                    at = _canceled_at(cancel)
                    await self._end(request, sink, Ending.canceled(), attempt, at=at)
                    await self._runs.delete(request.tenant, request.query_id)
                    return
                if ledger.started or request.resume is not None:
                    # An earlier attempt (or round) started in time; this one gets a fresh
                    # ``spec.timeout`` and no start-by deadline.
                    request = msgspec.structs.replace(request, deadline=None)
                if ledger.interrupted:
                    await self._announce_restart(sink, ledger, stored, attempt)
                resolver = self._resolver(request)
                try:
                    status = await resolver.resolve(
                        request,
                        sink,
                        cancel=cancel,
                        attempt=attempt,
                        raise_transient=True,
                        canceled_at=lambda: _canceled_at(cancel),
                        log=resumed_log(stored.log) if stored.log is not None else None,
                        journal=journal,
                    )
                except TransientResolutionError as exc:
                    # Includes a checkpoint that could not be stored (CheckpointError): the
                    # redelivery replays what was.
                    delay = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
                    raise TransientError(str(exc), delay=delay) from exc
                if status.phase in TERMINAL_PHASES:
                    await self._runs.delete(request.tenant, request.query_id)
                    log.info("query resolved", phase=status.phase, attempt=attempt)
                else:
                    # Paused for a human: the work is acked and the slot freed; a resume
                    # message (any replica) continues from the log.
                    log.info("query paused", phase=status.phase, attempt=attempt)
        finally:
            await sink.close()

    async def _should_run(
        self, request: QueryRequest, ledger: Ledger, stored: StoredRun, attempt: int
    ) -> bool:
        """Whether this delivery runs the query; a delivery that must not is acked untouched.

        Original work of a paused query (a redelivery, a duplicate submit) waits for its
        decision; a resume must answer the approval the run waits for, or be a redelivery of
        the resume the run already applied (its replica died in that round). Anything else is
        stale or a duplicate.
        """
        resume = request.resume
        run = stored.log
        if resume is None:
            if ledger.paused:
                log.info("the query waits for an approval; its work is not run again")
                return False
            if run is not None and run.round > 0:
                log.info("the query is driven by its approval decisions now", round=run.round)
                return False
            return True
        if run is not None:
            if run.pending is not None and run.pending.task_id == resume.task_id:
                return True
            if (
                run.pending is None
                and run.decisions
                and run.decisions[-1].task_id == resume.task_id
            ):
                log.info("a resume redelivered; continuing the run from its log", round=run.round)
                return True
        elif ledger.paused and _waits_for(ledger, resume.task_id):
            message = (
                "The query's run log expired while it waited for an approval; it cannot be resumed"
            )
            log.error("resume without a run log", task_id=resume.task_id)
            await self._end_now(request, ledger, Ending.error(message), attempt)
            return False
        log.info(
            "stale or duplicate resume; ignored",
            task_id=resume.task_id,
            pending=run.pending.task_id if run is not None and run.pending else None,
        )
        return False

    async def _announce_restart(
        self, sink: JetStreamSink, ledger: Ledger, stored: StoredRun, attempt: int
    ) -> None:
        """Tell stream readers that output they saw since the last checkpoint is superseded."""
        recorded = stored.log.chunk_seq if stored.log is not None else 0
        if stored.log is None:
            if ledger.last_chunk_seq:
                await sink.notice(RESTART_NOTICE)
            log.info("restarting an interrupted query", attempt=attempt)
            return
        if ledger.last_chunk_seq > recorded:
            await sink.notice(RESUME_NOTICE)
        log.info(
            "resuming an interrupted query from its log",
            attempt=attempt,
            steps=len(stored.log.steps),
            in_flight=stored.log.in_flight,
        )

    def _resolver(self, request: QueryRequest) -> QueryResolver:
        # Cheap: it only holds references to the shared model client, HTTP session and store.
        # One per resolution because the JetStream memory factory is bound to the request
        # (its tenant and message ids).
        memory: MemoryFactory | None = None
        if self._memory.backend == "jetstream":
            memory = JetStreamMemory(
                self._bus, self._publisher, request, read_timeout=self._memory.read_timeout
            )
        return QueryResolver(
            self._store,
            models=self._models,
            memory=memory,
            http=self._http,
            reconciler_id=self._reconciler_id,
            stream_model_calls=self._streaming.stream_model_calls,
        )

    def _sink(self, request: QueryRequest, attempt: int, offset: int) -> JetStreamSink:
        return JetStreamSink(
            self._publisher,
            request,
            attempt=attempt,
            chunk_offset=offset,
            streaming=self._streaming,
        )

    # -- endings the service reports itself -----------------------------------------------------

    async def _end(
        self,
        request: QueryRequest,
        sink: JetStreamSink,
        ending: Ending,
        attempt: int,
        *,
        at: datetime | None = None,
    ) -> None:
        """Report ``ending`` through the resolver's own reporter, so it is the resolver's
        ending in every byte: event, terminal status, final chunk; nothing ran."""
        report = RunReporter(request, sink, self._clock, attempt, self._reconciler_id)
        await report.ending(ending, RunFacts.before_start(request.spec), at=at)

    async def _end_now(
        self, request: QueryRequest, ledger: Ledger, ending: Ending, attempt: int
    ) -> None:
        """End the query with ``ending`` without running it, and drop its log."""
        sink = self._sink(request, attempt, ledger.last_chunk_seq)
        try:
            await self._end(request, sink, ending, attempt)
        finally:
            await sink.close()
        await self._runs.delete(request.tenant, request.query_id)

    async def _complete_stream(self, request: QueryRequest, ledger: Ledger) -> None:
        """The query already has its terminal status: at most publish the missing final chunk
        (and drop a log its replica did not get to delete)."""
        assert ledger.terminal is not None
        await self._runs.delete(request.tenant, request.query_id)
        if ledger.final_chunk:
            log.info("already finished; nothing to do", phase=ledger.terminal.phase)
            return
        log.warning(
            "terminal status found without its final chunk; publishing it",
            phase=ledger.terminal.phase,
        )
        sink = self._sink(request, ledger.terminal.attempt, ledger.last_chunk_seq)
        try:
            status = ledger.terminal.status
            await sink.chunk(final_chunk(request, status, seq=1, now=self._clock.now()))
        finally:
            await sink.close()

    # -- dead letters ---------------------------------------------------------------------------

    async def end_dead_letter(self, request: QueryRequest, notice: DeadLetterNotice) -> None:
        """End a query whose work was dead-lettered (the skeleton recovered and checked it)."""
        with bound_context(query_id=request.query_id, query=request.name):
            ledger = await self._ledger.read(request.tenant, request.query_id, request.generation)
            if ledger.superseded:
                return
            if ledger.terminal is not None:
                await self._complete_stream(request, ledger)
                return
            attempt = ledger.next_attempt(notice.letter.deliveries)
            message = f"The query could not be processed: {notice.letter.reason}"
            log.warning("ending a dead-lettered query", cause=notice.cause.value, reason=message)
            await self._end_now(request, ledger, Ending.error(message), attempt)


def _waits_for(ledger: Ledger, task_id: str) -> bool:
    approval = ledger.last_status.approval if ledger.last_status is not None else None
    return approval is None or approval.task_id == task_id


def _canceled_at(cancel: CancelWatch) -> datetime | None:
    """The instant the canceller stamped (the controller's ``canceled`` status has it too)."""
    if cancel.request is None:
        return None
    try:
        return datetime.fromisoformat(cancel.request.requested_at.replace("Z", "+00:00"))
    except ValueError:
        return None


def _span_attributes(request: QueryRequest, delivery: int) -> dict[str, str | int]:
    return {
        "ark.query.id": request.query_id,
        "ark.query.name": request.name,
        "ark.query.namespace": request.namespace,
        "ark.tenant": request.tenant,
        "ark.query.generation": request.generation,
        "messaging.message.delivery_count": delivery,
    }
