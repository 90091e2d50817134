"""Every message that travels on the bus.

Each message is a frozen msgspec Struct tagged with its schema id in the ``schema`` field (the
same id travels in the ``Ark-Schema`` header), so a consumer in any language can tell what it
holds from the body alone, and :data:`AnyMessage` decodes any of them in one pass.

Field names are camelCase like Ark's resources, except the OpenAI ``chat.completion.chunk`` part
of :class:`Chunk`, which keeps OpenAI's own snake_case so existing OpenAI clients read chunks
unchanged. Hot messages (chunks, events, status updates) set ``gc=False``: they hold no cycles and
are created by the thousand per second.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from ark_mesh.contracts.approvals import ApprovalDecision, ApprovalRequest, ToolApprovalLine
from ark_mesh.contracts.resources import (
    ObjectMeta,
    Query,
    QueryPhase,
    QuerySpec,
    QueryStatus,
    TokenUsage,
)

__all__ = [
    "MESSAGE_TYPES",
    "TERMINAL_PHASES",
    "AnyMessage",
    "ArkChunkMetadata",
    "CancelRequest",
    "Chunk",
    "ChunkChoice",
    "ChunkDelta",
    "ChunkError",
    "ChunkFunctionCall",
    "ChunkHead",
    "ChunkHeadArk",
    "ChunkToolCall",
    "ChunkUsage",
    "ConversationMessages",
    "DeadLetter",
    "EmbeddingsRequest",
    "EmbeddingsResult",
    "EmbeddingsUsage",
    "Message",
    "QueryEvent",
    "QueryOrigin",
    "QueryRequest",
    "ResponsesRequest",
    "ResponsesResult",
    "StatusUpdate",
]

TERMINAL_PHASES: frozenset[str] = frozenset({"done", "error", "canceled"})
"""Phases after which a query never changes again."""

QueryOrigin = Literal["controller", "broker"]


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    rename="camel",
    tag_field="schema",
):
    """Base of every bus message; ``SCHEMA`` equals the ``schema`` tag and the ``Ark-Schema`` header."""

    SCHEMA: ClassVar[str] = ""


class _OpenAI(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """OpenAI wire shapes keep OpenAI's snake_case names."""


# --------------------------------------------------------------------------- work


class QueryRequest(Message, tag="ark.query-request.v1", frozen=True, kw_only=True):
    """Work for a query reconciler: the *full* spec, because broker-mode queries have no CR to read.

    ``queryId`` is the Query UID (or a UUID minted by the broker); ``generation`` makes the
    ``Nats-Msg-Id`` (``<queryId>:<generation>``) so a re-listed or restarted controller never
    dispatches the same generation twice. ``deadline`` is the absolute start-by instant (RFC 3339,
    creation + ``spec.timeout``): a reconciler that picks the request up later ends it with
    ``TimedOutInQueue`` instead of running it. Execution then gets the full ``spec.timeout`` from
    its own start, as in Ark, so time spent queued never shortens a run.
    """

    SCHEMA: ClassVar[str] = "ark.query-request.v1"

    query_id: str
    name: str
    namespace: str
    tenant: str
    generation: int = 1
    origin: QueryOrigin = "controller"
    spec: QuerySpec
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    submitted_at: str
    deadline: str | None = None
    create_resource: bool = False
    resume: ApprovalDecision | None = None
    """Set on the work that resumes a query after an approval decision: the run replays its
    step log (:class:`~ark_mesh.contracts.approvals.RunLog`) and applies this decision to the
    pending tool calls. Each decision is its own message (its own ``Nats-Msg-Id``)."""

    @property
    def msg_id(self) -> str:
        base = f"{self.query_id}:{self.generation}"
        return base if self.resume is None else f"{base}:{self.resume.task_id}"

    @property
    def has_resource(self) -> bool:
        """Whether a Query resource stands for this query: every query the controller
        dispatches, and a broker-mode query only when it asked for a mirror."""
        return self.origin != "broker" or self.create_resource

    def as_query(self, status: QueryStatus | None = None) -> Query:
        """The Query this request stands for (with ``status``), e.g. for ``ark.completedQuery``."""
        return Query(
            metadata=ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                uid=self.query_id,
                generation=self.generation,
                labels=self.labels,
                annotations=self.annotations,
            ),
            spec=self.spec,
            status=status,
        )


class ResponsesRequest(Message, tag="ark.responses-request.v1", frozen=True, kw_only=True):
    """A chat-completions / Responses-style request on a Model or Agent (``target`` = ``agent/x``)."""

    SCHEMA: ClassVar[str] = "ark.responses-request.v1"

    request_id: str
    tenant: str
    namespace: str
    target: str
    messages: list[dict[str, Any]]
    stream: bool = False
    parameters: dict[str, Any] | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    timeout: str | None = None
    submitted_at: str
    deadline: str | None = None


class ResponsesResult(Message, tag="ark.responses-result.v1", frozen=True, kw_only=True):
    """The outcome of a :class:`ResponsesRequest`: the assistant message, usage, or the error."""

    SCHEMA: ClassVar[str] = "ark.responses-result.v1"

    request_id: str
    tenant: str
    status: Literal["completed", "failed", "canceled"]
    message: dict[str, Any] | None = None
    usage: TokenUsage | None = None
    conversation_id: str | None = None
    error: str | None = None
    finished_at: str


class EmbeddingsRequest(Message, tag="ark.embeddings-request.v1", frozen=True, kw_only=True):
    """Texts to embed with the embeddings Model named ``model``."""

    SCHEMA: ClassVar[str] = "ark.embeddings-request.v1"

    request_id: str
    tenant: str
    namespace: str
    model: str
    input: list[str]
    dimensions: int | None = None
    submitted_at: str


class EmbeddingsUsage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingsResult(Message, tag="ark.embeddings-result.v1", frozen=True, kw_only=True):
    """The vectors of an :class:`EmbeddingsRequest`, in input order, or the error."""

    SCHEMA: ClassVar[str] = "ark.embeddings-result.v1"

    request_id: str
    tenant: str
    status: Literal["completed", "failed"]
    model: str | None = None
    embeddings: list[list[float]] | None = None
    usage: EmbeddingsUsage | None = None
    error: str | None = None
    finished_at: str


# --------------------------------------------------------------------------- chunks


class ChunkFunctionCall(_OpenAI, frozen=True):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(_OpenAI, frozen=True):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunctionCall | None = None


class ChunkDelta(_OpenAI, frozen=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(_OpenAI, frozen=True, omit_defaults=False):
    """``index`` and ``finish_reason`` are always present, as OpenAI sends them."""

    index: int = 0
    delta: ChunkDelta = msgspec.field(default_factory=ChunkDelta)
    finish_reason: str | None = None


class ChunkUsage(_OpenAI, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChunkError(_OpenAI, frozen=True, omit_defaults=False):
    """Every field present, ``type`` too: Ark's broker checks an error line has a string
    ``type`` before forwarding it, and OpenAI's clients read it."""

    message: str
    type: str = "server_error"
    code: str | None = None


class ArkChunkMetadata(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel", gc=False
):
    """The ``ark`` object Ark adds to every chunk: who produced these tokens, for which query.

    ``query`` is the Query **UID**; ``target`` is ``<type>/<name>``; ``completedQuery`` appears on
    the final chunk only and is the authoritative end-of-stream summary (status incl. ``a2a``).
    """

    query: str
    session: str | None = None
    target: str | None = None
    team: str | None = None
    agent: str | None = None
    model: str | None = None
    system_message: str | None = None
    completed_query: Query | None = None
    tool_approval: ToolApprovalLine | None = None
    synthesized: bool = False
    """ark-mesh's mark on a final chunk a reader built from the query's terminal status because
    none was stored (its publisher could not store it); omitted otherwise."""


class Chunk(Message, tag="ark.chunk.v1", frozen=True, kw_only=True, gc=False, omit_defaults=False):
    """An OpenAI ``chat.completion.chunk`` plus Ark's ``ark`` object and a per-query ``seq``.

    ``seq`` starts at 1 and increases by one per chunk of a query, so readers drop duplicates
    after a redelivery. The final chunk has id ``chatcmpl-final`` and ``ark.completedQuery``; an
    error line carries ``error`` instead of choices.
    """

    SCHEMA: ClassVar[str] = "ark.chunk.v1"

    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: ChunkUsage | None = None
    error: ChunkError | None = None
    ark: ArkChunkMetadata
    seq: int

    @property
    def is_final(self) -> bool:
        return self.ark.completed_query is not None


class ChunkHeadArk(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """Of a chunk's ``ark`` object, whether the two markers a relay acts on are there; their
    JSON is kept undecoded (empty when absent)."""

    completed_query: msgspec.Raw = msgspec.Raw()
    tool_approval: msgspec.Raw = msgspec.Raw()


class ChunkHead(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="schema", tag=Chunk.SCHEMA
):
    """What a reader that relays a stored :class:`Chunk` needs to know of it: its ``seq`` (the
        order, :mod:`~ark_mesh.contracts.sequencing`), whether it is the final chunk, whether it is
        an error line. Everything else is skipped by the decoder, not built: the broker forwards the
        stored bytes (``openai_compat.openai_chunk``), so building the whole chunk per client was
        work nobody read (issue 14). Decodes every stored chunk (unknown fields are ignored) and,
    like :class:`Chunk`, refuses another message's ``schema`` tag."""

    seq: int
    ark: ChunkHeadArk = msgspec.field(default_factory=ChunkHeadArk)
    error: msgspec.Raw = msgspec.Raw()

    @property
    def is_final(self) -> bool:
        return _present(self.ark.completed_query)

    @property
    def is_error(self) -> bool:
        return _present(self.error)


def _present(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw) != b"null"


# --------------------------------------------------------------------------- events and status


class QueryEvent(Message, tag="ark.event.v1", frozen=True, kw_only=True, gc=False):
    """An Ark operation event (``QueryExecutionStart``, ``LLMCallComplete``, ``ToolCallError`` …).

    Same shape as Ark's broker ``POST /events`` body; ``data`` values are all strings, as in Ark.
    """

    SCHEMA: ClassVar[str] = "ark.event.v1"

    timestamp: str
    event_type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str = ""
    data: dict[str, str] = msgspec.field(default_factory=dict)


class StatusUpdate(Message, tag="ark.status.v1", frozen=True, kw_only=True, gc=False):
    """A phase transition or the final result of one query, as a full status snapshot.

    Order is ``(attempt, seq)``: ``attempt`` grows with each delivery of the work message and
    ``seq`` with each update within an attempt. Appliers keep the greatest key they have applied,
    drop anything not greater, and never leave a terminal phase.
    """

    SCHEMA: ClassVar[str] = "ark.status.v1"

    query_id: str
    name: str
    namespace: str
    tenant: str
    generation: int = 1
    attempt: int = 1
    seq: int
    phase: QueryPhase
    status: QueryStatus
    timestamp: str
    reconciler: str | None = None
    round: int = 0
    """How many approval decisions the run had when it reported this: a run resumed after
    ``input-required`` reports ``running`` again, in a later round."""
    approval: ApprovalRequest | None = None
    """On an ``input-required`` update: the pause, from which the status writer creates the
    approval's A2ATask (``a2a-task-<taskId>``)."""
    has_resource: bool = True
    """``false``: no Query resource stands for this query (a broker-mode query without
    ``createResource``), so status-sync writes nothing and asks Kubernetes nothing. Omitted
    when true, so the updates of Query-backed queries are what they were."""

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.round, self.attempt, self.seq)


class ConversationMessages(Message, tag="ark.memory.v1", frozen=True, kw_only=True):
    """Messages appended to a conversation (the JetStream memory store), one record per save.

    ``queryId`` is the Query **name**, as in Ark's memory API, so a finalizer can find a query's
    messages by the key Ark uses.
    """

    SCHEMA: ClassVar[str] = "ark.memory.v1"

    conversation_id: str
    query_id: str
    messages: list[dict[str, Any]]
    timestamp: str


class CancelRequest(Message, tag="ark.cancel.v1", frozen=True, kw_only=True):
    """Asks the reconciler running ``queryId`` to stop the live model stream and tool call."""

    SCHEMA: ClassVar[str] = "ark.cancel.v1"

    query_id: str
    tenant: str
    reason: str = "canceled"
    requested_at: str
    requested_by: str | None = None


class DeadLetter(Message, tag="ark.dead-letter.v1", frozen=True, kw_only=True):
    """A message the bus gave up on, kept byte-for-byte with the reason (``data`` is base64 in JSON)."""

    SCHEMA: ClassVar[str] = "ark.dead-letter.v1"

    subject: str
    reason: str
    data: bytes
    headers: dict[str, str] | None = None
    deliveries: int = 0
    stream_sequence: int | None = None
    service: str | None = None
    dead_at: str


AnyMessage = (
    QueryRequest
    | ResponsesRequest
    | ResponsesResult
    | EmbeddingsRequest
    | EmbeddingsResult
    | Chunk
    | QueryEvent
    | StatusUpdate
    | CancelRequest
    | ConversationMessages
    | DeadLetter
)
"""Decode target for "any bus message" (dispatches on the ``schema`` tag)."""

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.SCHEMA: cls
    for cls in (
        QueryRequest,
        ResponsesRequest,
        ResponsesResult,
        EmbeddingsRequest,
        EmbeddingsResult,
        Chunk,
        QueryEvent,
        StatusUpdate,
        CancelRequest,
        ConversationMessages,
        DeadLetter,
    )
}
"""Schema id → message type."""
