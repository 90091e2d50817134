"""Test helpers: look at what a service logged, with the context production lines carry.

:func:`capture_logs` swaps the rendering pipeline for an in-memory list while the block runs.
Unlike structlog's bare helper it keeps the enriching processors, so a test can assert that a
line carried ``tenant``, ``query_id`` or ``trace_id`` — the thing that actually breaks when
context propagation regresses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog.testing
from structlog.typing import EventDict

from ark_mesh.telemetry.logs import context_processors

__all__ = ["capture_logs"]


@contextlib.contextmanager
def capture_logs() -> Iterator[list[EventDict]]:
    """Collect every structlog event emitted inside the block as a dict (not thread-safe).

    Each dict has ``event``, ``log_level``, the bound contextvars and, inside a span,
    ``trace_id``/``span_id``. Lines below the configured level are still filtered out.
    """
    with structlog.testing.capture_logs(processors=context_processors()) as entries:
        yield entries
