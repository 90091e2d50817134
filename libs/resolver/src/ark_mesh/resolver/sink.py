"""An in-process :class:`~ark_mesh.resolver.ports.ResolutionSink` that keeps everything.

The controller's in-controller path uses it to collect a resolution's status without a bus, and
tests use it to assert on what a resolution reported and in which order: ``timeline`` holds every
item in arrival order, so "nothing after X" is an ordering question, not a timing one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ark_mesh.contracts import Chunk, QueryEvent, StatusUpdate

__all__ = ["RecordingSink", "SinkItem"]

SinkItem = tuple[Literal["chunk", "event", "status"], Chunk | QueryEvent | StatusUpdate]


@dataclass
class RecordingSink:
    """Records chunks, events and status updates; lets a test wait for one to arrive."""

    chunks: list[Chunk] = field(default_factory=list)
    events: list[QueryEvent] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    timeline: list[SinkItem] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    async def chunk(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self._record(("chunk", chunk))

    async def event(self, event: QueryEvent) -> None:
        self.events.append(event)
        self._record(("event", event))

    async def status(self, update: StatusUpdate) -> None:
        self.statuses.append(update)
        self._record(("status", update))

    def _record(self, item: SinkItem) -> None:
        self.timeline.append(item)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, predicate: Callable[[RecordingSink], bool]) -> None:
        """Wait (event-driven) until ``predicate(self)`` holds; bound it with asyncio.timeout."""
        while True:
            changed = self._changed
            if predicate(self):
                return
            await changed.wait()

    def reasons(self) -> list[str]:
        """Event reasons in order (``QueryExecutionStart``, ``LLMCallComplete`` …)."""
        return [event.reason for event in self.events]

    def content(self) -> str:
        """All streamed assistant text, concatenated."""
        return "".join(
            choice.delta.content or "" for chunk in self.chunks for choice in chunk.choices
        )
