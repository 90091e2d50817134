"""Every channel of the mesh as data: address template, stream, retention, message type.

The AsyncAPI document is generated from this table and the bus provisions streams from the same
subjects, so documentation and topology cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from ark_mesh.contracts import subjects
from ark_mesh.contracts.messages import (
    CancelRequest,
    Chunk,
    ConversationMessages,
    DeadLetter,
    EmbeddingsRequest,
    EmbeddingsResult,
    Message,
    QueryEvent,
    QueryRequest,
    ResponsesRequest,
    ResponsesResult,
    StatusUpdate,
)

__all__ = ["CHANNELS", "Channel"]


@dataclass(frozen=True, slots=True)
class Channel:
    """One subject family. ``stream`` is ``None`` for core-NATS channels (cancel)."""

    id: str
    address: str
    stream: str | None
    retention: str
    messages: tuple[type[Message], ...]
    producers: str
    consumers: str
    description: str


CHANNELS: tuple[Channel, ...] = (
    Channel(
        id="workQuery",
        address="ark.{tenant}.work.query",
        stream=subjects.ARK_WORK,
        retention="work-queue",
        messages=(QueryRequest,),
        producers="controller (standalone mode), broker",
        consumers="query-reconciler (one shared durable pull consumer)",
        description="Queries to resolve. Nats-Msg-Id is <queryId>:<generation>.",
    ),
    Channel(
        id="workResponses",
        address="ark.{tenant}.work.responses",
        stream=subjects.ARK_WORK,
        retention="work-queue",
        messages=(ResponsesRequest,),
        producers="broker (OpenAI-compatible endpoints)",
        consumers="responses-reconciler",
        description="Chat-completions / Responses-style requests on a Model or Agent.",
    ),
    Channel(
        id="workEmbeddings",
        address="ark.{tenant}.work.embeddings",
        stream=subjects.ARK_WORK,
        retention="work-queue",
        messages=(EmbeddingsRequest,),
        producers="broker",
        consumers="embeddings-reconciler",
        description="Vector generation on an embeddings Model.",
    ),
    Channel(
        id="queryChunk",
        address="ark.{tenant}.query.{queryId}.chunk",
        stream=subjects.ARK_CHUNKS,
        retention="limits, max-age",
        messages=(Chunk,),
        producers="query-reconciler, responses-reconciler",
        consumers="broker SSE, custom consumers",
        description="Token stream: OpenAI chat.completion.chunk + ark metadata + seq; "
        "the final chunk (id chatcmpl-final) carries ark.completedQuery.",
    ),
    Channel(
        id="queryEvent",
        address="ark.{tenant}.query.{queryId}.event",
        stream=subjects.ARK_EVENTS,
        retention="limits",
        messages=(QueryEvent,),
        producers="query-reconciler, controller",
        consumers="broker events API, custom consumers",
        description="Ark operation events (QueryExecutionStart, LLMCallComplete, ToolCallError, ...).",
    ),
    Channel(
        id="queryStatus",
        address="ark.{tenant}.query.{queryId}.status",
        stream=subjects.ARK_STATUS,
        retention="limits",
        messages=(StatusUpdate,),
        producers="query-reconciler",
        consumers="status-sync, broker read model",
        description="Phase transitions and the final result, ordered by (attempt, seq).",
    ),
    Channel(
        id="queryResult",
        address="ark.{tenant}.query.{queryId}.result",
        stream=subjects.ARK_STATUS,
        retention="limits",
        messages=(ResponsesResult, EmbeddingsResult),
        producers="responses-reconciler, embeddings-reconciler",
        consumers="broker",
        description="The single result of a responses or embeddings request.",
    ),
    Channel(
        id="queryCancel",
        address="ark.{tenant}.query.{queryId}.cancel",
        stream=None,
        retention="core NATS (plus a flag in the ark-cancel KV bucket)",
        messages=(CancelRequest,),
        producers="controller, broker",
        consumers="the reconciler running the query",
        description="Stops a running query; the KV flag lets a worker that starts late see it.",
    ),
    Channel(
        id="memory",
        address="ark.{tenant}.memory.{conversationId}",
        stream=subjects.ARK_MEMORY,
        retention="limits, max-age = message TTL",
        messages=(ConversationMessages,),
        producers="query-reconciler",
        consumers="query-reconciler (history reads), custom consumers",
        description="Conversation history (the JetStream memory store).",
    ),
    Channel(
        id="deadLetter",
        address="ark.{tenant}.dlq.{kind}",
        stream=subjects.ARK_DLQ,
        retention="limits",
        messages=(DeadLetter,),
        producers="every worker",
        consumers="operators, alerting",
        description="Messages the bus gave up on, byte for byte, with the reason.",
    ),
)
