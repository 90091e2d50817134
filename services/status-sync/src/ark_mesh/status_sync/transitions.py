"""The Kubernetes Event recorded when a Query's phase changes.

An Ark user reads a Query's story with ``kubectl describe query``: the reasons there are the
``Completed`` condition reasons Ark writes (``QueryRunning``, ``QuerySucceeded``,
``QueryErrored``, ``QueryCanceled``, ``TimedOutInQueue``, ``TimedOutInExecution``), so the event
takes the update's own ``Completed`` reason and message, and falls back to the phase when an
update carries no condition. Errors are ``Warning`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ark_mesh.contracts import StatusUpdate, ark

__all__ = ["Transition", "transition"]

_BY_PHASE: Final[dict[str, str]] = {
    "pending": ark.Reason.NOT_STARTED,
    "queued": ark.Reason.QUEUED,
    "running": ark.Reason.RUNNING,
    "done": ark.Reason.SUCCEEDED,
    "error": ark.Reason.ERRORED,
    "canceled": ark.Reason.CANCELED,
}


@dataclass(frozen=True)
class Transition:
    reason: str
    note: str
    type: Literal["Normal", "Warning"]


def transition(update: StatusUpdate, previous_phase: str | None) -> Transition:
    completed = next((c for c in update.status.conditions or () if c.type == ark.COMPLETED), None)
    reason = (completed.reason if completed else "") or _BY_PHASE.get(update.phase, "QueryPhase")
    detail = completed.message if completed and completed.message else f"phase {update.phase}"
    moved = f"{previous_phase or 'new'} -> {update.phase}"
    return Transition(
        reason=reason,
        note=f"{detail} ({moved})",
        type="Warning" if update.phase == "error" else "Normal",
    )
