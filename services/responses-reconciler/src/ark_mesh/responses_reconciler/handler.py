"""One delivery of a ``ResponsesRequest``: answer it, report exactly one result.

* ``model/<name>``: the caller's whole ``messages`` go to the model in one streamed completion,
  through the resolver's own pieces — :func:`~ark_mesh.resolver.models.endpoint_for` (provider,
  secrets, properties), :func:`~ark_mesh.resolver.llm.complete` (chunk forwarding with Ark's
  metadata, usage) and the shared :class:`~ark_mesh.resolver.ModelClient`.
* ``agent/<name>`` / ``team/<name>``: run as a Query through
  :class:`~ark_mesh.resolver.QueryReconciler`, exactly as the query-reconciler does; the last
  user message is the input (the resolver reads history only from a Memory resource).

A transient model failure (429/5xx, dropped connection) is raised as the bus's
:class:`~ark_mesh.bus.TransientError` so the worker redelivers with backoff; anything permanent
ends the request with a ``failed`` result naming the problem. :meth:`ResponsesWork.end_dead_letter`
answers a request the bus gave up on (MaxDeliver used up) with a ``failed`` result, so no caller
waits forever; the tenant check of each delivery and dead letter is the service skeleton's.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp

from ark_mesh.bus import DeadLetterNotice, MessageContext, Publisher, TransientError
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    Model,
    QueryResponse,
    QueryStatus,
    QueryTarget,
    ResponsesRequest,
    ResponsesResult,
    TokenUsage,
    rfc3339,
)
from ark_mesh.resolver import (
    DEFAULT_TIMEOUT,
    ChatRequest,
    ModelClient,
    ModelUnavailableError,
    PermanentResolutionError,
    QueryReconciler,
    ResourceStore,
    SystemClock,
    TransientResolutionError,
    ValueResolver,
    endpoint_for,
)
from ark_mesh.resolver.context import FINAL_CHUNK_ID, QueryRun, Scope
from ark_mesh.resolver.llm import complete
from ark_mesh.responses_reconciler.errors import (
    InvalidRequestError,
    ResponsesError,
    UnknownTargetError,
)
from ark_mesh.responses_reconciler.sink import ResponsesSink
from ark_mesh.responses_reconciler.translate import (
    Target,
    as_query_request,
    earlier_messages,
    parse_target,
    timeout_of,
)
from ark_mesh.telemetry import bound_context, get_logger

__all__ = ["ResponsesWork"]

log = get_logger(__name__)


class ResponsesWork:
    """The worker's handler and dead-letter callback; shared by every delivery of a replica."""

    def __init__(
        self,
        publisher: Publisher,
        store: ResourceStore,
        *,
        models: ModelClient,
        http: aiohttp.ClientSession,
        reconciler_id: str,
        default_timeout: timedelta = DEFAULT_TIMEOUT,
    ) -> None:
        self._publisher = publisher
        self._store = store
        self._models = models
        self._http = http
        self._reconciler_id = reconciler_id
        self._default_timeout = default_timeout
        self._clock = SystemClock()

    async def handle(self, request: ResponsesRequest, context: MessageContext) -> None:
        with bound_context(request_id=request.request_id, target=request.target):
            sink = ResponsesSink(
                self._publisher, request.tenant, request.request_id, stream=request.stream
            )
            try:
                result = await self._answer(request, sink, context.delivery)
            except TransientResolutionError as exc:
                delay = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
                log.info("transient failure; the request will be redelivered", error=str(exc))
                raise TransientError(str(exc), delay=delay) from exc
            except (ResponsesError, PermanentResolutionError) as exc:
                log.info("request failed", error=str(exc))
                result = _failed(request, str(exc))
                await _end_stream(sink, request, result)
            await sink.result(result)

    async def _answer(
        self, request: ResponsesRequest, sink: ResponsesSink, delivery: int
    ) -> ResponsesResult:
        target = parse_target(request.target)
        if target.type == "model":
            return await self._model(request, target, sink)
        query = as_query_request(request, target)
        reconciler = QueryReconciler(
            self._store,
            models=self._models,
            http=self._http,
            reconciler_id=self._reconciler_id,
            default_timeout=self._default_timeout,
        )
        # The resolver reports its own ending (final chunk included) through the sink.
        status = await reconciler.resolve(
            query,
            sink,
            attempt=delivery,
            raise_transient=True,
            history=earlier_messages(request.messages),
        )
        return _from_status(request, status)

    async def _model(
        self, request: ResponsesRequest, target: Target, sink: ResponsesSink
    ) -> ResponsesResult:
        if not request.messages:
            raise InvalidRequestError("messages: at least one message is required")
        budget = timeout_of(request, self._default_timeout)
        if request.deadline and _parse_instant(request.deadline) <= self._clock.now():
            raise InvalidRequestError("the request was not started before its deadline")
        model = await self._store.get(Model, request.namespace, target.name)
        if model is None:
            raise UnknownTargetError(
                f"Model '{target.name}' not found in namespace '{request.namespace}'"
            )
        query = as_query_request(request, target, input_text="")
        run = QueryRun(
            request=query,
            sink=sink,
            store=self._store,
            models=self._models,
            http=self._http,
            clock=self._clock,
            values=ValueResolver(self._store, request.namespace),
            target_label=target.label,
            conversation_id=request.conversation_id,
            streams_model_calls=request.stream,
        )
        endpoint = await endpoint_for(model, run.values)
        try:
            async with asyncio.timeout(budget.total_seconds()):
                completion = await complete(
                    run,
                    Scope(model=target.name),
                    endpoint,
                    ChatRequest(messages=request.messages),
                )
        except TimeoutError as exc:
            raise InvalidRequestError(
                f"model '{target.name}' did not answer within {budget.total_seconds():g}s"
            ) from exc
        result = ResponsesResult(
            request_id=request.request_id,
            tenant=request.tenant,
            status="completed",
            message=completion.message,
            usage=run.usage,
            conversation_id=request.conversation_id,
            finished_at=_now(),
        )
        await _end_stream(sink, request, result)
        return result

    async def end_dead_letter(self, request: ResponsesRequest, notice: DeadLetterNotice) -> None:
        """Answer a request whose work was dead-lettered (the skeleton decoded and checked it)."""
        message = f"The request could not be processed: {notice.letter.reason}"
        log.warning("answering a dead-lettered request", request_id=request.request_id)
        sink = ResponsesSink(
            self._publisher, request.tenant, request.request_id, stream=request.stream
        )
        result = _failed(request, message)
        await _end_stream(sink, request, result)
        await sink.result(result)


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def _parse_instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequestError(f"deadline {text!r} is not RFC 3339") from exc


def _failed(request: ResponsesRequest, error: str) -> ResponsesResult:
    return ResponsesResult(
        request_id=request.request_id,
        tenant=request.tenant,
        status="failed",
        error=error,
        conversation_id=request.conversation_id,
        finished_at=_now(),
    )


def _from_status(request: ResponsesRequest, status: QueryStatus) -> ResponsesResult:
    """The result of an agent or team target, from the resolver's terminal status."""
    content = status.response.content if status.response is not None else ""
    conversation_id = status.conversation_id or request.conversation_id
    if status.phase == "done":
        return ResponsesResult(
            request_id=request.request_id,
            tenant=request.tenant,
            status="completed",
            message={"role": "assistant", "content": content},
            usage=status.token_usage,
            conversation_id=conversation_id,
            finished_at=_now(),
        )
    return ResponsesResult(
        request_id=request.request_id,
        tenant=request.tenant,
        status="canceled" if status.phase == "canceled" else "failed",
        error=status.error or content or f"the query ended in phase {status.phase}",
        usage=status.token_usage,
        conversation_id=conversation_id,
        finished_at=_now(),
    )


async def _end_stream(
    sink: ResponsesSink, request: ResponsesRequest, result: ResponsesResult
) -> None:
    """Close a streaming caller's chunk stream with the final chunk, unless already sent.

    The final chunk carries the outcome as a completed Query (``ark.completedQuery``), the shape
    every chunk reader already knows from queries.
    """
    if not request.stream or sink.final_sent:
        return
    phase = {"completed": "done", "failed": "error", "canceled": "canceled"}[result.status]
    content = result.error or ""
    if result.message is not None:
        content = str(result.message.get("content") or "")
    target = _query_target(request.target)
    status = QueryStatus(
        phase=phase,  # type: ignore[arg-type]  # the three values are QueryPhase literals
        response=QueryResponse(target=target, content=content),
        token_usage=result.usage or TokenUsage(),
        conversation_id=result.conversation_id,
        error=result.error,
    )
    query = as_query_request(request, _target_or_model(request.target), input_text="")
    await sink.chunk(
        Chunk(
            id=FINAL_CHUNK_ID,
            created=int(time.time()),
            model=request.request_id,
            choices=[ChunkChoice(delta=ChunkDelta(content=""))],
            ark=ArkChunkMetadata(
                query=request.request_id,
                session=request.session_id or request.request_id,
                target=request.target,
                completed_query=query.as_query(status),
            ),
            seq=sink.last_seq + 1,
        )
    )


def _target_or_model(raw: str) -> Target:
    try:
        return parse_target(raw)
    except InvalidRequestError:
        return Target("model", raw or "unknown")


def _query_target(raw: str) -> QueryTarget:
    target = _target_or_model(raw)
    return QueryTarget(type=target.type, name=target.name)
