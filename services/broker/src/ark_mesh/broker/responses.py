"""Response bodies of the broker API, as msgspec Structs.

The handlers encode these and the OpenAPI document (:mod:`.openapi`) is generated from them, so
what the document promises and what the broker sends cannot drift apart: a field added to an
answer is a field added here, and then to ``proto-schemas/openapi.json``.

Two families: Ark's shapes (camelCase, the broker envelope ``{"error": {code, message, field?,
requestId}}``) and OpenAI's (snake_case, ``{"error": {message, type, param, code}}``) under
``/openai/v1``, each as its own clients parse it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ark_mesh.contracts import (
    LabelSelector,
    MemoryRef,
    Parameter,
    QueryStatus,
    QueryTarget,
)

__all__ = [
    "CancelAccepted",
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionUsage",
    "CompletionArk",
    "CompletionFailure",
    "CompletionFailureDetail",
    "Embedding",
    "EmbeddingsList",
    "EmbeddingsUsage",
    "ErrorBody",
    "ErrorEnvelope",
    "EventData",
    "EventItem",
    "EventList",
    "Health",
    "OpenAIError",
    "OpenAIErrorBody",
    "QueryAccepted",
    "QueryList",
    "QueryView",
    "Readiness",
]


class _Ark(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Ark's answers: camelCase, absent rather than null when unset."""


class _OpenAI(msgspec.Struct, kw_only=True):
    """OpenAI's answers: snake_case, every field present (``null`` when unset), as OpenAI sends."""


# --------------------------------------------------------------------------- errors


class ErrorBody(_Ark, kw_only=True):
    """``code`` is Ark's (``BAD_REQUEST``, ``NOT_FOUND`` …); ``field`` names the offending
    body field, parameter or header when there is one; ``requestId`` is unique per answer."""

    code: str
    message: str
    request_id: str
    field: str | None = None


class ErrorEnvelope(_Ark, kw_only=True):
    """Every error of Ark's routes (Ark's broker envelope)."""

    error: ErrorBody


class OpenAIErrorBody(_OpenAI, kw_only=True):
    """``param`` names the offending request field or header, as OpenAI does."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(_OpenAI, kw_only=True):
    """Every error under ``/openai/v1`` (OpenAI's error object), except a query that ran and
    failed (:class:`CompletionFailure`)."""

    error: OpenAIErrorBody


# --------------------------------------------------------------------------- /v1/queries


class QueryAccepted(_Ark, kw_only=True):
    """``202`` of ``POST /v1/queries``: the query's identity and first status."""

    id: str
    name: str
    namespace: str
    status: QueryStatus


class CancelAccepted(_Ark, kw_only=True):
    """``202`` of a cancel; ``cancelRequested`` is false when the query had already ended."""

    id: str
    name: str
    namespace: str
    status: QueryStatus
    cancel_requested: bool


class QueryView(_Ark, kw_only=True):
    """One query, flattened like ark-api's ``QueryResponse``, plus ``id`` (the uid every stream
    and subject uses) and ``createResource``."""

    id: str
    name: str
    namespace: str
    input: Any
    type: Literal["user", "messages"] | None = None
    target: QueryTarget | None = None
    selector: LabelSelector | None = None
    memory: MemoryRef | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    timeout: str | None = None
    parameters: list[Parameter] | None = None
    status: QueryStatus
    creation_timestamp: str
    create_resource: bool


class QueryList(_Ark, kw_only=True):
    items: list[QueryView]
    count: int


class EventData(_Ark, kw_only=True):
    """An Ark operation event as Ark's broker stores it (``POST /events`` body)."""

    timestamp: str
    event_type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str = ""
    data: dict[str, str] = msgspec.field(default_factory=dict)


class EventItem(_Ark, kw_only=True):
    """Ark's broker item envelope: the JetStream sequence, the time, the event."""

    sequence_number: int
    timestamp: str
    data: EventData


class EventList(_Ark, kw_only=True):
    items: list[EventItem]
    total: int
    has_more: bool


# --------------------------------------------------------------------------- probes


class Health(_Ark, kw_only=True):
    status: Literal["ok"]


class Readiness(_Ark, kw_only=True):
    status: Literal["ok", "not ready"]
    checks: dict[str, str]


# --------------------------------------------------------------------------- OpenAI


class ChatCompletionMessage(_OpenAI, kw_only=True):
    role: Literal["assistant"]
    content: str


class ChatCompletionChoice(_OpenAI, kw_only=True):
    index: int
    message: ChatCompletionMessage
    finish_reason: str


class ChatCompletionUsage(_OpenAI, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionArk(_Ark, kw_only=True):
    """Ark's addition: the query's uid and its full final status."""

    query: str
    query_status: QueryStatus


class ChatCompletion(_OpenAI, kw_only=True):
    """A non-streaming answer; ``usage`` is the query's real token usage."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: ChatCompletionUsage
    ark: CompletionArk


class ChatCompletionChunk(_OpenAI, kw_only=True):
    """One ``data:`` line of a streaming answer (documentation only: chunks are forwarded as
    stored). ``ark`` is Ark's chunk metadata; the final content chunk carries
    ``ark.completedQuery``; with ``stream_options.include_usage`` one last chunk has
    ``choices: []`` and the query's ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: ChatCompletionUsage | None = None
    error: dict[str, Any] | None = None
    ark: dict[str, Any] | None = None


class CompletionFailureDetail(_OpenAI, kw_only=True):
    message: str
    errors: list[Any]
    phase: str | None = None


class CompletionFailure(_OpenAI, kw_only=True):
    """Ark's answer when the query ran and ended in ``error`` or ``canceled`` (HTTP 500 with
    ``x-should-retry: false``: the mesh already retried what was transient): Ark's ``detail``
    and, for OpenAI's clients, OpenAI's ``error``. An unexpected failure has only ``error``."""

    error: OpenAIErrorBody
    detail: CompletionFailureDetail | None = None


class Embedding(_OpenAI, kw_only=True):
    """``embedding`` is a list of floats, or base64 little-endian float32 when asked."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(_OpenAI, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsList(_OpenAI, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage
