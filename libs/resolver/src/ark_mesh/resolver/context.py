"""The state of one query resolution (:class:`QueryRun`) and how it reports (:class:`RunReporter`).

A :class:`QueryRun` is created per resolution and passed down explicitly (no context variables)
to agents, teams, tools and model calls. It holds the query, the ports the run works with and
what must be counted exactly once per query — token usage, model calls, the A2A ids.

Its :attr:`QueryRun.report` is the :class:`RunReporter`, the one way a run speaks to its sink:
it numbers chunks (OpenAI chunks with Ark's ``ark`` object), emits Ark operation events
(``<Operation>Start`` / ``Complete`` / ``Error``, each with its span), publishes status updates
and, at the end, the ending built by :mod:`ark_mesh.contracts.endings`. A service that ends a
query without running it (a dead letter, a cancel before the work started) reports through a
reporter too, so its ending is the resolver's, byte for byte.

Chunks and events are best-effort, as in Ark: a sink that fails to take them abandons the stream
(or drops the event) but never fails the query; status transitions are not, and propagate.

A :class:`Scope` says who is speaking (agent, team, model) and whether their tokens are streamed:
agents called as tools and selector agents run silently, as in Ark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import aiohttp
from opentelemetry.trace import StatusCode

from ark_mesh.contracts import (
    A2AMetadata,
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkUsage,
    QueryEvent,
    QueryPhase,
    QueryRequest,
    QueryStatus,
    StatusUpdate,
    TokenUsage,
    rfc3339,
)
from ark_mesh.contracts.approvals import ApprovalRequest, ToolApprovalLine
from ark_mesh.contracts.endings import (
    Ending,
    RunFacts,
    ending_event,
    final_chunk,
    query_event,
    query_identity,
    terminal_status,
)
from ark_mesh.resolver import tracing
from ark_mesh.resolver.journal import ApprovalRequired, StepJournal
from ark_mesh.resolver.ports import Clock, ModelChunk, ModelClient, ResolutionSink, ResourceStore
from ark_mesh.resolver.values import ValueResolver

__all__ = ["SYSTEM_CHUNK_ID", "QueryRun", "RunReporter", "Scope"]

log = logging.getLogger(__name__)

SYSTEM_CHUNK_ID = "chatcmpl-system"


@dataclass(frozen=True)
class Scope:
    """Who produces output at this point of the run, for chunk metadata and event data."""

    agent: str | None = None
    team: str | None = None
    model: str | None = None
    stream: bool = True

    def with_(self, **changes: Any) -> Scope:
        return replace(self, **changes)


@dataclass
class RunReporter:
    """Everything one resolution (or one service-decided ending) tells its sink, numbered once.

    ``attempt`` and ``reconciler`` are stamped on every status update; ``target_label`` and
    ``conversation_id`` are filled in as the run learns them and appear in chunks and events.
    """

    request: QueryRequest
    sink: ResolutionSink
    clock: Clock
    attempt: int = 1
    reconciler: str | None = None
    target_label: str | None = None
    conversation_id: str | None = None
    silenced: bool = False
    """Set when the run is canceled or timed out: no content chunk is sent after that."""
    stream_abandoned: bool = False
    last_chunk_seq: int = 0
    """The last chunk number used; a reporter continuing a stream starts from it."""
    round: int = 0
    """The run's approval round, stamped on every status update (see ``StatusUpdate.round``)."""
    _status_seq: int = 0

    @property
    def query_id(self) -> str:
        return self.request.query_id

    @property
    def session_id(self) -> str:
        """``spec.sessionId``, else the query UID (Ark's effective session)."""
        return self.request.spec.session_id or self.request.query_id

    # ------------------------------------------------------------------ chunks

    def _ark(self, scope: Scope, **extra: Any) -> ArkChunkMetadata:
        return ArkChunkMetadata(
            query=self.query_id,
            session=self.session_id,
            target=self.target_label,
            team=scope.team,
            agent=scope.agent,
            model=scope.model,
            **extra,
        )

    async def _send_chunk(self, chunk: Chunk, *, final: bool = False) -> None:
        """Deliver a chunk; a failing stream is abandoned, never the query (Ark's rule).

        After the first failure no further content chunks are attempted, but the final chunk
        still is, so readers that can be reached learn how the query ended. The final chunk is
        the one exception to "never the query": a stream without it never ends for its readers,
        so its failure propagates and fails the attempt, and a caller with redelivery publishes
        it from the stored terminal status (the query-reconciler's repair path).
        """
        if self.stream_abandoned and not final:
            return
        try:
            await self.sink.chunk(chunk)
        except Exception:
            if final:
                raise
            if not self.stream_abandoned:
                log.warning(
                    "query %s: chunk delivery failed, abandoning the stream",
                    self.query_id,
                    exc_info=True,
                )
            self.stream_abandoned = True

    def _next_seq(self) -> int:
        self.last_chunk_seq += 1
        return self.last_chunk_seq

    async def forward(self, chunk: ModelChunk, scope: Scope) -> None:
        """Pass one provider chunk on, as the provider sent it, with Ark's metadata.

        Nothing is forwarded once the run is silenced (canceled or timed out): the stream's
        reader must not see tokens produced after the query stopped.
        """
        if not scope.stream or self.silenced:
            return
        usage = (
            ChunkUsage(
                prompt_tokens=chunk.usage.prompt_tokens,
                completion_tokens=chunk.usage.completion_tokens,
                total_tokens=chunk.usage.total_tokens,
            )
            if chunk.usage is not None
            else None
        )
        await self._send_chunk(
            Chunk(
                id=chunk.id,
                created=chunk.created,
                model=chunk.model,
                choices=list(chunk.choices),
                usage=usage,
                ark=self._ark(scope),
                seq=self._next_seq(),
            )
        )

    async def announce(
        self, text: str, scope: Scope, *, chunk_id: str = "chatcmpl-announce"
    ) -> None:
        """Stream a whole piece of text that did not come from a model stream (an A2A reply,
        a selector's closing words) as one content chunk."""
        await self.forward(
            ModelChunk(
                id=chunk_id,
                created=int(self.clock.now().timestamp()),
                model=scope.model or scope.agent or "",
                choices=(
                    ChunkChoice(
                        delta=ChunkDelta(role="assistant", content=text), finish_reason="stop"
                    ),
                ),
            ),
            scope,
        )

    async def system_message(self, text: str, scope: Scope) -> None:
        """A system notice on the stream (e.g. a team hitting maxTurns), as Ark marks it."""
        if self.silenced:
            return
        await self._send_chunk(
            Chunk(
                id=SYSTEM_CHUNK_ID,
                created=int(self.clock.now().timestamp()),
                model=scope.model or "",
                choices=[ChunkChoice(delta=ChunkDelta(role="system", content=text))],
                ark=self._ark(scope, system_message=text),
                seq=self._next_seq(),
            )
        )

    async def tool_approval(self, line: ToolApprovalLine, scope: Scope) -> None:
        """Ark's ``tool_approval_request`` / ``…_response`` line, as a chunk without choices
        whose ``ark.toolApproval`` renderers print in its place."""
        await self._send_chunk(
            Chunk(
                id=f"chatcmpl-approval-{line.task_id}",
                created=int(self.clock.now().timestamp()),
                model=scope.model or "",
                choices=[],
                ark=self._ark(scope, tool_approval=line),
                seq=self._next_seq(),
            )
        )

    async def final_chunk(self, status: QueryStatus, *, now: datetime | None = None) -> None:
        """The last chunk (:func:`~ark_mesh.contracts.endings.final_chunk`)."""
        moment = now or self.clock.now()
        chunk = final_chunk(self.request, status, seq=self._next_seq(), now=moment)
        await self._send_chunk(chunk, final=True)

    # ------------------------------------------------------------------ status

    async def status(
        self, phase: QueryPhase, status: QueryStatus, *, approval: ApprovalRequest | None = None
    ) -> None:
        """Publish a status transition; unlike chunks and events, a failure propagates.
        ``approval`` accompanies ``input-required``: the writer creates the approval's task."""
        self._status_seq += 1
        request = self.request
        await self.sink.status(
            StatusUpdate(
                query_id=request.query_id,
                name=request.name,
                namespace=request.namespace,
                tenant=request.tenant,
                generation=request.generation,
                attempt=self.attempt,
                seq=self._status_seq,
                phase=phase,
                status=status,
                timestamp=rfc3339(self.clock.now()),
                reconciler=self.reconciler,
                round=self.round,
                approval=approval,
                has_resource=request.has_resource,
            )
        )

    async def ending(
        self, ending: Ending, facts: RunFacts, *, at: datetime | None = None
    ) -> QueryStatus:
        """Report how the query ended: the ending event, the terminal status, the final chunk
        (in that order, as every reader expects), all from :mod:`ark_mesh.contracts.endings`
        and all stamped with the same instant (``at``, default now), so the three describe one
        moment."""
        now = at or self.clock.now()
        status = terminal_status(ending, facts, now=now, generation=self.request.generation)
        await self._deliver_event(ending_event(self.request, ending, facts, now=now))
        await self.status(ending.phase, status)
        await self.final_chunk(status, now=now)
        return status

    # ------------------------------------------------------------------ events

    def _common(self) -> dict[str, str]:
        return query_identity(self.request, self.conversation_id)

    async def event(
        self,
        reason: str,
        message: str,
        data: Mapping[str, str] | None = None,
        *,
        event_type: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        await self._deliver_event(
            query_event(
                self.request,
                reason,
                message,
                data,
                now=self.clock.now(),
                conversation_id=self.conversation_id,
                event_type=event_type,
            )
        )

    async def _deliver_event(self, event: QueryEvent) -> None:
        # Operation events are best-effort in Ark too: losing one must not fail the query.
        try:
            await self.sink.event(event)
        except Exception:
            log.warning(
                "query %s: event %s not delivered", self.query_id, event.reason, exc_info=True
            )

    @asynccontextmanager
    async def operation(
        self, name: str, message: str, data: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, str]]:
        """Emit ``<name>Start``, then ``<name>Complete`` or ``<name>Error`` with ``durationMs``.

        The yielded dict may be extended by the body (e.g. token counts for Complete).
        Cancellation emits nothing here: the query-level ``QueryExecutionCanceled`` says it;
        nor does a pause for approval, which is not an end.
        """
        details = dict(data or {})
        started = self.clock.monotonic()
        await self.event(f"{name}Start", message, details)
        with tracing.TRACER.start_as_current_span(
            tracing.operation_span_name(name, details),
            kind=tracing.span_kind(name),
            attributes=tracing.span_attributes(name, {**self._common(), **details}),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield details
            except asyncio.CancelledError:
                span.set_status(StatusCode.ERROR, "canceled")
                raise
            except ApprovalRequired:
                span.set_attribute("ark.paused", True)
                raise  # a pause, not a failure: the query reports ``input-required``
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                elapsed = str(int((self.clock.monotonic() - started) * 1000))
                await self.event(
                    f"{name}Error",
                    f"{message} failed: {exc}",
                    {**details, "durationMs": elapsed, "error": str(exc)},
                    event_type="Warning",
                )
                raise
            tracing.record_usage(span, details)
        elapsed = str(int((self.clock.monotonic() - started) * 1000))
        await self.event(
            f"{name}Complete", f"{message} completed", {**details, "durationMs": elapsed}
        )


@dataclass
class QueryRun:
    """One resolution of one Query: identity, the ports it works with, what it counts, and
    :attr:`report`, the way it speaks to its sink."""

    request: QueryRequest
    report: RunReporter
    store: ResourceStore
    models: ModelClient
    http: aiohttp.ClientSession
    clock: Clock
    values: ValueResolver
    journal: StepJournal
    """The run's step log: what to replay, what has been recorded (:mod:`.journal`)."""
    usage: TokenUsage = field(default_factory=TokenUsage)
    llm_calls: int = 0
    a2a: A2AMetadata | None = None
    streams_model_calls: bool = False
    """Whether model calls are streamed from the provider (:mod:`ark_mesh.resolver.streaming`)."""

    @property
    def query_id(self) -> str:
        return self.request.query_id

    @property
    def namespace(self) -> str:
        return self.request.namespace

    @property
    def session_id(self) -> str:
        """``spec.sessionId``, else the query UID (Ark's effective session)."""
        return self.report.session_id

    def annotation(self, key: str) -> str | None:
        return (self.request.annotations or {}).get(key)

    def add_usage(self, usage: TokenUsage) -> None:
        self.usage = self.usage + usage
