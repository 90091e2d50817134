"""The system clock (the production :class:`~ark_mesh.resolver.ports.Clock`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["SystemClock", "rfc3339"]


class SystemClock:
    """Wall time from the OS, budgets from ``time.monotonic``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def rfc3339(moment: datetime) -> str:
    """``2025-01-02T03:04:05.123456Z``: the form Go's RFC3339Nano readers accept."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
