"""One query's chunks as a reader should hand them out: in ``seq`` order, each once.

The rule is the contract's (:mod:`ark_mesh.contracts.sequencing`); this module applies it to a
read of the chunk subject and adds the one thing the pure rule cannot know: time. A number that
is still missing after ``gap_wait`` seconds is given up (its publisher stopped re-sending it long
before), so a stream never stalls behind a chunk that was lost for good; without that the final
chunk would still release it, but only at the end of the answer.

When nothing is held, entries pass straight through: no task, no timer — unless the caller asked
to hear about silence (``on_idle``): the broker uses it to end a stream whose query has a
terminal status but no final chunk (its publisher could not store one). Then, and while chunks
are held, the read goes through one :class:`~ark_mesh.bus.readahead.ReadAhead` (a task and a
timer per read, not per chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from ark_mesh.bus.readahead import ReadAhead
from ark_mesh.bus.reader import StreamEntry
from ark_mesh.contracts.sequencing import DEFAULT_HOLD, ChunkSequencer
from ark_mesh.telemetry import get_logger

__all__ = ["DEFAULT_GAP_WAIT", "IdleHook", "Sequenced", "in_sequence"]

_log = get_logger(__name__)

DEFAULT_GAP_WAIT = 45.0
"""Seconds a reader waits for a missing chunk: longer than a publisher re-sends one (30 s by
default, ``PublisherSettings.retry_for``) plus an election."""


class Sequenced(Protocol):
    """What the rule reads of a chunk: a :class:`~ark_mesh.contracts.Chunk`, or a
    :class:`~ark_mesh.contracts.ChunkHead` for a reader that relays the stored bytes."""

    @property
    def seq(self) -> int: ...

    @property
    def is_final(self) -> bool: ...


C = TypeVar("C", bound=Sequenced)

IdleHook = Callable[[int], Awaitable[StreamEntry[C] | None]]
"""Called with the next expected ``seq`` after ``idle`` seconds without an entry; a final chunk
it returns ends the read."""


async def in_sequence(
    entries: AsyncIterator[StreamEntry[C]],
    *,
    after: int = 0,
    gap_wait: float = DEFAULT_GAP_WAIT,
    hold: int = DEFAULT_HOLD,
    idle: float | None = None,
    on_idle: IdleHook[C] | None = None,
) -> AsyncIterator[StreamEntry[C]]:
    """``entries`` (one query's chunks, through its final chunk) by ``seq``, starting after
    ``after``; ends after the final chunk. Closes ``entries`` however it ends.

    With ``on_idle``, it is awaited each time ``idle`` seconds pass without an entry; a final
    chunk it returns is handed out (after whatever is held) as if it had been read.

    Deadlines (a missing chunk, silence) apply only while nothing is waiting to be handed out.
    Once one can apply, ``entries`` is read through a :class:`~ark_mesh.bus.readahead.ReadAhead`
    (one task and one timer for the whole read, not per chunk)."""
    sequencer: ChunkSequencer[StreamEntry[C]] = ChunkSequencer(after, hold=hold)
    loop = asyncio.get_running_loop()
    watch_idle = on_idle is not None and idle is not None
    held_since = 0.0
    quiet_since = loop.time()
    subject = ""

    def due() -> float | None:
        deadlines = []
        if sequencer.holding:
            deadlines.append(held_since + gap_wait)
        if watch_idle:
            assert idle is not None
            deadlines.append(quiet_since + idle)
        return min(deadlines) if deadlines else None

    ahead: ReadAhead[StreamEntry[C]] | None = None
    try:
        while True:
            if ahead is None and not sequencer.holding and not watch_idle:
                try:
                    entry = await anext(entries)
                except StopAsyncIteration:
                    return
            else:
                if ahead is None:
                    ahead = ReadAhead(entries, due)
                try:
                    read = await ahead.next()
                except StopAsyncIteration:
                    for released in sequencer.skip_gap():
                        yield released
                    return
                if read is None:  # a deadline passed with nothing to hand out
                    now = loop.time()
                    if sequencer.holding and now >= held_since + gap_wait:
                        for released in sequencer.skip_gap():
                            yield released
                    if watch_idle and idle is not None and now >= quiet_since + idle:
                        quiet_since = now
                        assert on_idle is not None
                        ending = await on_idle(sequencer.expected)
                        if ending is not None:
                            for released in sequencer.push(ending.message.seq, ending, final=True):
                                yield released
                            return
                    continue
                quiet_since = loop.time()
                entry = read
            subject = entry.subject
            was_holding = sequencer.holding
            final = entry.message.is_final
            for released in sequencer.push(entry.message.seq, entry, final=final):
                yield released
            if final:
                return
            if sequencer.holding and not was_holding:
                held_since = loop.time()
    finally:
        if sequencer.skipped:
            # Never silent: a number that never came is named (the client sees the rest).
            _log.warning(
                "chunks missing from a query's stream; the ones after them were handed out",
                subject=subject,
                missing=sequencer.skipped,
            )
        if ahead is not None:
            await ahead.aclose()  # closes entries too
        else:
            aclose = getattr(entries, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
