"""Which status update may be written over which status: the rule every applier follows.

Part of the contract of ``ark.<tenant>.query.<id>.status``: status-sync applies it to Query
resources, the broker to its read model, and a custom consumer should apply it too.

Status updates reach status-sync out of order and more than once: JetStream redelivers, several
replicas share the consumer, a reconciler retries a query with a new attempt. The Query's status
must still only move forward. Two facts decide:

* **The phase rank.** ``pending``/``provisioning`` < ``queued`` < ``running`` <
  ``input-required``/``approval-required`` < ``evaluating`` < ``done``/``error``/``canceled``.
  An update ranked below the Query's current phase is old news; a terminal phase is final.
* **The update's order key** ``(generation, round, rank, attempt, seq)`` against the newest
  update published for the query (the last record of its status subject). Within one rank the
  phase alone cannot say which of two updates is newer — ``(attempt, seq)`` can. ``round``
  counts approval decisions: a query resumed after ``input-required`` runs again, and its
  ``running`` of round 1 is newer than the ``input-required`` of round 0 (the controller
  writes that ``running`` itself when it resumes the query, as Ark's does). An update that a
  newer one already follows is skipped: the newer one is applied when its turn comes, so the
  status jumps straight to it (fewer writes when catching up).

An update whose phase equals the Query's current phase writes nothing: status is written at
phase changes only, never per chunk or per replay (ARCHITECTURE §6, "no reconciliation loops").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ark_mesh.contracts.messages import TERMINAL_PHASES, StatusUpdate

__all__ = ["PHASE_RANK", "Verdict", "decide", "order_key", "rank"]

PHASE_RANK: Final[Mapping[str, int]] = {
    "": 0,
    "pending": 0,
    "provisioning": 0,
    "queued": 1,
    "running": 2,
    "input-required": 3,
    "approval-required": 3,
    "evaluating": 4,
    "done": 5,
    "error": 5,
    "canceled": 5,
}
"""Every phase Ark has written, by how far along a query it is."""


def rank(phase: str | None) -> int:
    return PHASE_RANK.get(phase or "", 0)


def order_key(update: StatusUpdate) -> tuple[int, int, int, int, int]:
    return (update.generation, update.round, rank(update.phase), update.attempt, update.seq)


@dataclass(frozen=True)
class Verdict:
    """Whether to write the update; ``reason`` says why not (for the log line)."""

    apply: bool
    reason: str = ""


APPLY: Final = Verdict(True)


def decide(
    update: StatusUpdate,
    current: Mapping[str, Any] | None,
    *,
    newest: StatusUpdate | None = None,
) -> Verdict:
    """The rules of the module docstring; ``current`` is the Query's status as stored
    (wire names), ``newest`` the last update published for the query, if known."""
    if newest is not None and order_key(newest) > order_key(update):
        return Verdict(False, f"superseded by a newer {newest.phase!r} update")
    phase = (current or {}).get("phase") or ""
    if phase in TERMINAL_PHASES:
        return Verdict(False, f"the query is already {phase!r}, a terminal phase")
    if rank(update.phase) < rank(phase):
        return Verdict(False, f"older than the query's current phase {phase!r}")
    if update.phase == phase:
        return Verdict(False, f"the query is already {phase!r}")
    return APPLY
