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
    Override,
    Parameter,
    QueryStatus,
    QueryTarget,
)

__all__ = [
    "AgentDetailResponse",
    "AgentListResponse",
    "AgentResponse",
    "ApprovalDecisionResponse",
    "Availability",
    "CancelAccepted",
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionStreamError",
    "ChatCompletionUsage",
    "ChunkItem",
    "ChunkPage",
    "ChunkRecord",
    "ClientContext",
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
    "EventPage",
    "ExecutionContext",
    "Health",
    "InputTokensDetails",
    "Mode",
    "ModelDetailResponse",
    "ModelListResponse",
    "ModelResponse",
    "OpenAIError",
    "OpenAIErrorBody",
    "OpenAIModel",
    "OpenAIModelList",
    "OpenAIResponse",
    "OpenAIResponseDeleted",
    "OpenAIResponseError",
    "OpenAIResponseMessage",
    "OpenAIResponseOutputText",
    "OpenAIResponseStreamEvent",
    "OpenAIResponseUsage",
    "OutputTokensDetails",
    "QueryAccepted",
    "QueryDetailResponse",
    "QueryListResponse",
    "QueryReference",
    "QueryResponse",
    "Readiness",
    "StreamError",
    "StreamErrorArk",
    "StreamErrorBody",
    "StreamErrorEvent",
    "TeamDetailResponse",
    "TeamListResponse",
    "TeamResponse",
    "ToolApprovalDecision",
    "ToolApprovalDetailResponse",
    "ToolApprovalListResponse",
    "ToolApprovalPhase",
    "ToolApprovalRequestStatus",
    "ToolApprovalResponse",
    "ToolCallInfo",
    "ToolDetailResponse",
    "ToolListResponse",
    "ToolResponse",
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


Mode = Literal["broker", "direct"]
"""``broker``: a broker-mode query (no Query resource, or a read-only mirror); ``direct``: a
Query resource, resolved as the controller decides."""


class QueryResponse(_Ark, kw_only=True):
    """One query of a listing: ark-api's flattened ``QueryResponse`` (``status`` is the raw
    status), plus ``id`` (the uid every stream and subject uses) and ``reconciliation``."""

    id: str
    reconciliation: Mode
    name: str
    namespace: str
    type: Literal["user", "messages"]
    input: Any
    memory: MemoryRef | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    status: dict[str, Any] | None = None
    creation_timestamp: str | None = None


class QueryDetailResponse(_Ark, kw_only=True):
    """One query: ark-api's ``QueryDetailResponse`` (the spec flattened, ``metadata`` and the
    raw ``status``), plus ``id`` and ``reconciliation``."""

    id: str
    reconciliation: Mode
    name: str
    namespace: str
    type: Literal["user", "messages"]
    input: Any
    memory: MemoryRef | None = None
    parameters: list[Parameter] | None = None
    selector: LabelSelector | None = None
    service_account: str | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    target: QueryTarget | None = None
    timeout: str | None = None
    ttl: str | None = None
    cancel: bool | None = None
    overrides: list[Override] | None = None
    metadata: dict[str, Any]
    status: dict[str, Any] | None = None


class QueryListResponse(msgspec.Struct, kw_only=True):
    """ark-api's ``QueryListResponse``: one page, newest first (its field names are
    snake_case: ``page_size``)."""

    items: list[QueryResponse]
    count: int
    total: int
    page: int
    page_size: int


# --------------------------------------------------------------------------- /v1/agents …

Availability = Literal["True", "False", "Unknown"]


class _ArkApi(msgspec.Struct, kw_only=True):
    """ark-api's resource answers (pydantic models): every field present, ``null`` when
    unset; field names exactly as ark-api spells them (a mix of snake and camel case)."""


class _Page(_ArkApi, kw_only=True):
    """ark-api's ``PaginatedListResponse``: ``count`` items in this page, ``continue_token``
    for the next one (``null`` on the last), ``remaining_item_count`` after this page."""

    count: int
    continue_token: str | None = None
    remaining_item_count: int | None = None


class AgentResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    model_ref: str | None = None
    prompt: str | None = None
    available: Availability | None = None
    annotations: dict[str, str] | None = None


class AgentListResponse(_Page, kw_only=True):
    items: list[AgentResponse]


class AgentDetailResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    execution_engine: dict[str, Any] | None = msgspec.field(default=None, name="executionEngine")
    model_ref: dict[str, Any] | None = msgspec.field(default=None, name="modelRef")
    parameters: list[dict[str, Any]] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    overrides: list[dict[str, Any]] | None = None
    skills: list[Any] | None = None
    is_a2a: bool = msgspec.field(default=False, name="isA2A")
    available: Availability | None = None
    status: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None


class ModelResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    type: str = "completions"
    provider: str
    model: str
    available: Availability | None = None
    annotations: dict[str, str] | None = None


class ModelListResponse(_Page, kw_only=True):
    items: list[ModelResponse]


class ModelDetailResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    type: str = "completions"
    provider: str
    model: str
    config: dict[str, dict[str, Any]]
    available: Availability | None = None
    resolved_address: str | None = None
    annotations: dict[str, str] | None = None


class TeamResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    strategy: str | None = None
    members_count: int | None = None
    status: str | None = None


class TeamListResponse(_Page, kw_only=True):
    items: list[TeamResponse]


class TeamDetailResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    members: list[dict[str, Any]]
    strategy: str
    graph: dict[str, Any] | None = None
    loops: bool = False
    max_turns: int | None = msgspec.field(default=None, name="maxTurns")
    selector: dict[str, Any] | None = None
    available: Availability | None = None
    status: dict[str, Any] | None = None


class ToolResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    type: str | None = None


class ToolListResponse(_Page, kw_only=True):
    items: list[ToolResponse]


class ToolDetailResponse(_ArkApi, kw_only=True):
    name: str
    namespace: str
    description: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


# --------------------------------------------------------------------------- /v1/tool-approvals


class _ArkApiCamel(msgspec.Struct, kw_only=True, rename="camel"):
    """ark-api's tool-approval answers: camelCase (``queryRef``, ``toolCalls``), every field
    present and ``null`` when unset, as its pydantic models serialise."""


ToolApprovalPhase = Literal["pending", "approved", "rejected", "expired", "failed", "cancelled"]
"""Ark's vocabulary (``pending``, ``approved``, ``rejected``, ``expired``), plus what an
approval's A2ATask can end in otherwise: ``failed`` (an invalid decision) and ``cancelled``."""


class QueryReference(_ArkApiCamel, kw_only=True):
    name: str
    namespace: str


class ToolCallInfo(_ArkApiCamel, kw_only=True):
    """One pending tool call: the model's call (``id``, ``type``, ``function.name`` as
    ``name``, ``function.arguments`` as ``arguments``)."""

    id: str
    name: str
    type: str
    arguments: str
    description: str | None = None
    annotations: dict[str, bool] | None = None
    agent_reasoning: str | None = None


class ExecutionContext(_ArkApiCamel, kw_only=True):
    """Who asked. ark-mesh keeps the conversation in the run's step log, not here, so
    ``conversationHistory`` is empty and ``pendingToolCallIndex`` 0 (all calls are decided
    together, as Ark's executor does)."""

    conversation_history: str = ""
    pending_tool_call_index: int = 0
    completed_tool_results: list[str] | None = None
    agent_name: str
    agent_namespace: str


class ClientContext(_ArkApiCamel, kw_only=True):
    ip_address: str | None = None
    user_agent: str | None = None


class ToolApprovalDecision(_ArkApiCamel, kw_only=True):
    """How an approval was answered. ``action`` is ``approved`` or ``rejected`` (a timeout
    answers as its ``onTimeout`` says, ``respondedBy`` naming the timeout)."""

    action: str
    responded_by: str
    responded_at: str
    reason: str | None = None
    client_context: ClientContext | None = None


class ToolApprovalRequestStatus(_ArkApiCamel, kw_only=True):
    phase: ToolApprovalPhase | None = None
    observed_generation: int | None = None
    requested_at: str | None = None
    decision: ToolApprovalDecision | None = None
    approval_duration: str | None = None
    conditions: list[dict[str, Any]] | None = None


class ToolApprovalResponse(_ArkApiCamel, kw_only=True):
    """One approval of a listing: ark-api's ``ToolApprovalResponse``, plus ``reconciliation``
    (whose the query is: a Query resource's A2ATask, or a broker-mode query's record)."""

    name: str
    namespace: str
    query_ref: QueryReference
    tool_calls: list[ToolCallInfo]
    phase: ToolApprovalPhase | None = None
    creation_timestamp: str | None = None
    reconciliation: Mode


class ToolApprovalListResponse(msgspec.Struct, kw_only=True):
    items: list[ToolApprovalResponse]
    count: int


class ToolApprovalDetailResponse(_ArkApiCamel, kw_only=True):
    """One approval: ark-api's ``ToolApprovalDetailResponse``, plus ``reconciliation``."""

    name: str
    namespace: str
    query_ref: QueryReference
    tool_calls: list[ToolCallInfo]
    timeout: str | None = None
    on_timeout: str | None = None
    approvers: list[dict[str, str]] | None = None
    reason_required: bool | None = None
    execution_context: ExecutionContext
    status: ToolApprovalRequestStatus | None = None
    metadata: dict[str, Any] | None = None
    reconciliation: Mode


class ApprovalDecisionResponse(_ArkApiCamel, kw_only=True):
    """``POST …/decision``: the approval's new phase (the action taken) and the decision."""

    name: str
    namespace: str
    phase: str
    decision: ToolApprovalDecision


# --------------------------------------------------------------------------- events


class EventData(_Ark, kw_only=True):
    """An Ark operation event as Ark's broker stores it (``POST /events`` body): every field
    present (none has a default, so none is left out as one)."""

    timestamp: str
    event_type: Literal["Normal", "Warning"]
    reason: str
    message: str
    data: dict[str, str]


class EventItem(_Ark, kw_only=True):
    """Ark's broker item envelope: the JetStream sequence, the time, the event."""

    sequence_number: int
    timestamp: str
    data: EventData


class EventList(_Ark, kw_only=True):
    items: list[EventItem]
    total: int
    has_more: bool


class EventPage(_Ark, kw_only=True):
    """A page of Ark's broker ``GET /events`` (and ``/events/{queryId}``): the events
    themselves, as Ark's broker lists them (each item's ``data``), ``total`` events matching
    (whatever the cursor), and ``nextCursor`` (the last item's sequence, to pass as
    ``cursor``) only while ``hasMore``."""

    items: list[EventData]
    total: int
    has_more: bool
    next_cursor: int | None = None


class ChunkRecord(_Ark, kw_only=True):
    """What Ark's broker stores per chunk: the query and the chunk as its stream sends it."""

    query_id: str
    chunk: dict[str, Any]


class ChunkItem(_Ark, kw_only=True):
    """A chunk in Ark's broker item envelope (``GET /stream`` pages)."""

    sequence_number: int
    timestamp: str
    data: ChunkRecord


class ChunkPage(_Ark, kw_only=True):
    """A page of Ark's broker ``GET /stream``: broker items, ``nextCursor`` while
    ``hasMore``."""

    items: list[ChunkItem]
    total: int
    has_more: bool
    next_cursor: int | None = None


class StreamError(_Ark, kw_only=True):
    message: str
    type: str
    code: str | None = None


class StreamErrorEvent(_Ark, kw_only=True):
    """The event Ark's broker sends on ``GET /stream/{queryName}`` when ``wait-for-query``
    passes without a chunk (then ``[DONE]``)."""

    error: StreamError


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


class StreamErrorBody(_OpenAI, kw_only=True):
    """OpenAI's error object with ark-api's ``status``: the HTTP status the failure would have
    had before the stream began (404 unknown target, 500 a query that failed)."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None
    status: int


class StreamErrorArk(_OpenAI, kw_only=True):
    query: str | None = None
    phase: str


class ChatCompletionStreamError(_OpenAI, kw_only=True):
    """The ``data:`` line that replaces the final chunk when the query did not end ``done``
    (then ``[DONE]``): OpenAI's SDKs raise ``APIError`` on it, as on ark-api's stream errors."""

    error: StreamErrorBody
    ark: StreamErrorArk


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


class OpenAIModel(_OpenAI, kw_only=True):
    """One target as an OpenAI model: ``id`` is ``agent/<name>``, ``team/…``, ``model/…`` or
    ``tool/…`` (what ``model`` of a chat completion takes)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["ark"] = "ark"


class OpenAIModelList(_OpenAI, kw_only=True):
    """``GET /openai/v1/models``."""

    object: Literal["list"] = "list"
    data: list[OpenAIModel]


# --------------------------------------------------------------------------- /openai/v1/responses


class OpenAIResponseOutputText(_OpenAI, kw_only=True):
    """One ``output_text`` content part of an assistant message."""

    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = msgspec.field(default_factory=list)


class OpenAIResponseMessage(_OpenAI, kw_only=True):
    """The assistant's message, the one output item a response of the mesh has."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OpenAIResponseOutputText]


class InputTokensDetails(_OpenAI, kw_only=True):
    cached_tokens: int = 0


class OutputTokensDetails(_OpenAI, kw_only=True):
    reasoning_tokens: int = 0


class OpenAIResponseUsage(_OpenAI, kw_only=True):
    """The run's real token usage (every model call of an agent or team counted)."""

    input_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int


class OpenAIResponseError(_OpenAI, kw_only=True):
    """Why a response ``failed`` (``code`` is OpenAI's ``server_error`` for a run that failed)."""

    code: str
    message: str


class OpenAIResponse(_OpenAI, kw_only=True):
    """OpenAI's ``response`` object (``POST``/``GET /openai/v1/responses``). The SDKs' ``output_text``
    is a property over ``output``; ``model`` is the target as sent (``agent/<name>`` …)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: Literal["completed", "failed", "in_progress", "cancelled", "incomplete", "queued"]
    model: str
    output: list[OpenAIResponseMessage]
    instructions: str | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    error: OpenAIResponseError | None = None
    incomplete_details: dict[str, Any] | None = None
    usage: OpenAIResponseUsage | None = None
    store: bool = True
    parallel_tool_calls: bool = False
    tool_choice: Literal["auto", "none"] = "auto"
    tools: list[dict[str, Any]] = msgspec.field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] = msgspec.field(default_factory=lambda: {"format": {"type": "text"}})
    truncation: Literal["disabled", "auto"] = "disabled"
    background: bool = False


class OpenAIResponseDeleted(_OpenAI, kw_only=True):
    """``DELETE /openai/v1/responses/{id}``: the response is forgotten (it cannot be continued)."""

    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class OpenAIResponseStreamEvent(_OpenAI, kw_only=True):
    """One event of a streamed response (documentation only): ``event:`` is ``type``, then the
    ``data:`` line. In order: ``response.created``, ``response.in_progress``,
    ``response.output_item.added``, ``response.content_part.added``,
    ``response.output_text.delta``…, ``response.output_text.done``,
    ``response.content_part.done``, ``response.output_item.done`` and ``response.completed`` —
    or ``response.failed`` when the run failed (``error`` when the mesh could not follow it)."""

    type: str
    sequence_number: int
    response: OpenAIResponse | None = None
    output_index: int | None = None
    content_index: int | None = None
    item_id: str | None = None
    item: OpenAIResponseMessage | None = None
    part: OpenAIResponseOutputText | None = None
    delta: str | None = None
    text: str | None = None
    logprobs: list[Any] | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
