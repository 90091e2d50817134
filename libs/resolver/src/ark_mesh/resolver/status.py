"""The non-terminal Query statuses (``pending``, ``queued``, ``running``, ``input-required``)
and memory conditions.

Terminal statuses are built by :mod:`ark_mesh.contracts.endings`, for every path at once.
"""

from __future__ import annotations

from datetime import datetime

from msgspec.structs import replace

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
from ark_mesh.contracts.endings import condition

__all__ = ["input_required_status", "memory_conditions", "running_status", "waiting_status"]

REASONS = ark.Reason


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


def input_required_status(
    running: QueryStatus,
    *,
    target: QueryTarget | None,
    a2a: A2AMetadata,
    conversation_id: str | None,
    usage: TokenUsage,
) -> QueryStatus:
    """A run stopped for a human's approval, as Ark writes it: phase ``input-required``, the
    ``running`` condition kept (Ark sets none for this phase), an empty response of phase
    ``input-required`` whose ``a2a.taskId`` names the approval's A2ATask, and the tokens so far.
    """
    return replace(
        running,
        phase="input-required",
        response=QueryResponse(
            target=target, content="", raw="{}", phase="input-required", a2a=a2a
        ),
        conversation_id=conversation_id,
        token_usage=usage if usage.total_tokens > 0 else None,
        a2a=a2a,
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
