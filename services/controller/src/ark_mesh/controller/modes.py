"""Which resolution mode a Direct query gets, and why a mode can be refused.

A query may ask for a mode with the annotation ``ark.mckinsey.com/reconciliation``; otherwise the
system default applies. A mode outside ``allowedModes`` is refused with a reason the controller
writes into the query's status — never silently replaced by another mode, because a platform
team that forbids in-controller resolution (scale-strict) must be able to rely on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ark_mesh.contracts.ark import (
    RECONCILIATION_ANNOTATION,
    RECONCILIATION_MODES,
    ReconciliationMode,
)

__all__ = ["DirectMode", "ModeRefused", "choose_mode"]

DirectMode = ReconciliationMode
"""``inController`` or ``standalone`` (``broker`` is how broker-API queries arrive)."""


@dataclass(frozen=True, slots=True)
class ModeRefused:
    """The query cannot run: ``message`` says which mode was asked for and what is allowed."""

    requested: str
    message: str


def choose_mode(
    annotations: Mapping[str, str] | None,
    default: ReconciliationMode,
    allowed: Sequence[ReconciliationMode],
) -> ReconciliationMode | ModeRefused:
    """The mode for a Direct query, or why it is refused."""
    asked = (annotations or {}).get(RECONCILIATION_ANNOTATION)
    requested = asked.strip() if asked is not None else default
    source = (
        f"annotation {RECONCILIATION_ANNOTATION}" if asked is not None else "defaultReconciliation"
    )
    if requested not in RECONCILIATION_MODES:
        return ModeRefused(
            requested,
            f"unknown reconciliation mode {requested!r} ({source}); "
            f"expected one of {', '.join(RECONCILIATION_MODES)}",
        )
    mode = requested
    if mode == "broker":
        return ModeRefused(
            requested,
            "reconciliation mode 'broker' applies to queries submitted through the broker API "
            f"(POST /v1/queries), not to Query resources ({source})",
        )
    if mode not in allowed:
        return ModeRefused(
            requested,
            f"reconciliation mode {mode!r} ({source}) is not allowed here; "
            f"allowedModes: {', '.join(allowed) or 'none'}",
        )
    return mode
