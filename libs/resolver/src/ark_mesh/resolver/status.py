"""Query status as Ark writes it: phases, the ``Completed`` condition and memory conditions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ark_mesh.contracts import (
    A2AMetadata,
    Condition,
    QueryPhase,
    QueryResponse,
    QueryStatus,
    QueryTarget,
    TokenUsage,
    ark,
)
from ark_mesh.resolver.clock import rfc3339

__all__ = [
    "REASONS",
    "Ending",
    "condition",
    "legacy_responses",
    "memory_conditions",
    "running_status",
    "terminal_status",
    "waiting_status",
]


REASONS = ark.Reason


TIMEOUT_MESSAGE = "Query timed out during execution"
CANCELED_MESSAGE = "Query was canceled"
QUEUE_TIMEOUT_MESSAGE = "Query timed out before execution began"


def condition(
    kind: str, status: bool, reason: str, message: str, now: datetime, generation: int
) -> Condition:
    return Condition(
        type=kind,
        status="True" if status else "False",
        reason=reason,
        message=message,
        last_transition_time=rfc3339(now).split(".")[0] + "Z",
        observed_generation=generation,
    )


def waiting_status(
    phase: QueryPhase, reason: str, message: str, now: datetime, generation: int
) -> QueryStatus:
    """A non-terminal phase other than running (``pending``, ``queued``): ``Completed=False``."""
    return QueryStatus(
        phase=phase,
        conditions=[condition(ark.COMPLETED, False, reason, message, now, generation)],
    )


def running_status(now: datetime, generation: int) -> QueryStatus:
    return QueryStatus(
        phase="running",
        conditions=[
            condition(
                ark.COMPLETED, False, REASONS.RUNNING, "The query is running", now, generation
            )
        ],
    )


def memory_conditions(
    *, used: bool, unavailable: bool, degraded: str | None, now: datetime, generation: int
) -> list[Condition]:
    """``MemoryUnavailable`` / ``MemoryDegraded``, written only when a conversation is in play."""
    if unavailable:
        return [
            condition(
                ark.MEMORY_UNAVAILABLE,
                True,
                "NoMemoryBackend",
                "A conversationId was given but no Memory is configured; ran without history",
                now,
                generation,
            )
        ]
    if not used and degraded is None:
        return []
    conditions = [
        condition(
            ark.MEMORY_UNAVAILABLE,
            False,
            "MemoryReachable",
            "Memory is configured",
            now,
            generation,
        )
    ]
    if degraded is not None:
        conditions.append(
            condition(
                ark.MEMORY_DEGRADED,
                True,
                "GetMessagesFailed",
                f"Ran without history: {degraded}",
                now,
                generation,
            )
        )
    else:
        conditions.append(
            condition(
                ark.MEMORY_DEGRADED, False, "MemoryHealthy", "History loaded", now, generation
            )
        )
    return conditions


@dataclass(frozen=True)
class Ending:
    """How a resolution ended, before it is turned into a status."""

    phase: QueryPhase
    reason: str
    message: str
    content: str = ""
    raw: str | None = None


def error_raw(message: str) -> str:
    return json.dumps([{"error": "target_execution_error", "message": message}])


def legacy_responses(response: QueryResponse | None) -> list[QueryResponse] | None:
    """``status.responses`` as Ark's targets-era controllers wrote it: one ``{target, content}``
    per target, and a query has exactly one. Clients and tests of that generation read the answer
    there; the newest read ``status.response``. Only target and content are repeated, so the
    second copy costs the answer's text once more, never ``raw``."""
    if response is None:
        return None
    return [QueryResponse(target=response.target, content=response.content)]


def terminal_status(
    ending: Ending,
    *,
    target: QueryTarget | None,
    usage: TokenUsage,
    duration: str | None,
    conversation_id: str | None,
    a2a: A2AMetadata | None,
    extra_conditions: list[Condition],
    now: datetime,
    generation: int,
) -> QueryStatus:
    response = None
    if ending.phase != "canceled":
        response = QueryResponse(
            target=target,
            content=ending.content,
            raw=ending.raw,
            phase=ending.phase,
            a2a=a2a,
        )
    return QueryStatus(
        phase=ending.phase,
        conditions=[
            condition(ark.COMPLETED, True, ending.reason, ending.message, now, generation),
            *extra_conditions,
        ],
        response=response,
        responses=legacy_responses(response),
        conversation_id=conversation_id,
        token_usage=usage if usage.total_tokens > 0 else None,
        duration=duration,
        a2a=a2a,
    )
