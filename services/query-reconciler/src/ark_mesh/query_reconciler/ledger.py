"""What a query's subjects already hold: the basis of "exactly one outcome" under redelivery.

A reconciler can die anywhere in a query: before ``running``, mid-stream, between the terminal
status and the final chunk, or after both but before its ack. JetStream then hands the work
message to another replica, which must neither run a finished query again nor restart chunk
numbering. The streams themselves are the record — no side database — so before resolving, a
replica looks at the query's subjects:

* the newest ``StatusUpdate`` on ``ark.<t>.query.<id>.status`` (a direct lookup by subject); only
  when it is not terminal (a redelivery, or attempts that raced) is the subject scanned for a
  terminal update of this generation;
* the newest ``Chunk`` on ``….chunk``: when it is this generation's final chunk, that is its
  ``seq`` and the final chunk is out; otherwise the subject is scanned for the largest ``seq``
  (chunks re-sent around a leader election are stored after later ones) and the final chunk.

The common path (a first delivery) costs two lookups by subject and no consumer.

**Rounds.** A query that paused for an approval (``input-required``) has reported a status but
was not interrupted: its next run — the resume — is a new *round* of the same generation, not a
restart. :attr:`Ledger.paused` tells the two apart; attempts keep counting across rounds, so
every update of the query stays ordered by ``(generation, round, rank, attempt, seq)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ark_mesh.bus import Bus, StreamEntry, StreamReader
from ark_mesh.contracts import Chunk, StatusUpdate, lenient_decoder_for, subjects
from ark_mesh.telemetry import get_logger

__all__ = ["PAUSED", "Ledger", "LedgerReader"]

log = get_logger(__name__)

M = TypeVar("M")


PAUSED = frozenset({"input-required"})
"""Phases in which a run waits for a human: its work message is acked, its log kept."""

_status_or_none = lenient_decoder_for(StatusUpdate)
_chunk_or_none = lenient_decoder_for(Chunk)


def _chunk_generation(chunk: Chunk) -> int | None:
    completed = chunk.ark.completed_query
    return completed.metadata.generation if completed is not None else None


@dataclass(frozen=True)
class Ledger:
    """The record of one query generation found on the bus."""

    generation: int
    last_status: StatusUpdate | None = None
    """The newest status update of the query, of any generation."""
    terminal: StatusUpdate | None = None
    """The terminal update of *this* generation, if one was published."""
    last_chunk_seq: int = 0
    final_chunk: bool = False
    """Whether the final chunk of this generation was published."""

    @property
    def superseded(self) -> bool:
        """A newer generation of the query has already been reported: this work is stale."""
        return self.last_status is not None and self.last_status.generation > self.generation

    @property
    def started(self) -> bool:
        """An earlier attempt of this generation got as far as reporting a status."""
        return self.last_status is not None and self.last_status.generation == self.generation

    @property
    def paused(self) -> bool:
        """This generation's newest status is ``input-required``: the run waits for a decision
        and holds no worker; only a resume message runs it again."""
        return self.started and self.last_status is not None and self.last_status.phase in PAUSED

    @property
    def interrupted(self) -> bool:
        """An earlier attempt of this generation reported progress and then stopped without
        pausing or ending (its replica died, or it failed transiently): this run restarts it."""
        return self.started and not self.paused and self.terminal is None

    @property
    def round(self) -> int:
        """The approval round of this generation's newest status (0 before any decision)."""
        return self.last_status.round if self.started and self.last_status else 0

    def next_attempt(self, delivery: int) -> int:
        """The ``attempt`` of what this delivery reports, strictly after anything reported.

        Normally the delivery count; a work message submitted again after an earlier one was
        finished restarts at delivery 1, so the recorded attempts are a floor too.
        """
        previous = self.last_status.attempt if self.started and self.last_status else 0
        return max(delivery, previous + 1)


class LedgerReader:
    """Reads a :class:`Ledger` from ``ARK_STATUS`` and ``ARK_CHUNKS``."""

    def __init__(self, bus: Bus, *, scan_timeout: float = 5.0) -> None:
        self._status = StreamReader(bus, subjects.ARK_STATUS)
        self._chunks = StreamReader(bus, subjects.ARK_CHUNKS)
        self._scan_timeout = scan_timeout

    async def read(self, tenant: str, query_id: str, generation: int) -> Ledger:
        status_subject = subjects.query_status(tenant, query_id)
        chunk_subject = subjects.query_chunk(tenant, query_id)
        last_entry = await self._status.last(status_subject, decoder=_status_or_none)
        last_status = last_entry.message if last_entry is not None else None
        terminal: StatusUpdate | None = None
        if last_status is not None:
            if last_status.terminal and last_status.generation == generation:
                terminal = last_status
            elif last_status.generation == generation:
                # Not the newest record, but maybe there: attempts that raced can report a
                # ``running`` after another attempt's terminal update.
                terminal = await self._scan_terminal(status_subject, generation)
        chunk_entry = await self._chunks.last(chunk_subject, decoder=_chunk_or_none)
        last_chunk = chunk_entry.message if chunk_entry is not None else None
        last_seq = last_chunk.seq if last_chunk is not None else 0
        final = (
            last_chunk is not None
            and last_chunk.is_final
            and _chunk_generation(last_chunk) in (None, generation)
        )
        if chunk_entry is not None and not final:
            # Chunks re-sent around a leader election are stored after later ones
            # (contracts/sequencing.py): the newest entry need not hold the largest ``seq``,
            # and this attempt must number after the largest, or it would reuse numbers.
            last_seq, final = await self._scan_chunks(chunk_subject, generation)
        return Ledger(
            generation=generation,
            last_status=last_status,
            terminal=terminal,
            last_chunk_seq=last_seq,
            final_chunk=final,
        )

    async def _scan_terminal(self, subject: str, generation: int) -> StatusUpdate | None:
        found: StatusUpdate | None = None

        def is_terminal(entry: StreamEntry[StatusUpdate | None]) -> bool:
            update = entry.message
            return update is not None and update.terminal and update.generation == generation

        async for entry in self._status.read(
            subject,
            decoder=_status_or_none,
            caught_up=True,
            idle_timeout=self._scan_timeout,
            until=is_terminal,
        ):
            if is_terminal(entry):
                found = entry.message
        return found

    async def _scan_chunks(self, subject: str, generation: int) -> tuple[int, bool]:
        """The largest ``seq`` on the subject, and whether this generation's final chunk is
        there (behind later chunks: a racing attempt's)."""
        largest = 0
        final = False
        async for entry in self._chunks.read(
            subject, decoder=_chunk_or_none, caught_up=True, idle_timeout=self._scan_timeout
        ):
            chunk = entry.message
            if chunk is None:
                continue
            largest = max(largest, chunk.seq)
            if chunk.is_final and _chunk_generation(chunk) in (None, generation):
                if not final:
                    log.info("final chunk found behind later chunks", subject=subject)
                final = True
        return largest, final
