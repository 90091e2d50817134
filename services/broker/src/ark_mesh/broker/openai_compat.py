"""OpenAI shapes built from the mesh's messages (pure, no I/O): chat completions from a
query's chunks and status, embeddings lists from an ``EmbeddingsResult``, and OpenAI's error
object.

Streaming answers forward the query's chunks — they already are OpenAI
``chat.completion.chunk`` objects with Ark's ``ark`` object, including the final chunk with
``ark.completedQuery`` — with usage as OpenAI sends it (:class:`ChunkShaper`). The non-streaming
answer is a ``chat.completion`` whose ``usage`` is the query's real token usage (Ark's API
counts words instead) and whose ``ark.queryStatus`` is the full Query status.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from typing import Any, Literal

import msgspec

from ark_mesh.broker.responses import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionMessage,
    ChatCompletionStreamError,
    ChatCompletionUsage,
    CompletionArk,
    CompletionFailure,
    CompletionFailureDetail,
    Embedding,
    EmbeddingsList,
    EmbeddingsUsage,
    OpenAIError,
    OpenAIErrorBody,
    StreamErrorArk,
    StreamErrorBody,
)
from ark_mesh.contracts import Chunk, EmbeddingsResult, QueryStatus

__all__ = [
    "ChunkShaper",
    "approval_line",
    "chat_completion",
    "completion_error",
    "embeddings_list",
    "openai_chunk",
    "openai_error",
    "read_failure",
    "stream_failure",
    "unknown_target",
]

# What the resolver writes when a query's target does not exist (resolver.targets). The query
# ran and failed, but the mistake is the caller's: answered 404 ``model_not_found`` like OpenAI.
_UNKNOWN_TARGET = re.compile(
    # The name is quoted as sent, so it may itself hold quotes (or newlines).
    r"target references (agent|team|model|tool) '.*' which does not exist in namespace",
    re.DOTALL,
)


_STORED_HEAD = b'{"schema":"' + Chunk.SCHEMA.encode() + b'",'
"""How every stored chunk begins: the mesh's writers encode :class:`Chunk` with msgspec, which
writes the tag first and the fields in declaration order, without spaces."""
_APPROVAL_KEY = b'"toolApproval":'


def openai_chunk(data: bytes) -> bytes:
    """A stored chunk as Ark's stream serves it: the bus-only ``schema`` tag removed, and a
    tool-approval line served as Ark's executor writes it (:func:`approval_line`).

    A chunk as the mesh stores it is relayed without being decoded: cutting the leading tag
    gives the bytes decoding, dropping ``schema`` and encoding again would (msgspec writes what
    it reads back unchanged). Anything else — another layout, or a ``"toolApproval":`` key
    anywhere (inside a JSON string its quotes would be escaped, so a match is a key) — takes the
    decoding path."""
    if data.startswith(_STORED_HEAD) and _APPROVAL_KEY not in data:
        return b"{" + data[len(_STORED_HEAD) :]
    chunk: dict[str, Any] = msgspec.json.decode(data)
    line = approval_line(chunk)
    if line is not None:
        return msgspec.json.encode(line)
    chunk.pop("schema", None)
    return msgspec.json.encode(chunk)


def approval_line(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """Ark's ``{"type": "tool_approval_request" | "tool_approval_response", "taskId", …}``
    stream line, when the chunk carries one (``ark.toolApproval``); it replaces the chunk,
    which has no choices and would trip a client reading ``chunk.choices[0]``."""
    line = (chunk.get("ark") or {}).get("toolApproval")
    return line if isinstance(line, dict) else None


class ChunkShaper:
    """Turns a query's stored chunks into the stream an OpenAI client expects.

    The chunks are OpenAI ``chat.completion.chunk`` objects with Ark's ``ark`` object; the
    model's own usage chunks (``choices: []``, one per model call) are in the stream too. OpenAI
    sends usage only when asked (``stream_options.include_usage``), then as exactly one last
    chunk with ``choices: []`` and the whole request's usage, ``usage: null`` on every other
    chunk. So: usage-only chunks are dropped, and with ``include_usage`` one chunk with the
    query's total usage (``completedQuery.status.tokenUsage``) follows the final one.
    The loop in OpenAI's docs (``chunk.choices[0]``) then never meets an empty ``choices``.
    A query that did not end ``done`` ends with an error line instead of its final chunk
    (:func:`stream_failure`), on which OpenAI's SDKs raise.
    """

    def __init__(self, *, include_usage: bool, model: str = "") -> None:
        self.include_usage = include_usage
        self.model = model
        self._final: dict[str, Any] | None = None
        self.failed = False

    def chunk(self, data: bytes) -> bytes | None:
        """The chunk as sent to the client, or ``None`` when it is not sent."""
        chunk: dict[str, Any] = msgspec.json.decode(data)
        line = approval_line(chunk)
        if line is not None:
            return msgspec.json.encode(line)
        chunk.pop("schema", None)
        final = bool((chunk.get("ark") or {}).get("completedQuery"))
        if not chunk.get("choices") and chunk.get("usage") and not chunk.get("error") and not final:
            return None  # a model call's usage: only the query's total is sent, when asked
        chunk["usage"] = None
        if final:
            failure = stream_failure(chunk, model=self.model)
            if failure is not None:
                self.failed = True
                return msgspec.json.encode(failure)
            self._final = chunk
        return msgspec.json.encode(chunk)

    def usage_chunk(self) -> bytes | None:
        """The closing usage chunk, when asked for and the stream reached its final chunk."""
        if not self.include_usage or self._final is None or self.failed:
            return None
        completed = self._final["ark"]["completedQuery"]
        usage = (completed.get("status") or {}).get("tokenUsage") or {}
        return msgspec.json.encode(
            {
                "id": self._final.get("id"),
                "object": "chat.completion.chunk",
                "created": self._final.get("created"),
                "model": self._final.get("model"),
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.get("promptTokens", 0),
                    "completion_tokens": usage.get("completionTokens", 0),
                    "total_tokens": usage.get("totalTokens", 0),
                },
                "ark": {"query": self._final["ark"].get("query")},
            }
        )


def stream_failure(final: dict[str, Any], *, model: str) -> ChatCompletionStreamError | None:
    """The SSE error line that replaces the final chunk of a query that did not end ``done``.

    OpenAI's SDKs raise ``APIError`` on a ``data: {"error": {...}}`` line (ark-api sends one
    when its stream fails); an ordinary final chunk would end the stream as if it had succeeded.
    The object is OpenAI's error with ark-api's ``status`` (404 for an unknown target, else
    500) and the query's id and phase under ``ark``.
    """
    completed = final["ark"]["completedQuery"]
    raw = completed.get("status") if isinstance(completed, dict) else None
    if not isinstance(raw, dict) or raw.get("phase") in (None, "done"):
        return None
    try:
        status = msgspec.convert(raw, QueryStatus)
    except msgspec.ValidationError:  # a status this version cannot read: still an error line
        status = QueryStatus(phase="error", error=str(raw.get("error") or raw.get("phase")))
    missing = unknown_target(status, model=model)
    body, code = (
        (missing.error, 404) if missing is not None else (completion_error(status).error, 500)
    )
    return ChatCompletionStreamError(
        error=StreamErrorBody(
            message=body.message, type=body.type, param=body.param, code=body.code, status=code
        ),
        ark=StreamErrorArk(query=final["ark"].get("query"), phase=status.phase or "error"),
    )


def chat_completion(*, query_id: str, name: str, model: str, status: QueryStatus) -> ChatCompletion:
    content = status.response.content if status.response is not None else ""
    usage = status.token_usage
    return ChatCompletion(
        id=name,
        created=int(time.time()),
        model=model,
        choices=[
            ChatCompletionChoice(
                index=0,
                message=ChatCompletionMessage(role="assistant", content=content or ""),
                finish_reason="stop",
            )
        ],
        usage=ChatCompletionUsage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
        ),
        ark=CompletionArk(query=query_id, query_status=status),
    )


def _failure_message(status: QueryStatus) -> str:
    message = status.error or (status.response.content if status.response is not None else "")
    return message or f"query ended in phase {status.phase!r}"


def unknown_target(status: QueryStatus, *, model: str) -> OpenAIError | None:
    """OpenAI's ``model_not_found`` when the query failed because its target does not exist."""
    message = _failure_message(status)
    if _UNKNOWN_TARGET.search(message) is None:
        return None
    return openai_error(
        f"The model {model!r} does not exist: {message}",
        error_type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def completion_error(status: QueryStatus) -> CompletionFailure:
    """Ark's answer when the query ended in ``error`` or ``canceled``: ``{detail: {…}}``."""
    message = _failure_message(status)
    return CompletionFailure(
        detail=CompletionFailureDetail(message=message, errors=[], phase=status.phase),
        error=OpenAIErrorBody(message=message, type="server_error", code=f"query_{status.phase}"),
    )


def embeddings_list(
    result: EmbeddingsResult, *, model: str, encoding_format: Literal["float", "base64"]
) -> EmbeddingsList:
    """OpenAI's ``list`` of ``embedding`` objects, in input order. ``base64`` packs each vector
    as little-endian float32 — what the ``openai`` client asks for unless told otherwise."""
    data: list[Embedding] = []
    for index, vector in enumerate(result.embeddings or []):
        encoded: list[float] | str = vector
        if encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append(Embedding(index=index, embedding=encoded))
    usage = result.usage
    return EmbeddingsList(
        data=data,
        model=model,
        usage=EmbeddingsUsage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
        ),
    )


def openai_error(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> OpenAIError:
    """OpenAI's error object; ``param`` names the offending request field, as OpenAI does."""
    return OpenAIError(
        error=OpenAIErrorBody(message=message, type=error_type, param=param, code=code)
    )


def read_failure(error: BaseException) -> OpenAIError:
    """The error object ending a chat stream whose read failed after it started (then
    ``[DONE]``): OpenAI's SDKs raise it as an ``APIError`` from the stream."""
    return openai_error(
        f"the stream cannot continue (resume it): {error}",
        error_type="server_error",
        code="unavailable",
    )
