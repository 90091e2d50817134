"""Outcomes the service reports itself, without running the resolver, in the resolver's shapes.

Three situations end a query outside :meth:`QueryReconciler.resolve`: a cancel flag raised before
the work was picked up, a work message the bus dead-lettered, and a redelivery that finds the
terminal status already published but not the final chunk (the previous replica died in
between). Each must look exactly like a resolver ending to readers — the same ``Completed``
condition, the same ``chatcmpl-final`` chunk with ``ark.completedQuery`` — so they are built
from the resolver's own status helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryEvent,
    QueryPhase,
    QueryRequest,
    QueryStatus,
    StatusUpdate,
    TokenUsage,
    rfc3339,
)
from ark_mesh.resolver.context import FINAL_CHUNK_ID
from ark_mesh.resolver.status import (
    CANCELED_MESSAGE,
    REASONS,
    Ending,
    error_raw,
    terminal_status,
)

__all__ = [
    "canceled_ending",
    "ending_event",
    "ending_update",
    "error_ending",
    "final_chunk",
    "rfc3339",
]


def canceled_ending() -> Ending:
    return Ending("canceled", REASONS.CANCELED, CANCELED_MESSAGE)


def error_ending(message: str, reason: str = REASONS.ERRORED) -> Ending:
    return Ending("error", reason, message, content=message, raw=error_raw(message))


def _status(request: QueryRequest, ending: Ending, now: datetime) -> QueryStatus:
    return terminal_status(
        ending,
        target=request.spec.target,
        usage=TokenUsage(),
        duration=None,
        conversation_id=request.spec.conversation_id,
        a2a=None,
        extra_conditions=[],
        now=now,
        generation=request.generation,
    )


def ending_update(
    request: QueryRequest,
    ending: Ending,
    *,
    attempt: int,
    seq: int,
    reconciler: str | None,
    now: datetime | None = None,
) -> StatusUpdate:
    """The terminal :class:`StatusUpdate` of an ending the service decided itself."""
    moment = now or datetime.now(UTC)
    return StatusUpdate(
        query_id=request.query_id,
        name=request.name,
        namespace=request.namespace,
        tenant=request.tenant,
        generation=request.generation,
        attempt=attempt,
        seq=seq,
        phase=ending.phase,
        status=_status(request, ending, moment),
        timestamp=rfc3339(moment),
        reconciler=reconciler,
    )


_EVENT_REASON: dict[QueryPhase, str] = {
    "done": "QueryExecutionComplete",
    "canceled": "QueryExecutionCanceled",
}


def ending_event(request: QueryRequest, ending: Ending, now: datetime | None = None) -> QueryEvent:
    """The operation event the resolver would have emitted for this ending."""
    moment = now or datetime.now(UTC)
    timestamp = rfc3339(moment)
    reason = _EVENT_REASON.get(ending.phase, "QueryExecutionError")
    data = {
        "queryId": request.query_id,
        "queryName": request.name,
        "queryNamespace": request.namespace,
        "sessionId": request.spec.session_id or request.query_id,
        "message": ending.message,
        "timestamp": timestamp,
    }
    if ending.phase == "error":
        data["error"] = ending.message
    return QueryEvent(
        timestamp=timestamp,
        event_type="Warning" if ending.phase == "error" else "Normal",
        reason=reason,
        message=f"{ending.message} (timestamp: {timestamp})",
        data=data,
    )


def _target_label(request: QueryRequest, status: QueryStatus) -> str | None:
    target = (status.response.target if status.response else None) or request.spec.target
    return f"{target.type}/{target.name}" if target is not None else None


def final_chunk(
    request: QueryRequest, status: QueryStatus, *, seq: int, now: datetime | None = None
) -> Chunk:
    """The ``chatcmpl-final`` chunk carrying the completed query, as the resolver builds it."""
    moment = now or datetime.now(UTC)
    completed = request.as_query(status)
    return Chunk(
        id=FINAL_CHUNK_ID,
        created=int(moment.timestamp()),
        model=request.name,
        choices=[ChunkChoice(delta=ChunkDelta(content=""))],
        ark=ArkChunkMetadata(
            query=request.query_id,
            session=request.spec.session_id or request.query_id,
            target=_target_label(request, status),
            completed_query=completed,
        ),
        seq=seq,
    )
