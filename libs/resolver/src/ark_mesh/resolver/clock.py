"""The system clock (the production :class:`~ark_mesh.resolver.ports.Clock`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from ark_mesh.contracts import rfc3339

__all__ = ["SystemClock", "rfc3339"]


class SystemClock:
    """Wall time from the OS, budgets from ``time.monotonic``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
