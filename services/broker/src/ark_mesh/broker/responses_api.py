"""OpenAI's Responses API (``POST``/``GET /openai/v1/responses``) and chat completions on a
Model, both answered by the responses-reconciler.

``POST /openai/v1/responses`` turns the body into a conversation — the stored conversation of
``previous_response_id`` (KV ``ark-responses``, :mod:`.conversations`), then ``instructions``
as a system message, then ``input`` (a string, or input items / messages) — and sends it whole
in one :class:`~ark_mesh.contracts.ResponsesRequest` (:mod:`.responses_bus`): the reconciler
needs no memory of its own, so any replica answers any turn. A completed response is stored
(unless ``store: false``) under its ``resp_…`` id with the conversation through it, so any
broker replica continues it.

Non-streaming, the answer is OpenAI's ``response`` object; streaming, the chunks are re-encoded
as Responses events (``event: response.created`` … ``response.completed``, numbered by
``sequence_number``; ``response.failed`` when the run failed). The text of
``response.output_text.done`` and ``response.completed`` is the result's, which is
authoritative: deltas streamed before a restart of the request (a redelivery after partial
streaming, announced on the chunk subject by a system chunk) are not repeated or retracted.

``POST /openai/v1/chat/completions`` with ``model: model/<name>`` goes here too
(:func:`chat_on_model`): the whole ``messages`` list is the conversation, and the answers keep
the shapes of the query path (the same chunks through :class:`~.openai_compat.ChunkShaper`, the
same ``chat.completion`` with ``ark.queryStatus``).

Every request is canceled through its cancel channel when its client goes away or its wait
runs out (:meth:`~.responses_bus.ResponsesBroker.cancel`), so no reconciler keeps running for
nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from ark_mesh.broker.bodies import ChatCompletionRequest, decode_body, is_name
from ark_mesh.broker.conversations import StoredResponse
from ark_mesh.broker.errors import BadRequestError, GatewayTimeoutError, NotFoundError
from ark_mesh.broker.openai_compat import (
    ChunkShaper,
    chat_completion,
    completion_error,
    openai_error,
    read_failure,
)
from ark_mesh.broker.responses import (
    OpenAIResponse,
    OpenAIResponseDeleted,
    OpenAIResponseError,
    OpenAIResponseMessage,
    OpenAIResponseOutputText,
    OpenAIResponseUsage,
)
from ark_mesh.broker.responses_bus import ResponsesBroker
from ark_mesh.broker.sse import SSE_HEADERS, comment, event
from ark_mesh.broker.streaming import close_entries, end_stream
from ark_mesh.bus import BusError, NatsError, StreamEntry
from ark_mesh.contracts import (
    Chunk,
    DurationError,
    QueryResponse,
    QueryStatus,
    QueryTarget,
    ResponsesResult,
    TokenUsage,
    parse_duration,
)
from ark_mesh.telemetry import bound_context, get_logger

__all__ = [
    "ResponseEvents",
    "ResponsesCreateRequest",
    "chat_on_model",
    "create_response",
    "delete_response",
    "get_response",
    "input_messages",
]

_log = get_logger(__name__)
_encoder = msgspec.json.Encoder()
T = TypeVar("T")

_TARGET_PATTERN = "^(agent|team|model|tool)/.+$"
_RESPONSE_ID = re.compile(r"^resp_[A-Za-z0-9_-]{1,200}$")
# What a failed result says when its target does not exist: the responses-reconciler's own
# words for a Model target, the resolver's for an Agent or Team.
_UNKNOWN_TARGET = re.compile(
    r"^Model '.*' not found in namespace '[^']*'$"
    r"|target references (agent|team|model|tool) '.*' which does not exist in namespace",
    re.DOTALL,
)
_RESULT_WAIT = 30.0
"""Seconds a stream waits for the result once its final chunk is in (published right after)."""
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


class ResponsesCreateRequest(msgspec.Struct, kw_only=True):
    """``POST /openai/v1/responses``: OpenAI's body (``model`` is ``agent/<name>``,
    ``team/…``, ``model/…`` or ``tool/…``). Parameters a target of the mesh cannot
    honour are refused by name (``tools``, ``background``, ``conversation``); sampling ones
    (``temperature``, ``max_output_tokens`` …) are accepted and, as for chat completions, not
    forwarded (the Model or Agent resource configures its model)."""

    model: Annotated[
        str, msgspec.Meta(min_length=1, extra_json_schema={"pattern": _TARGET_PATTERN})
    ]
    input: Annotated[
        str | list[dict[str, Any]],
        msgspec.Meta(
            extra_json_schema={
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "object"}},
                ]
            }
        ),
    ]
    instructions: str | None = None
    stream: bool = False
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    store: bool = True
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    background: bool | None = None
    conversation: Any = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None

    def target(self) -> str:
        kind, _, name = self.model.partition("/")
        if kind not in ("agent", "team", "model", "tool") or not name:
            raise BadRequestError(
                "model must be 'agent/<name>', 'team/<name>', 'model/<name>' or 'tool/<name>', "
                f"got {self.model!r}",
                field="model",
                status=400,
            )
        return self.model

    def refuse_unsupported(self) -> None:
        if self.tools:
            raise BadRequestError(
                "tools are not supported: the Agent resource declares its tools",
                field="tools",
                status=400,
            )
        if self.background:
            raise BadRequestError(
                "background responses are not supported; stream, or use /v1/queries",
                field="background",
                status=400,
            )
        if self.conversation is not None:
            raise BadRequestError(
                "conversation objects are not supported; continue with previous_response_id",
                field="conversation",
                status=400,
            )
        if self.previous_response_id is not None and not _RESPONSE_ID.match(
            self.previous_response_id
        ):
            raise BadRequestError(
                f"previous_response_id {self.previous_response_id!r} is not a response id "
                "('resp_…')",
                field="previous_response_id",
                status=400,
            )

    def meta(self, key: str) -> str | None:
        value = (self.metadata or {}).get(key)
        return value or None


# --------------------------------------------------------------------------- input


def _content(content: Any, field: str) -> str | list[dict[str, Any]]:
    """A message's content as chat messages carry it: a string, or text/image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise BadRequestError(
            "content must be a string or a non-empty list of parts", field=field, status=400
        )
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise BadRequestError(
                f"content part type {kind!r} is not supported (input_text, output_text, "
                "input_image with image_url)",
                field=f"{field}[{index}].type",
                status=400,
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses ``input`` as OpenAI chat messages. Items are messages (``type: message``
    or just ``role`` and ``content``; ``developer`` becomes ``system``); other item types (tool
    calls and their outputs, reasoning …) are refused by name — the mesh runs tools itself."""
    if isinstance(value, str):
        if not value:
            raise BadRequestError("input must not be empty", field="input", status=400)
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        field = f"input[{index}]"
        kind = item.get("type", "message")
        if kind != "message":
            raise BadRequestError(
                f"input item type {kind!r} is not supported (messages only)",
                field=f"{field}.type",
                status=400,
            )
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise BadRequestError(
                f"role {item.get('role')!r} is not one of user, assistant, system, developer",
                field=f"{field}.role",
                status=400,
            )
        messages.append(
            {"role": role, "content": _content(item.get("content"), f"{field}.content")}
        )
    if not messages:
        raise BadRequestError("input must hold at least one message", field="input", status=400)
    return messages


def _text_of(message: dict[str, Any] | None) -> str:
    content = (message or {}).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --------------------------------------------------------------------------- shapes


def _usage(result: ResponsesResult | None) -> OpenAIResponseUsage:
    usage = (result.usage if result is not None else None) or TokenUsage()
    return OpenAIResponseUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


class _Turn:
    """One response being made: its ids, what was asked, and the object it is rendered as."""

    def __init__(
        self, body: ResponsesCreateRequest, response_id: str, conversation: list[dict[str, Any]]
    ) -> None:
        self.body = body
        self.id = response_id
        self.item_id = f"msg_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.conversation = conversation

    def response(
        self,
        status: Any,
        *,
        text: str | None = None,
        item_status: Any = "completed",
        result: ResponsesResult | None = None,
        error: str | None = None,
    ) -> OpenAIResponse:
        output = []
        if text is not None:
            output.append(self.message(text, item_status))
        return OpenAIResponse(
            id=self.id,
            created_at=self.created_at,
            completed_at=int(time.time()) if status == "completed" else None,
            status=status,
            model=self.body.model,
            output=output,
            instructions=self.body.instructions,
            previous_response_id=self.body.previous_response_id,
            metadata=dict(self.body.metadata or {}),
            error=OpenAIResponseError(code="server_error", message=error)
            if error is not None
            else None,
            usage=_usage(result) if result is not None else None,
            store=self.body.store,
            temperature=self.body.temperature,
            top_p=self.body.top_p,
        )

    def message(self, text: str, status: Any = "completed") -> OpenAIResponseMessage:
        return OpenAIResponseMessage(
            id=self.item_id,
            status=status,
            content=[OpenAIResponseOutputText(text=text)] if status == "completed" else [],
        )

    def stored(self, result: ResponsesResult) -> StoredResponse:
        usage = _usage(result)
        answer = {"role": "assistant", "content": _text_of(result.message)}
        return StoredResponse(
            id=self.id,
            tenant=result.tenant,
            model=self.body.model,
            created_at=self.created_at,
            completed_at=int(time.time()),
            conversation=[*self.conversation, answer],
            output_text=answer["content"],
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            instructions=self.body.instructions,
            metadata=dict(self.body.metadata) if self.body.metadata else None,
            previous_response_id=self.body.previous_response_id,
        )


def stored_response(stored: StoredResponse) -> OpenAIResponse:
    """The ``response`` object of a stored response (``GET /openai/v1/responses/{id}``)."""
    return OpenAIResponse(
        id=stored.id,
        created_at=stored.created_at,
        completed_at=stored.completed_at,
        status="completed",
        model=stored.model,
        output=[
            OpenAIResponseMessage(
                id=f"msg_{stored.id.removeprefix('resp_')}",
                status="completed",
                content=[OpenAIResponseOutputText(text=stored.output_text)],
            )
        ],
        instructions=stored.instructions,
        previous_response_id=stored.previous_response_id,
        metadata=dict(stored.metadata or {}),
        usage=OpenAIResponseUsage(
            input_tokens=stored.input_tokens,
            output_tokens=stored.output_tokens,
            total_tokens=stored.total_tokens,
        ),
    )


class ResponseEvents:
    """Encodes one response's stream events, numbering them by ``sequence_number`` from 0."""

    def __init__(self, turn: _Turn) -> None:
        self.turn = turn
        self._sequence = 0
        self.opened = False

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = _encoder.encode({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return f"event: {kind}\n".encode() + event(data)

    def _place(self) -> dict[str, Any]:
        return {"item_id": self.turn.item_id, "output_index": 0, "content_index": 0}

    def started(self) -> bytes:
        snapshot = self.turn.response("in_progress")
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def open(self) -> bytes:
        """The message item and its text part, before the first delta (once)."""
        if self.opened:
            return b""
        self.opened = True
        return self._event(
            "response.output_item.added",
            {"output_index": 0, "item": self.turn.message("", "in_progress")},
        ) + self._event(
            "response.content_part.added",
            {**self._place(), "part": OpenAIResponseOutputText(text="")},
        )

    def delta(self, text: str) -> bytes:
        return self.open() + self._event(
            "response.output_text.delta", {**self._place(), "delta": text, "logprobs": []}
        )

    def completed(self, text: str, result: ResponsesResult) -> bytes:
        part = OpenAIResponseOutputText(text=text)
        return (
            self.open()
            + self._event(
                "response.output_text.done", {**self._place(), "text": text, "logprobs": []}
            )
            + self._event("response.content_part.done", {**self._place(), "part": part})
            + self._event(
                "response.output_item.done", {"output_index": 0, "item": self.turn.message(text)}
            )
            + self._event(
                "response.completed",
                {"response": self.turn.response("completed", text=text, result=result)},
            )
        )

    def error(self, code: str, message: str) -> bytes:
        """OpenAI's ``error`` event: the mesh could not finish the stream as it should."""
        return self._event("error", {"code": code, "message": message, "param": None})

    def failed(self, message: str, result: ResponsesResult | None = None) -> bytes:
        snapshot = self.turn.response("failed", result=result, error=message)
        return self._event("response.failed", {"response": snapshot})


# --------------------------------------------------------------------------- helpers


def _json(
    body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(body), status=status, headers=headers, content_type="application/json"
    )


def _timeout(
    value: str | None, field: str, default: float
) -> tuple[float, tuple[str, timedelta] | None]:
    """The seconds to wait and the request's own timeout (``metadata.timeout``, a duration)."""
    if value is None:
        return default, None
    try:
        parsed = parse_duration(value)
    except DurationError as exc:
        raise BadRequestError(f"{field}: {exc}", field=field, status=400) from None
    if parsed.total_seconds() <= 0:
        raise BadRequestError(f"{field} must be positive", field=field, status=400)
    return parsed.total_seconds(), (value, parsed)


def _not_found(model: str, result: ResponsesResult) -> web.Response | None:
    """OpenAI's ``model_not_found`` when the request failed because its target does not exist."""
    error = result.error or ""
    if result.status != "failed" or _UNKNOWN_TARGET.search(error) is None:
        return None
    return _json(
        openai_error(
            f"The model {model!r} does not exist: {error}",
            error_type="invalid_request_error",
            code="model_not_found",
            param="model",
        ),
        404,
    )


def _no_such_target(model: str) -> web.Response | None:
    """``model_not_found`` at once for a target whose name cannot name a resource."""
    name = model.partition("/")[2]
    if is_name(name):
        return None
    return _json(
        openai_error(
            f"The model {model!r} does not exist: {name!r} is not a resource name",
            error_type="invalid_request_error",
            code="model_not_found",
            param="model",
        ),
        404,
    )


def _require_user_text(target: str, messages: list[dict[str, Any]]) -> None:
    """An agent, team or tool runs on the last user message: it must be there, with text."""
    if target.startswith("model/"):
        return
    for message in reversed(messages):
        if message.get("role") == "user":
            if _text_of(message).strip():
                return
            break
    raise BadRequestError(
        f"{target} needs the conversation to end with a user message with text",
        field="input",
        status=400,
    )


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _cancel_soon(broker: ResponsesBroker, tenant: str, request_id: str, reason: str) -> None:
    """Send the cancel even when the handler itself is being cancelled (client gone)."""
    await asyncio.shield(broker.cancel(tenant, request_id, reason))


async def _wait(
    request: web.Request,
    work: Awaitable[T],
    *,
    within: float,
    poll: float,
) -> T:
    """``work``'s value within ``within`` seconds; raises :class:`TimeoutError` when the time
    ran out and :class:`ConnectionResetError` when the client went away meanwhile (checked
    every ``poll`` seconds: aiohttp does not cancel a handler whose client left)."""
    task = asyncio.ensure_future(work)
    deadline = asyncio.get_running_loop().time() + within
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait({task}, timeout=min(poll, left))
            if done:
                return task.result()
            if _gone(request):
                raise ConnectionResetError("the client went away")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await task


async def _abandon(entries: AsyncIterator[Any], pending: asyncio.Future[Any]) -> None:
    """Stop reading a stream the client left before it was followed to its end."""
    if not pending.done():
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
    await close_entries(entries)


async def _first(
    entries: AsyncIterator[StreamEntry[Chunk]], within: float
) -> tuple[asyncio.Future[StreamEntry[Chunk]], StreamEntry[Chunk] | None]:
    """Start reading and wait up to ``within`` for the first chunk (nothing sent yet)."""
    first = asyncio.ensure_future(anext(entries))
    done, _ = await asyncio.wait({first}, timeout=within)
    if not done or first.exception() is not None:
        return first, None
    return first, first.result()


def _early_failure(entry: StreamEntry[Chunk] | None) -> str | None:
    """The error of a request whose *first* chunk is its final one, ending in error."""
    if entry is None or not entry.message.is_final:
        return None
    completed = entry.message.ark.completed_query
    status = completed.status if completed is not None else None
    if status is None or status.phase != "error":
        return None
    return status.error or (status.response.content if status.response is not None else "")


async def _follow(
    entries: AsyncIterator[StreamEntry[Chunk]],
    pending: asyncio.Future[StreamEntry[Chunk]] | None,
    heartbeat: float,
) -> AsyncIterator[StreamEntry[Chunk] | None]:
    """The entries, and ``None`` whenever none came for ``heartbeat`` seconds. The pending read
    is kept across heartbeats (never restarted), so nothing is skipped."""
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(entries))
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield None
                continue
            try:
                entry = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield entry
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await close_entries(entries)


def _delta_text(chunk: Chunk) -> str:
    """The answer's text in a chunk (service notices and tool-approval lines carry none)."""
    if chunk.ark.system_message is not None or chunk.is_final:
        return ""
    return "".join(choice.delta.content or "" for choice in chunk.choices)


# --------------------------------------------------------------------------- /responses


async def create_response(
    request: web.Request,
    *,
    tenant: str,
    data: bytes,
    broker: ResponsesBroker,
    heartbeat: float,
    completion_wait: float,
) -> web.StreamResponse:
    """``POST /openai/v1/responses`` (see the module docstring)."""
    body = decode_body(data, ResponsesCreateRequest)
    target = body.target()
    body.refuse_unsupported()
    new = input_messages(body.input)
    invalid = _no_such_target(target)
    if invalid is not None:
        return invalid
    earlier: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        previous = await broker.store.get(tenant, body.previous_response_id)
        if previous is None:
            return _json(
                openai_error(
                    f"Previous response with id {body.previous_response_id!r} not found.",
                    error_type="invalid_request_error",
                    code="previous_response_not_found",
                    param="previous_response_id",
                ),
                404,
            )
        earlier = list(previous.conversation)
    within, timeout = _timeout(body.meta("timeout"), "metadata.timeout", completion_wait)
    conversation = [*earlier, *new]
    _require_user_text(target, conversation)
    system: list[dict[str, Any]] = (
        [{"role": "system", "content": body.instructions}] if body.instructions else []
    )
    turn = _Turn(body, f"resp_{uuid.uuid4().hex}", conversation)
    with bound_context(tenant=tenant, response_id=turn.id):
        await broker.submit(
            tenant,
            turn.id,
            target=target,
            messages=[*system, *conversation],
            stream=body.stream,
            run_timeout=timeout,
            session_id=body.meta("sessionId"),
            conversation_id=body.meta("conversationId"),
        )
        if body.stream:
            # A stream is bounded by the run's own timeout only (as a query's stream is): the
            # reconciler ends the run, and the stream with it; a client that leaves cancels it.
            bound = within if timeout is not None else None
            return await _stream_response(request, turn, tenant, broker, heartbeat, bound)
        try:
            result = await _wait(
                request, broker.result(tenant, turn.id), within=within, poll=heartbeat
            )
        except TimeoutError:
            await _cancel_soon(broker, tenant, turn.id, "the broker's wait ran out")
            raise GatewayTimeoutError(
                f"response {turn.id} did not finish within {within:g}s"
            ) from None
        except ConnectionResetError:
            await _cancel_soon(broker, tenant, turn.id, "the client went away")
            raise
        missing = _not_found(body.model, result)
        if missing is not None:
            return missing
        if result.status != "completed":
            return _json(
                openai_error(
                    result.error or f"the response ended {result.status}",
                    error_type="server_error",
                    code=f"response_{result.status}",
                ),
                500,
                {"x-should-retry": "false"},
            )
        text = _text_of(result.message)
        if body.store:
            await broker.store.put(turn.stored(result))
        return _json(turn.response("completed", text=text, result=result))


async def _stream_response(
    request: web.Request,
    turn: _Turn,
    tenant: str,
    broker: ResponsesBroker,
    heartbeat: float,
    within: float | None,
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within if within is not None else None
    entries = aiter(broker.chunks(tenant, turn.id))
    pending, first = await _first(entries, heartbeat)
    early = _early_failure(first)
    if early is not None and _UNKNOWN_TARGET.search(early) is not None:
        await close_entries(entries)
        try:
            async with asyncio.timeout(_RESULT_WAIT):
                result = await broker.result(tenant, turn.id)
        except TimeoutError:
            raise GatewayTimeoutError(
                f"no result for {turn.id} within {_RESULT_WAIT:g}s of its final chunk"
            ) from None
        missing = _not_found(turn.body.model, result)
        if missing is not None:
            return missing
    events = ResponseEvents(turn)
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(events.started())
        async with asyncio.timeout_at(deadline):
            async for entry in _follow(entries, pending, heartbeat):
                if entry is None:
                    await response.write(comment("heartbeat"))
                    continue
                text = _delta_text(entry.message)
                if text:
                    await response.write(events.delta(text))
        async with asyncio.timeout(_RESULT_WAIT):
            result = await broker.result(tenant, turn.id)
        if result.status == "completed":
            text = _text_of(result.message)
            unstored: str | None = None
            if turn.body.store:
                try:
                    await broker.store.put(turn.stored(result))
                except (BusError, NatsError) as exc:
                    _log.warning("response not stored", response_id=turn.id, error=str(exc))
                    unstored = f"the response could not be stored, so it cannot be continued: {exc}"
            await response.write(events.completed(text, result))
            if unstored is not None:
                await response.write(events.error("store_failed", unstored))
        else:
            await response.write(
                events.failed(result.error or f"the response ended {result.status}", result)
            )
    except TimeoutError:
        await _cancel_soon(broker, tenant, turn.id, "the broker's wait ran out")
        await response.write(events.failed("the response did not finish in time"))
    except (ConnectionResetError, asyncio.CancelledError):
        await _abandon(entries, pending)
        await _cancel_soon(broker, tenant, turn.id, "the client went away")
        raise
    except (BusError, NatsError) as exc:
        # The answer was already started: the failure can only be an event now.
        _log.warning("lost the response's stream", response_id=turn.id, error=str(exc))
        await _abandon(entries, pending)
        await _cancel_soon(broker, tenant, turn.id, "the broker lost the stream")
        await response.write(events.error("unavailable", f"NATS is unavailable: {exc}"))
    await response.write_eof()
    return response


async def get_response(
    request: web.Request, *, tenant: str, response_id: str, broker: ResponsesBroker
) -> web.Response:
    """``GET /openai/v1/responses/{id}``: a stored response of the caller's tenant."""
    stored = (
        await broker.store.get(tenant, response_id) if _RESPONSE_ID.match(response_id) else None
    )
    if stored is None:
        raise NotFoundError(f"No response with id {response_id!r} found.", field="response_id")
    return _json(stored_response(stored))


async def delete_response(
    request: web.Request, *, tenant: str, response_id: str, broker: ResponsesBroker
) -> web.Response:
    """``DELETE /openai/v1/responses/{id}``: forget a stored response of the caller's tenant."""
    if not (_RESPONSE_ID.match(response_id) and await broker.store.delete(tenant, response_id)):
        raise NotFoundError(f"No response with id {response_id!r} found.", field="response_id")
    return _json(OpenAIResponseDeleted(id=response_id))


# --------------------------------------------------------------------------- chat on a Model


def _status_of(result: ResponsesResult, target: QueryTarget) -> QueryStatus:
    """The Query status a chat answer's ``ark.queryStatus`` shows for a responses result."""
    if result.status == "completed":
        return QueryStatus(
            phase="done",
            response=QueryResponse(target=target, content=_text_of(result.message), phase="done"),
            token_usage=result.usage or TokenUsage(),
            conversation_id=result.conversation_id,
        )
    return QueryStatus(
        phase="canceled" if result.status == "canceled" else "error",
        error=result.error,
        token_usage=result.usage,
        conversation_id=result.conversation_id,
    )


async def chat_on_model(
    request: web.Request,
    body: ChatCompletionRequest,
    *,
    tenant: str,
    broker: ResponsesBroker,
    heartbeat: float,
    completion_wait: float,
) -> web.StreamResponse:
    """``POST /openai/v1/chat/completions`` with ``model: model/<name>``: the whole
    ``messages`` list goes to the Model through the responses-reconciler."""
    body.user_input()  # the same check as the query path: a user message with text
    target = body.target()
    invalid = _no_such_target(body.model)
    if invalid is not None:
        return invalid
    within, timeout = _timeout(body.meta("timeout"), "metadata.timeout", completion_wait)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    with bound_context(tenant=tenant, request_id=request_id):
        await broker.submit(
            tenant,
            request_id,
            target=body.model,
            messages=list(body.messages),
            stream=body.stream,
            run_timeout=timeout,
            session_id=body.meta("sessionId"),
            conversation_id=body.meta("conversationId"),
        )
        if body.stream:
            bound = within if timeout is not None else None
            return await _stream_chat(request, body, request_id, tenant, broker, heartbeat, bound)
        try:
            result = await _wait(
                request, broker.result(tenant, request_id), within=within, poll=heartbeat
            )
        except TimeoutError:
            await _cancel_soon(broker, tenant, request_id, "the broker's wait ran out")
            raise GatewayTimeoutError(
                f"chat completion {request_id} did not finish within {within:g}s"
            ) from None
        except ConnectionResetError:
            await _cancel_soon(broker, tenant, request_id, "the client went away")
            raise
    missing = _not_found(body.model, result)
    if missing is not None:
        return missing
    status = _status_of(result, QueryTarget(type="model", name=target["name"]))
    if result.status != "completed":
        return _json(completion_error(status), 500, {"x-should-retry": "false"})
    return _json(
        chat_completion(query_id=request_id, name=request_id, model=body.model, status=status)
    )


async def _stream_chat(
    request: web.Request,
    body: ChatCompletionRequest,
    request_id: str,
    tenant: str,
    broker: ResponsesBroker,
    heartbeat: float,
    within: float | None,
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within if within is not None else None
    entries = aiter(broker.chunks(tenant, request_id))
    pending, first = await _first(entries, heartbeat)
    early = _early_failure(first)
    if early is not None and _UNKNOWN_TARGET.search(early) is not None:
        await close_entries(entries)
        try:
            async with asyncio.timeout(_RESULT_WAIT):
                result = await broker.result(tenant, request_id)
        except TimeoutError:
            raise GatewayTimeoutError(
                f"no result for {request_id} within {_RESULT_WAIT:g}s of its final chunk"
            ) from None
        missing = _not_found(body.model, result)
        if missing is not None:
            return missing
    shaper = ChunkShaper(include_usage=body.include_usage())
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(comment("connected"))
        async with asyncio.timeout_at(deadline):
            async for entry in _follow(entries, pending, heartbeat):
                if entry is None:
                    await response.write(comment("heartbeat"))
                    continue
                shaped = shaper.chunk(entry.data)
                if shaped is not None:
                    await response.write(event(shaped))
    except TimeoutError:
        await _cancel_soon(broker, tenant, request_id, "the broker's wait ran out")
        _log.info("chat stream cut at its deadline", request_id=request_id)
    except (ConnectionResetError, asyncio.CancelledError):
        await _abandon(entries, pending)
        await _cancel_soon(broker, tenant, request_id, "the client went away")
        raise
    except (BusError, NatsError) as exc:
        # Started already: the failure is the stream's last event, then [DONE].
        _log.warning("lost the chat stream", request_id=request_id, error=str(exc))
        await _abandon(entries, pending)
        await _cancel_soon(broker, tenant, request_id, "the broker lost the stream")
        return await end_stream(response, _encoder.encode(read_failure(exc)))
    return await end_stream(response, shaper.usage_chunk())
