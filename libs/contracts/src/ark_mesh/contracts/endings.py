"""How a query ends, built in one place: the ending kinds and the three shapes readers see.

A query ends in ``done``, ``error`` (Ark's ``TimedOutInQueue`` / ``TimedOutInExecution`` are
errors with their own reason) or ``canceled``, and whoever decides it — the resolver in the
controller or in the query-reconciler, the query-reconciler for a dead letter or a cancel that
came before the work, the controller for a query it refuses, the responses-reconciler — reports
the same three things:

* the terminal :class:`~ark_mesh.contracts.QueryStatus` (:func:`terminal_status`), with the
  ``Completed=True`` condition carrying Ark's reason;
* the ``QueryExecutionComplete`` / ``Canceled`` / ``Error`` operation event (:func:`ending_event`);
* the ``chatcmpl-final`` chunk carrying the completed query (:func:`final_chunk`).

They are pure functions of the :class:`Ending` (what happened), the :class:`RunFacts` (what the
run knew about itself when it stopped: target, tokens, conversation, …) and the instant, so a
reader cannot tell which path produced an ending, and a contract test can hold every path to
that. Each producer keeps its own transport (status subresource, JetStream, in-process sink).

The module is here rather than in the resolver because the controller and the services build
endings without running the resolver, and contracts is the layer all of them already share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ark_mesh.contracts import ark
from ark_mesh.contracts.durations import format_duration, rfc3339
from ark_mesh.contracts.messages import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryEvent,
    QueryRequest,
)
from ark_mesh.contracts.resources import (
    A2AMetadata,
    Condition,
    QueryResponse,
    QuerySpec,
    QueryStatus,
    QueryTarget,
    TokenUsage,
)

__all__ = [
    "CANCELED_MESSAGE",
    "FINAL_CHUNK_ID",
    "INPUT_IN_EVENTS",
    "SUCCEEDED_MESSAGE",
    "TIMED_OUT_IN_EXECUTION_MESSAGE",
    "TIMED_OUT_IN_QUEUE_MESSAGE",
    "Ending",
    "EndingKind",
    "RunFacts",
    "condition",
    "ending_event",
    "error_raw",
    "final_chunk",
    "last_assistant_text",
    "legacy_responses",
    "query_event",
    "query_identity",
    "target_label",
    "terminal_status",
]

FINAL_CHUNK_ID = "chatcmpl-final"
"""The id of the last chunk of every query stream; it carries ``ark.completedQuery``."""

SUCCEEDED_MESSAGE = "Query completed successfully"
CANCELED_MESSAGE = "Query was canceled"
TIMED_OUT_IN_EXECUTION_MESSAGE = "Query timed out during execution"
TIMED_OUT_IN_QUEUE_MESSAGE = "Query timed out before execution began"

INPUT_IN_EVENTS = 48
"""How much of the input the ending event repeats (Ark truncates it to 48 characters)."""

EndingKind = Literal["done", "error", "canceled", "timed-out"]
TerminalPhase = Literal["done", "error", "canceled"]

_EVENT_REASON: dict[TerminalPhase, str] = {
    "done": "QueryExecutionComplete",
    "error": "QueryExecutionError",
    "canceled": "QueryExecutionCanceled",
}


def error_raw(message: str) -> str:
    """``response.raw`` of an error: Ark's ``[{"error": "target_execution_error", …}]``."""
    return json.dumps([{"error": "target_execution_error", "message": message}])


def last_assistant_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last assistant message with non-empty text: Ark's ``response.content``."""
    for message in reversed(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and content.strip():
            return content
    return ""


@dataclass(frozen=True)
class Ending:
    """How a query ended: phase, Ark's ``Completed`` reason and message, and the response text.

    Build it with the constructors, which hold Ark's reasons and messages, rather than by hand.
    """

    phase: TerminalPhase
    reason: str
    message: str
    content: str = ""
    raw: str | None = None

    @property
    def kind(self) -> EndingKind:
        """``timed-out`` for either timeout reason, else the phase."""
        if self.reason in (ark.Reason.TIMED_OUT_IN_QUEUE, ark.Reason.TIMED_OUT_IN_EXECUTION):
            return "timed-out"
        return self.phase

    @classmethod
    def done(cls, messages: Sequence[Mapping[str, Any]]) -> Ending:
        """A normal answer: ``content`` is the last assistant text, ``raw`` the turn's messages."""
        content = last_assistant_text(messages)
        raw = json.dumps(list(messages) or [{"role": "assistant", "content": content}])
        return cls("done", ark.Reason.SUCCEEDED, SUCCEEDED_MESSAGE, content=content, raw=raw)

    @classmethod
    def error(cls, message: str, reason: str = ark.Reason.ERRORED) -> Ending:
        """A failure; the message is also ``response.content`` (Ark's rule)."""
        return cls("error", reason, message, content=message, raw=error_raw(message))

    @classmethod
    def canceled(cls) -> Ending:
        """``spec.cancel`` (or a cancel request) stopped it; Ark writes no response.

        Report it with :meth:`RunFacts.before_start` facts even when the run had begun: the
        controller cancels a standalone query itself while the run also stops and reports, and
        the two must be the same ending whichever is stored first.
        """
        return cls("canceled", ark.Reason.CANCELED, CANCELED_MESSAGE)

    @classmethod
    def timed_out_in_execution(cls) -> Ending:
        return cls.error(TIMED_OUT_IN_EXECUTION_MESSAGE, ark.Reason.TIMED_OUT_IN_EXECUTION)

    @classmethod
    def timed_out_in_queue(cls, message: str = TIMED_OUT_IN_QUEUE_MESSAGE) -> Ending:
        """The start-by deadline passed before a run began."""
        return cls.error(message, ark.Reason.TIMED_OUT_IN_QUEUE)


@dataclass(frozen=True)
class RunFacts:
    """What a run knew about itself when it ended; the defaults describe one that never ran.

    Use :meth:`before_start` for an ending decided before any run (it echoes what the spec
    names), and fill the fields from the run otherwise.
    """

    target: QueryTarget | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    elapsed: timedelta | None = None
    conversation_id: str | None = None
    a2a: A2AMetadata | None = None
    conditions: tuple[Condition, ...] = ()
    input: str = ""

    @classmethod
    def before_start(cls, spec: QuerySpec) -> RunFacts:
        """Nothing ran: the named target and the caller's conversation id, nothing measured."""
        return cls(target=spec.target, conversation_id=spec.conversation_id)


def condition(
    kind: str, status: bool, reason: str, message: str, now: datetime, generation: int
) -> Condition:
    """A ``metav1.Condition`` (transition time in whole seconds, as the API server keeps it)."""
    return Condition(
        type=kind,
        status="True" if status else "False",
        reason=reason,
        message=message,
        last_transition_time=rfc3339(now).split(".")[0] + "Z",
        observed_generation=generation,
    )


def legacy_responses(response: QueryResponse | None) -> list[QueryResponse] | None:
    """``status.responses`` as Ark's targets-era controllers wrote it: one ``{target, content}``
    per target, and a query has exactly one. Clients and tests of that generation read the answer
    there; the newest read ``status.response``. Only target and content are repeated, so the
    second copy costs the answer's text once more, never ``raw``."""
    if response is None:
        return None
    return [QueryResponse(target=response.target, content=response.content)]


def terminal_status(
    ending: Ending, facts: RunFacts, *, now: datetime, generation: int
) -> QueryStatus:
    """The terminal ``Query.status``: ``Completed=True`` with the ending's reason, the response
    (none when canceled, as in Ark), and what the run measured."""
    response = None
    if ending.phase != "canceled":
        response = QueryResponse(
            target=facts.target,
            content=ending.content,
            raw=ending.raw,
            phase=ending.phase,
            a2a=facts.a2a,
        )
    return QueryStatus(
        phase=ending.phase,
        conditions=[
            condition(ark.COMPLETED, True, ending.reason, ending.message, now, generation),
            *facts.conditions,
        ],
        response=response,
        responses=legacy_responses(response),
        conversation_id=facts.conversation_id,
        token_usage=facts.usage if facts.usage.total_tokens > 0 else None,
        duration=format_duration(facts.elapsed) if facts.elapsed is not None else None,
        a2a=facts.a2a,
    )


def query_identity(request: QueryRequest, conversation_id: str | None = None) -> dict[str, str]:
    """Who an operation event or span is about: the query, its namespace, its session (Ark's
    effective one: ``spec.sessionId``, else the query UID) and, once known, the conversation."""
    identity = {
        "queryId": request.query_id,
        "queryName": request.name,
        "queryNamespace": request.namespace,
        "sessionId": request.spec.session_id or request.query_id,
    }
    if conversation_id:
        identity["conversationId"] = conversation_id
    return identity


def query_event(
    request: QueryRequest,
    reason: str,
    message: str,
    data: Mapping[str, str] | None = None,
    *,
    now: datetime,
    conversation_id: str | None = None,
    event_type: Literal["Normal", "Warning"] = "Normal",
) -> QueryEvent:
    """An Ark operation event about ``request``: every ``data`` value a string, the query's
    identity first, then ``data``, then ``message`` and ``timestamp``."""
    timestamp = rfc3339(now)
    payload = query_identity(request, conversation_id)
    payload.update(data or {})
    payload.update(message=message, timestamp=timestamp)
    return QueryEvent(
        timestamp=timestamp,
        event_type=event_type,
        reason=reason,
        message=f"{message} (timestamp: {timestamp})",
        data=payload,
    )


def ending_event(
    request: QueryRequest, ending: Ending, facts: RunFacts, *, now: datetime
) -> QueryEvent:
    """``QueryExecutionComplete`` (with tokens and duration), ``…Canceled`` or ``…Error``."""
    data: dict[str, str] = {"input": facts.input[:INPUT_IN_EVENTS]}
    if facts.target is not None:
        data["targetType"] = facts.target.type
        data[facts.target.type] = facts.target.name
    name = request.name
    if ending.phase == "done":
        data.update(
            promptTokens=str(facts.usage.prompt_tokens),
            completionTokens=str(facts.usage.completion_tokens),
            totalTokens=str(facts.usage.total_tokens),
        )
        if facts.elapsed is not None:
            data["durationMs"] = str(int(facts.elapsed.total_seconds() * 1000))
        message = f"Query {name} completed"
    elif ending.phase == "canceled":
        message = f"Query {name} was canceled"
    else:
        message = f"Query {name} failed: {ending.message}"
        data["error"] = ending.message
    return query_event(
        request,
        _EVENT_REASON[ending.phase],
        message,
        data,
        now=now,
        conversation_id=facts.conversation_id,
        event_type="Warning" if ending.phase == "error" else "Normal",
    )


def target_label(target: QueryTarget | None) -> str | None:
    """``agent/name``: how chunk metadata names a target."""
    return f"{target.type}/{target.name}" if target is not None else None


def final_chunk(request: QueryRequest, status: QueryStatus, *, seq: int, now: datetime) -> Chunk:
    """The ``chatcmpl-final`` chunk: model = the query's name, empty delta, the completed query.

    It depends only on the request and the terminal status, so it can be rebuilt from a stored
    status (a replica that died between the two) and come out the same.
    """
    target = (status.response.target if status.response else None) or request.spec.target
    return Chunk(
        id=FINAL_CHUNK_ID,
        created=int(now.timestamp()),
        model=request.name,
        choices=[ChunkChoice(delta=ChunkDelta(content=""))],
        ark=ArkChunkMetadata(
            query=request.query_id,
            session=request.spec.session_id or request.query_id,
            target=target_label(target),
            completed_query=request.as_query(status),
        ),
        seq=seq,
    )
