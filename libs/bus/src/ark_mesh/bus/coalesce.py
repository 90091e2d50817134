"""Optional coalescing of token chunks: fewer, larger messages for high-rate streams.

A model streaming 50 tokens/s per query makes one chunk per token; one Python publisher manages
roughly 20k durable publishes/s, so per-token messages cap a process at a few hundred live
streams. Merging the *content deltas* of consecutive chunks of the same query for a few
milliseconds (or up to a byte budget) cuts the message rate by an order of magnitude while the
reader still sees the same text in the same order.

Only plain text deltas are merged: one choice, ``delta.content`` only (a ``role`` on the first),
no finish reason, no usage, no error, no final ``completedQuery``, same ``id``/``model``/``ark``
metadata. Anything else (tool-call deltas, the final chunk, errors) first flushes what is
pending and is then published unchanged, so ordering is kept. A merged chunk carries the
``seq`` of the *last* chunk it absorbed, unless the producer numbers what is published
(``number``): readers expect ``seq`` without gaps (:mod:`ark_mesh.contracts.sequencing`), so
the query-reconciler numbers each published chunk itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from ark_mesh.bus.publisher import Publisher
from ark_mesh.contracts import Chunk, ChunkChoice, ChunkDelta

__all__ = ["ChunkCoalescer", "can_merge", "merge_chunks"]


def _plain_text(chunk: Chunk) -> bool:
    if chunk.error is not None or chunk.usage is not None or chunk.ark.completed_query is not None:
        return False
    if len(chunk.choices) != 1:
        return False
    choice = chunk.choices[0]
    delta = choice.delta
    return (
        choice.finish_reason is None
        and delta.tool_calls is None
        and delta.refusal is None
        and delta.content is not None
    )


def can_merge(previous: Chunk, following: Chunk) -> bool:
    """Whether ``following`` may be appended to ``previous`` without changing meaning."""
    return (
        _plain_text(previous)
        and _plain_text(following)
        and following.choices[0].delta.role is None
        and previous.choices[0].index == following.choices[0].index
        and previous.id == following.id
        and previous.model == following.model
        and previous.ark == following.ark
    )


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    """One chunk with the concatenated content of ``chunks`` (which must be mergeable)."""
    first, last = chunks[0], chunks[-1]
    if len(chunks) == 1:
        return first
    choice = first.choices[0]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    merged_choice = ChunkChoice(
        index=choice.index, delta=ChunkDelta(role=choice.delta.role, content=text)
    )
    return msgspec.structs.replace(first, choices=[merged_choice], seq=last.seq)


@dataclass
class _Pending:
    chunks: list[Chunk]
    size: int
    timer: asyncio.TimerHandle | None = None
    started: float = field(default_factory=time.monotonic)


class ChunkCoalescer:
    """Buffers chunks per subject for at most ``max_delay`` seconds / ``max_bytes`` of text.

    ``msg_id(chunk)`` gives the ``Nats-Msg-Id`` of each published (possibly merged) chunk;
    ``number(chunk)``, when given, renumbers each one as it is published (in publish order).
    Call :meth:`flush` before publishing anything that must come after the chunks (the final
    status), and :meth:`close` when the producer is done.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        max_delay: float = 0.02,
        max_bytes: int = 4096,
        msg_id: Callable[[Chunk], str | None] | None = None,
        number: Callable[[Chunk], Chunk] | None = None,
    ) -> None:
        self.publisher = publisher
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self._msg_id = msg_id or (lambda chunk: None)
        self._number = number
        self._pending: dict[str, _Pending] = {}
        self._lock = asyncio.Lock()
        self._timers: set[asyncio.Task[None]] = set()
        self.published = 0
        self.received = 0

    async def add(self, subject: str, chunk: Chunk) -> None:
        self.received += 1
        pending = self._pending.get(subject)
        size = len(chunk.choices[0].delta.content or "") if _plain_text(chunk) else 0
        if pending is not None and can_merge(pending.chunks[-1], chunk):
            pending.chunks.append(chunk)
            pending.size += size
            if pending.size >= self.max_bytes:
                await self.flush(subject)
            return
        if pending is not None:
            await self.flush(subject)
        if _plain_text(chunk) and self.max_delay > 0 and size < self.max_bytes:
            entry = _Pending([chunk], size)
            entry.timer = asyncio.get_running_loop().call_later(
                self.max_delay, self._timer_fired, subject, entry
            )
            self._pending[subject] = entry
            return
        await self._publish(subject, chunk)

    async def flush(self, subject: str | None = None) -> None:
        """Publish what is buffered (for one subject, or all)."""
        targets = [subject] if subject is not None else list(self._pending)
        for target in targets:
            entry = self._pending.pop(target, None)
            if entry is None:
                continue
            if entry.timer is not None:
                entry.timer.cancel()
            await self._publish(target, merge_chunks(entry.chunks))

    async def close(self) -> None:
        await self.flush()
        for task in list(self._timers):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _timer_fired(self, subject: str, entry: _Pending) -> None:
        if self._pending.get(subject) is not entry:
            return
        task = asyncio.get_running_loop().create_task(self._flush_entry(subject, entry))
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _flush_entry(self, subject: str, entry: _Pending) -> None:
        if self._pending.get(subject) is entry:
            del self._pending[subject]
            await self._publish(subject, merge_chunks(entry.chunks))

    async def _publish(self, subject: str, chunk: Chunk) -> None:
        # One lock for all publishes keeps chunks of a subject in order even when a timer
        # flush and a caller's add race for the publish window.
        async with self._lock:
            if self._number is not None:
                chunk = self._number(chunk)
            await self.publisher.publish_nowait(subject, chunk, msg_id=self._msg_id(chunk))
            self.published += 1
