"""The subject grammar of ARCHITECTURE §4: the public contract custom consumers subscribe to.

The tenant is always the second token, so one NATS permission ``ark.<tenant>.>`` isolates a
tenant. Builders validate every token they insert and :func:`parse` is their exact inverse, so a
subject that round-trips is well-formed by construction::

    ark.<tenant>.work.query | .work.responses | .work.embeddings
    ark.<tenant>.query.<id>.chunk | .event | .status | .result | .cancel
    ark.<tenant>.memory.<conversationId>
    ark.<tenant>.dlq.<kind>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ark_mesh.contracts.errors import SubjectError

__all__ = [
    "ARK_CHUNKS",
    "ARK_DLQ",
    "ARK_EVENTS",
    "ARK_MEMORY",
    "ARK_STATUS",
    "ARK_WORK",
    "CANCEL_BUCKET",
    "QUERIES_BUCKET",
    "RESPONSES_BUCKET",
    "RUNS_BUCKET",
    "SESSIONS_BUCKET",
    "STREAM_SUBJECTS",
    "Subject",
    "SubjectKind",
    "WorkKind",
    "dlq",
    "memory",
    "parse",
    "query_cancel",
    "query_chunk",
    "query_event",
    "query_result",
    "query_status",
    "stream_for",
    "validate_token",
    "work",
    "work_embeddings",
    "work_query",
    "work_responses",
]

ROOT = "ark"
ARK_WORK = "ARK_WORK"
ARK_CHUNKS = "ARK_CHUNKS"
ARK_EVENTS = "ARK_EVENTS"
ARK_STATUS = "ARK_STATUS"
ARK_MEMORY = "ARK_MEMORY"
ARK_DLQ = "ARK_DLQ"
QUERIES_BUCKET = "ark-queries"
"""KV bucket holding the latest status of every broker-mode query (the broker's read model)."""
CANCEL_BUCKET = "ark-cancel"
"""KV bucket of cancel flags, so a worker that starts after the cancel was sent still sees it."""
RUNS_BUCKET = "ark-runs"
"""KV bucket of run step logs (:class:`~ark_mesh.contracts.approvals.RunLog`), key
``<tenant>.<queryId>``: what a redelivered or resumed query replays instead of re-executing."""
SESSIONS_BUCKET = "ark-sessions"
"""KV bucket of the sessions read model (Ark's broker ``/sessions``), key
``<tenant>.<sessionKey>``: the aggregate the brokers fold from ``ARK_EVENTS``."""

RESPONSES_BUCKET = "ark-responses"
"""KV bucket of stored OpenAI Responses (``POST /openai/v1/responses``), key
``<tenant>.<responseId>``: the conversation a ``previous_response_id`` continues, readable by
every broker replica."""

WorkKind = Literal["query", "responses", "embeddings"]
QueryChannel = Literal["chunk", "event", "status", "result", "cancel"]
SubjectKind = Literal["work", "query", "memory", "dlq"]

STREAM_SUBJECTS: dict[str, tuple[str, ...]] = {
    ARK_WORK: (f"{ROOT}.*.work.>",),
    ARK_CHUNKS: (f"{ROOT}.*.query.*.chunk",),
    ARK_EVENTS: (f"{ROOT}.*.query.*.event",),
    ARK_STATUS: (f"{ROOT}.*.query.*.status", f"{ROOT}.*.query.*.result"),
    ARK_MEMORY: (f"{ROOT}.*.memory.*",),
    ARK_DLQ: (f"{ROOT}.*.dlq.*",),
}
"""Default subjects of each stream (cancel is core NATS and has no stream)."""

_WORK_KINDS: frozenset[str] = frozenset({"query", "responses", "embeddings"})
_QUERY_CHANNELS: frozenset[str] = frozenset({"chunk", "event", "status", "result", "cancel"})
_BAD_TOKEN = re.compile(r"[.*>\s]")


def validate_token(value: str, what: str) -> str:
    """Return ``value`` if it is a valid NATS subject token, else raise naming ``what``."""
    if not value:
        raise SubjectError(f"{what} token is empty")
    bad = _BAD_TOKEN.search(value)
    if bad is not None:
        char = bad.group(0)
        shown = "whitespace" if char.isspace() else repr(char)
        raise SubjectError(f"{what} token {value!r} contains {shown}, which NATS subjects forbid")
    return value


def work(tenant: str, kind: WorkKind) -> str:
    if kind not in _WORK_KINDS:
        raise SubjectError(f"unknown work kind {kind!r}; expected one of {sorted(_WORK_KINDS)}")
    return f"{ROOT}.{validate_token(tenant, 'tenant')}.work.{kind}"


def work_query(tenant: str) -> str:
    return work(tenant, "query")


def work_responses(tenant: str) -> str:
    return work(tenant, "responses")


def work_embeddings(tenant: str) -> str:
    return work(tenant, "embeddings")


def _query(tenant: str, query_id: str, channel: QueryChannel) -> str:
    return f"{ROOT}.{validate_token(tenant, 'tenant')}.query.{validate_token(query_id, 'query id')}.{channel}"


def query_chunk(tenant: str, query_id: str) -> str:
    return _query(tenant, query_id, "chunk")


def query_event(tenant: str, query_id: str) -> str:
    return _query(tenant, query_id, "event")


def query_status(tenant: str, query_id: str) -> str:
    return _query(tenant, query_id, "status")


def query_result(tenant: str, request_id: str) -> str:
    """Where a responses or embeddings reconciler publishes its one result for ``request_id``."""
    return _query(tenant, request_id, "result")


def query_cancel(tenant: str, query_id: str) -> str:
    return _query(tenant, query_id, "cancel")


def memory(tenant: str, conversation_id: str) -> str:
    return f"{ROOT}.{validate_token(tenant, 'tenant')}.memory.{validate_token(conversation_id, 'conversation id')}"


def dlq(tenant: str, kind: str) -> str:
    return (
        f"{ROOT}.{validate_token(tenant, 'tenant')}.dlq.{validate_token(kind, 'dead-letter kind')}"
    )


@dataclass(frozen=True, slots=True)
class Subject:
    """A parsed subject. ``name`` is the work kind, query channel, conversation id or DLQ kind."""

    kind: SubjectKind
    tenant: str
    name: str
    query_id: str | None = None

    def __str__(self) -> str:
        if self.kind == "query":
            assert self.query_id is not None
            return f"{ROOT}.{self.tenant}.query.{self.query_id}.{self.name}"
        return f"{ROOT}.{self.tenant}.{self.kind}.{self.name}"

    @property
    def stream(self) -> str | None:
        return stream_for(self)


def parse(subject: str) -> Subject:
    """Parse a concrete subject (no wildcards); the inverse of the builders above."""
    tokens = subject.split(".")
    if len(tokens) < 4 or tokens[0] != ROOT:
        raise SubjectError(
            f"subject {subject!r} is not an ark-mesh subject (ark.<tenant>.<kind>...)"
        )
    for token in tokens:
        validate_token(token, f"token of subject {subject!r}")
    tenant, kind = tokens[1], tokens[2]
    if kind == "query":
        if len(tokens) != 5 or tokens[4] not in _QUERY_CHANNELS:
            raise SubjectError(
                f"subject {subject!r}: expected ark.<tenant>.query.<id>.<{'|'.join(sorted(_QUERY_CHANNELS))}>"
            )
        return Subject(kind="query", tenant=tenant, name=tokens[4], query_id=tokens[3])
    if len(tokens) != 4:
        raise SubjectError(
            f"subject {subject!r} has {len(tokens)} tokens; expected 4 for kind {kind!r}"
        )
    if kind == "work":
        if tokens[3] not in _WORK_KINDS:
            raise SubjectError(f"subject {subject!r}: unknown work kind {tokens[3]!r}")
        return Subject(kind="work", tenant=tenant, name=tokens[3])
    if kind == "memory":
        return Subject(kind="memory", tenant=tenant, name=tokens[3])
    if kind == "dlq":
        return Subject(kind="dlq", tenant=tenant, name=tokens[3])
    raise SubjectError(f"subject {subject!r}: unknown kind {kind!r}")


def stream_for(subject: Subject) -> str | None:
    """The default stream a subject is stored in, or ``None`` for core-NATS cancel subjects."""
    if subject.kind == "work":
        return ARK_WORK
    if subject.kind == "memory":
        return ARK_MEMORY
    if subject.kind == "dlq":
        return ARK_DLQ
    return {
        "chunk": ARK_CHUNKS,
        "event": ARK_EVENTS,
        "status": ARK_STATUS,
        "result": ARK_STATUS,
    }.get(subject.name)
