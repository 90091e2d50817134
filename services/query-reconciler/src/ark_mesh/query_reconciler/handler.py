"""One delivery of a ``QueryRequest``: decide, resolve, report — exactly one outcome per query.

For each delivery the :class:`QueryWork` handler

1. reads the query's :class:`~ark_mesh.query_reconciler.ledger.Ledger`. If a terminal status
   of this generation is already published (the previous replica finished but died before its
   ack, or a duplicate submit), it does not run the query again: it only publishes the final
   chunk if that is missing, built from the terminal status, and acks. Work for a generation
   older than one already reported is stale and acked untouched;
2. watches the query's cancel channel (core subject + KV flag). A flag raised before the work
   started ends the query ``canceled`` without running it;
3. otherwise runs :meth:`QueryResolver.resolve` with a
   :class:`~ark_mesh.query_reconciler.sink.JetStreamSink` (chunk numbering continuing after
   any earlier attempt), ``attempt`` after any reported attempt, and the cancel watch as the
   cancel event, so a ``CancelRequest`` stops the live model stream. The start-by ``deadline``
   (``TimedOutInQueue``) is the resolver's to enforce; it is dropped on a *restart* — an
   earlier attempt already started in time, and the restart gets a fresh ``spec.timeout``
   (MaxDeliver bounds the total);
4. maps a transient resolver failure (provider 429/5xx, dropped connection) to the bus's
   :class:`~ark_mesh.bus.TransientError`, honouring a provider's ``Retry-After``: the worker
   redelivers with backoff. Permanent failures end the query in ``error`` inside the resolver.

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
    CancelChannel,
    CancelWatch,
    DeadLetterNotice,
    MessageContext,
    Publisher,
    TransientError,
)
from ark_mesh.contracts import QueryRequest
from ark_mesh.contracts.endings import Ending, RunFacts, final_chunk
from ark_mesh.query_reconciler.config import ChunkStreamConfig, MemoryConfig
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

__all__ = ["RESTART_NOTICE", "QueryWork"]

log = get_logger(__name__)

RESTART_NOTICE = (
    "The previous attempt of this query was interrupted; the query restarts and its output "
    "follows. Output above this line is superseded."
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
            await self._handle(request, context.delivery)

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
        sink = self._sink(request, attempt, ledger)
        try:
            async with self._cancels.watch(request.tenant, request.query_id) as cancel:
                if cancel.is_set():
                    reason = cancel.request.reason if cancel.request is not None else None
                    log.info("canceled before it started", reason=reason)
                    at = _canceled_at(cancel)
                    await self._end(request, sink, Ending.canceled(), attempt, at=at)
                    return
                if ledger.started:
                    request = msgspec.structs.replace(request, deadline=None)
                    if ledger.last_chunk_seq:
                        await sink.notice(RESTART_NOTICE)
                    log.info("restarting an interrupted query", attempt=attempt)
                resolver = self._resolver(request)
                try:
                    status = await resolver.resolve(
                        request,
                        sink,
                        cancel=cancel,
                        attempt=attempt,
                        raise_transient=True,
                        canceled_at=lambda: _canceled_at(cancel),
                    )
                except TransientResolutionError as exc:
                    delay = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
                    raise TransientError(str(exc), delay=delay) from exc
                log.info("query resolved", phase=status.phase, attempt=attempt)
        finally:
            await sink.close()

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

    def _sink(self, request: QueryRequest, attempt: int, ledger: Ledger) -> JetStreamSink:
        return JetStreamSink(
            self._publisher,
            request,
            attempt=attempt,
            chunk_offset=ledger.last_chunk_seq,
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

    async def _complete_stream(self, request: QueryRequest, ledger: Ledger) -> None:
        """The query already has its terminal status: at most publish the missing final chunk."""
        assert ledger.terminal is not None
        if ledger.final_chunk:
            log.info("already finished; nothing to do", phase=ledger.terminal.phase)
            return
        log.warning(
            "terminal status found without its final chunk; publishing it",
            phase=ledger.terminal.phase,
        )
        sink = self._sink(request, ledger.terminal.attempt, ledger)
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
            sink = self._sink(request, attempt, ledger)
            try:
                await self._end(request, sink, Ending.error(message), attempt)
            finally:
                await sink.close()


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
