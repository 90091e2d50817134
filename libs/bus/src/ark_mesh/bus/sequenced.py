"""One query's chunks as a reader should hand them out: in ``seq`` order, each once.

The rule is the contract's (:mod:`ark_mesh.contracts.sequencing`); this module applies it to a
read of the chunk subject and adds the one thing the pure rule cannot know: time. A number that
is still missing after ``gap_wait`` seconds is given up (its publisher stopped re-sending it long
before), so a stream never stalls behind a chunk that was lost for good; without that the final
chunk would still release it, but only at the end of the answer.

When nothing is held, entries pass straight through: no task, no timer per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ark_mesh.bus.reader import StreamEntry
from ark_mesh.contracts import Chunk
from ark_mesh.contracts.sequencing import DEFAULT_HOLD, ChunkSequencer
from ark_mesh.telemetry import get_logger

__all__ = ["DEFAULT_GAP_WAIT", "in_sequence"]

_log = get_logger(__name__)

DEFAULT_GAP_WAIT = 45.0
"""Seconds a reader waits for a missing chunk: longer than a publisher re-sends one (30 s by
default, ``PublisherSettings.retry_for``) plus an election."""


async def in_sequence(
    entries: AsyncIterator[StreamEntry[Chunk]],
    *,
    after: int = 0,
    gap_wait: float = DEFAULT_GAP_WAIT,
    hold: int = DEFAULT_HOLD,
) -> AsyncIterator[StreamEntry[Chunk]]:
    """``entries`` (one query's chunks, through its final chunk) by ``seq``, starting after
    ``after``; ends after the final chunk. Closes ``entries`` however it ends."""
    sequencer: ChunkSequencer[StreamEntry[Chunk]] = ChunkSequencer(after, hold=hold)
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[StreamEntry[Chunk]] | None = None
    held_since = 0.0
    subject = ""
    try:
        while True:
            if not sequencer.holding and pending is None:
                try:
                    entry = await anext(entries)
                except StopAsyncIteration:
                    return
            else:
                # Something waits for a missing chunk: read with a deadline, keeping the one
                # pending read across it (restarting a read could skip an entry).
                if pending is None:
                    pending = asyncio.ensure_future(anext(entries))
                timeout = max(0.0, held_since + gap_wait - loop.time())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if not done:
                    for released in sequencer.skip_gap():
                        yield released
                    continue
                finished, pending = pending, None
                try:
                    entry = finished.result()
                except StopAsyncIteration:
                    for released in sequencer.skip_gap():
                        yield released
                    return
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
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
        aclose = getattr(entries, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
