"""One delivery of a ``ResponsesRequest``: answer it, report exactly one result.

* ``model/<name>``: the caller's whole ``messages`` go to the model in one streamed completion,
  through the resolver's public model call, :meth:`~ark_mesh.resolver.QueryResolver.call_model`
  (provider, secrets, chunk forwarding with Ark's metadata, usage).
* ``agent/<name>`` / ``team/<name>``: run as a Query through
  :class:`~ark_mesh.resolver.QueryResolver`, exactly as the query-reconciler does; the last
  user message is the input (the resolver reads history only from a Memory resource).

Before it runs, a delivery looks at what earlier attempts left on the request's subjects: a
result there means the request was answered (a duplicate delivery: nothing is done again); the
last chunk's ``seq`` is where this attempt's chunks continue (after a restart notice), so a
retry after partial streaming never renumbers chunks. The request's cancel channel
(``ark.<t>.query.<request_id>.cancel`` plus the ``ark-cancel`` flag, as for queries) is
watched for the whole run: a cancel — the broker sends one when its client goes away or its
wait runs out — stops the model call or the agent run and answers ``canceled``.

A transient model failure (429/5xx, dropped connection) is raised as the bus's
:class:`~ark_mesh.bus.TransientError` so the worker redelivers with backoff; anything permanent
ends the request with a ``failed`` result naming the problem. :meth:`ResponsesWork.end_dead_letter`
answers a request the bus gave up on (MaxDeliver used up) with a ``failed`` result, so no caller
waits forever; the tenant check of each delivery and dead letter is the service skeleton's.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import aiohttp

from ark_mesh.bus import (
    CancelChannel,
    CancelWatch,
    DeadLetterNotice,
    MessageContext,
    Publisher,
    StreamReader,
    TransientError,
)
from ark_mesh.contracts import (
    Chunk,
    QueryStatus,
    QueryTarget,
    ResponsesRequest,
    ResponsesResult,
    TokenUsage,
    lenient_decoder_for,
    rfc3339,
    subjects,
)
from ark_mesh.contracts.endings import Ending, RunFacts
from ark_mesh.resolver import (
    DEFAULT_TIMEOUT,
    ModelClient,
    ModelUnavailableError,
    PermanentResolutionError,
    QueryResolver,
    ResourceStore,
    RunReporter,
    SystemClock,
    TransientResolutionError,
)
from ark_mesh.responses_reconciler.errors import (
    InvalidRequestError,
    ResponsesError,
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

RESTART_NOTICE = (
    "The previous attempt of this request was interrupted; it restarts and its output "
    "follows. Output above this line is superseded."
)
_chunk_or_none = lenient_decoder_for(Chunk)
_result_or_none = lenient_decoder_for(ResponsesResult)

PAUSE_REFUSED = (
    "{target} called a tool that needs human approval, which a chat completion cannot wait "
    "for; send it as a query (POST /v1/queries or a Query resource) to approve it"
)


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
        cancels: CancelChannel,
        reader: StreamReader,
        default_timeout: timedelta = DEFAULT_TIMEOUT,
    ) -> None:
        self._publisher = publisher
        self._cancels = cancels
        self._reader = reader
        self._store = store
        self._models = models
        self._http = http
        self._reconciler_id = reconciler_id
        self._default_timeout = default_timeout
        self._clock = SystemClock()

    async def handle(self, request: ResponsesRequest, context: MessageContext) -> None:
        with bound_context(request_id=request.request_id, target=request.target):
            tenant, request_id = request.tenant, request.request_id
            answered = await self._reader.last(
                subjects.query_result(tenant, request_id), decoder=_result_or_none
            )
            if answered is not None and answered.message is not None:
                log.info("the request was answered already; duplicate delivery ignored")
                return
            offset = await self._chunk_offset(request)
            sink = ResponsesSink(
                self._publisher,
                tenant,
                request_id,
                stream=request.stream,
                offset=offset,
                session=request.session_id,
            )
            async with self._cancels.watch(tenant, request_id) as cancel:
                try:
                    if cancel.is_set():
                        log.info("canceled before it started")
                        result = _canceled(request)
                        await self._end_stream(sink, request, result)
                    else:
                        if offset:
                            await sink.notice(RESTART_NOTICE)
                        result = await self._answer(request, sink, context.delivery, cancel)
                except TransientResolutionError as exc:
                    delay = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
                    log.info("transient failure; the request will be redelivered", error=str(exc))
                    raise TransientError(str(exc), delay=delay) from exc
                except (ResponsesError, PermanentResolutionError) as exc:
                    log.info("request failed", error=str(exc))
                    result = _failed(request, str(exc))
                    await self._end_stream(sink, request, result)
            await sink.result(result)

    async def _chunk_offset(self, request: ResponsesRequest) -> int:
        """The ``seq`` of the last chunk an earlier attempt published (0: none)."""
        if not request.stream:
            return 0
        last = await self._reader.last(
            subjects.query_chunk(request.tenant, request.request_id), decoder=_chunk_or_none
        )
        return last.message.seq if last is not None and last.message is not None else 0

    async def _answer(
        self, request: ResponsesRequest, sink: ResponsesSink, delivery: int, cancel: CancelWatch
    ) -> ResponsesResult:
        target = parse_target(request.target)
        if target.type == "model":
            return await self._model(request, target, sink, cancel)
        query = as_query_request(request, target)
        # The resolver reports its own ending (final chunk included) through the sink.
        status = await self._resolver().resolve(
            query,
            sink,
            cancel=cancel,
            attempt=delivery,
            raise_transient=True,
            history=earlier_messages(request.messages),
        )
        if status.phase == "input-required":
            # A chat request cannot wait for a human: there is no round trip to resume it by.
            # It ends here, stream included; a query (POST /v1/queries) can wait.
            result = _failed(request, PAUSE_REFUSED.format(target=request.target))
            await self._end_stream(sink, request, result)
            return result
        return _from_status(request, status)

    def _resolver(self) -> QueryResolver:
        return QueryResolver(
            self._store,
            models=self._models,
            http=self._http,
            reconciler_id=self._reconciler_id,
            default_timeout=self._default_timeout,
        )

    async def _model(
        self, request: ResponsesRequest, target: Target, sink: ResponsesSink, cancel: CancelWatch
    ) -> ResponsesResult:
        if not request.messages:
            raise InvalidRequestError("messages: at least one message is required")
        budget = timeout_of(request, self._default_timeout)
        if request.deadline and _parse_instant(request.deadline) <= self._clock.now():
            raise InvalidRequestError("the request was not started before its deadline")
        query = as_query_request(request, target, input_text="")
        call = asyncio.ensure_future(
            self._resolver().call_model(query, sink, request.messages, stream=request.stream)
        )
        stop = asyncio.ensure_future(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {call, stop}, timeout=budget.total_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (call, stop):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if call not in done:
            if cancel.is_set():
                log.info("canceled while the model answered")
                canceled = _canceled(request)
                await self._end_stream(sink, request, canceled)
                return canceled
            raise InvalidRequestError(
                f"model '{target.name}' did not answer within {budget.total_seconds():g}s"
            )
        completion = call.result()
        result = ResponsesResult(
            request_id=request.request_id,
            tenant=request.tenant,
            status="completed",
            message=completion.message,
            usage=completion.usage,
            conversation_id=request.conversation_id,
            finished_at=_now(),
        )
        await self._end_stream(sink, request, result)
        return result

    async def end_dead_letter(self, request: ResponsesRequest, notice: DeadLetterNotice) -> None:
        """Answer a request whose work was dead-lettered (the skeleton decoded and checked it)."""
        message = f"The request could not be processed: {notice.letter.reason}"
        log.warning("answering a dead-lettered request", request_id=request.request_id)
        sink = ResponsesSink(
            self._publisher,
            request.tenant,
            request.request_id,
            stream=request.stream,
            offset=await self._chunk_offset(request),
        )
        result = _failed(request, message)
        await self._end_stream(sink, request, result)
        await sink.result(result)

    async def _end_stream(
        self, sink: ResponsesSink, request: ResponsesRequest, result: ResponsesResult
    ) -> None:
        """Close a streaming caller's chunk stream with the final chunk, unless already sent.

        The ending is reported through the resolver's reporter (after the chunks already on the
        stream), so the final chunk is a query's final chunk: ``ark.completedQuery`` with the
        terminal status every chunk reader already knows.
        """
        if not request.stream or sink.final_sent:
            return
        query = as_query_request(request, _target_or_model(request.target), input_text="")
        report = RunReporter(query, sink, self._clock, reconciler=self._reconciler_id)
        report.last_chunk_seq = sink.last_seq
        facts = RunFacts(
            target=_query_target(request.target),
            usage=result.usage or TokenUsage(),
            conversation_id=result.conversation_id,
        )
        await report.ending(_ending_of(result), facts)


def _ending_of(result: ResponsesResult) -> Ending:
    """The query ending a responses result stands for."""
    if result.status == "completed":
        return Ending.done([result.message] if result.message is not None else [])
    if result.status == "canceled":
        return Ending.canceled()
    return Ending.error(result.error or "the request failed")


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def _parse_instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequestError(f"deadline {text!r} is not RFC 3339") from exc


def _canceled(request: ResponsesRequest) -> ResponsesResult:
    return ResponsesResult(
        request_id=request.request_id,
        tenant=request.tenant,
        status="canceled",
        error="the request was canceled",
        conversation_id=request.conversation_id,
        finished_at=_now(),
    )


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


def _target_or_model(raw: str) -> Target:
    try:
        return parse_target(raw)
    except InvalidRequestError:
        return Target("model", raw or "unknown")


def _query_target(raw: str) -> QueryTarget:
    target = _target_or_model(raw)
    return QueryTarget(type=target.type, name=target.name)
