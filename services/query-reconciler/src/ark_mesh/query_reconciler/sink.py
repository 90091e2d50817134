"""The resolver's :class:`~ark_mesh.resolver.ResolutionSink` on JetStream, for one attempt.

Where each report goes (ARCHITECTURE §4)::

    chunk   → ark.<tenant>.query.<id>.chunk    windowed publish (optionally coalesced)
    event   → ark.<tenant>.query.<id>.event    windowed publish
    status  → ark.<tenant>.query.<id>.status   awaited publish (a status must not be lost)
    final   → ark.<tenant>.query.<id>.chunk    awaited publish, after the terminal status

Why it is more than a forwarder:

* **Chunk numbering is dense and survives redelivery.** The sink numbers every chunk it
  publishes (merged ones included) one after the other, starting after the largest ``seq`` an
  earlier attempt published (from the :class:`~ark_mesh.query_reconciler.ledger.Ledger`), so a
  query's ``seq`` runs 1, 2, 3 … without gaps: readers put chunks back in order by it and drop
  duplicates (:mod:`ark_mesh.contracts.sequencing`).
* **Deterministic message ids.** Every message carries a ``Nats-Msg-Id`` derived from the query,
  its generation and its position; the terminal status and the final chunk in particular get
  ``<uid>:<generation>:terminal`` and ``<uid>:<generation>:final``, the same in every replica and
  every attempt, so JetStream's duplicate window drops a racing second copy.
* **Order.** Buffered chunks are flushed before any status update, so a reader never sees a
  status (or the final chunk) overtake the tokens that preceded it. Chunks are sent in order on
  one connection, and the final chunk waits until every earlier chunk of its query is stored
  (:meth:`~ark_mesh.bus.Publisher.settle`: a chunk whose acknowledgement a dying stream leader
  lost is sent again, and must not land behind the final chunk); the final chunk is awaited,
  so it is stored before the work is acked.
"""

from __future__ import annotations

import itertools
import time

import msgspec

from ark_mesh.bus import ChunkCoalescer, Publisher
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryEvent,
    QueryRequest,
    StatusUpdate,
    subjects,
)
from ark_mesh.query_reconciler.config import ChunkStreamConfig
from ark_mesh.resolver import SYSTEM_CHUNK_ID

__all__ = [
    "JetStreamSink",
    "chunk_msg_id",
    "final_chunk_msg_id",
    "status_msg_id",
    "terminal_msg_id",
]


def terminal_msg_id(query_id: str, generation: int) -> str:
    return f"{query_id}:{generation}:terminal"


_SETTLE_WITHIN = 60.0
"""Seconds the final chunk waits for the earlier chunks' acknowledgements (retries included)."""


def final_chunk_msg_id(query_id: str, generation: int) -> str:
    return f"{query_id}:{generation}:final"


def status_msg_id(update: StatusUpdate) -> str:
    if update.terminal:
        return terminal_msg_id(update.query_id, update.generation)
    return f"{update.query_id}:{update.generation}:status:{update.attempt}:{update.seq}"


def chunk_msg_id(query_id: str, generation: int, seq: int) -> str:
    return f"{query_id}:{generation}:chunk:{seq}"


class JetStreamSink:
    """Publishes one attempt of one query. ``chunk_offset`` is the last ``seq`` already on the
    query's chunk subject; call :meth:`close` when the attempt ends (flushes coalesced chunks)."""

    def __init__(
        self,
        publisher: Publisher,
        request: QueryRequest,
        *,
        attempt: int,
        chunk_offset: int = 0,
        streaming: ChunkStreamConfig | None = None,
    ) -> None:
        self._publisher = publisher
        self._request = request
        self._attempt = attempt
        self._chunk_subject = subjects.query_chunk(request.tenant, request.query_id)
        self._event_subject = subjects.query_event(request.tenant, request.query_id)
        self._status_subject = subjects.query_status(request.tenant, request.query_id)
        self._events = itertools.count(1)
        self.last_seq = chunk_offset
        """The ``seq`` of the last chunk published (or handed to the publisher)."""
        self._given = 0
        """The resolver's number of the last chunk it handed over."""
        self.terminal: StatusUpdate | None = None
        self.final_published = False
        settings = streaming or ChunkStreamConfig()
        self._coalescer: ChunkCoalescer | None = None
        if settings.coalesce:
            self._coalescer = ChunkCoalescer(
                publisher,
                max_delay=settings.coalesce_delay,
                max_bytes=settings.coalesce_bytes,
                msg_id=self._chunk_id,
                number=self._number,
            )

    def position(self, seq: int) -> int:
        """The query-wide ``seq`` of the resolver's chunk ``seq`` (one it handed over or the
        next ones). Exact once coalesced chunks are flushed: :meth:`settle` first."""
        return self.last_seq + seq - self._given

    def _number(self, chunk: Chunk) -> Chunk:
        self.last_seq += 1
        return msgspec.structs.replace(chunk, seq=self.last_seq)

    def _chunk_id(self, chunk: Chunk) -> str:
        return chunk_msg_id(self._request.query_id, self._request.generation, chunk.seq)

    async def chunk(self, chunk: Chunk) -> None:
        self._given = chunk.seq
        await self._publish_chunk(chunk)

    async def _publish_chunk(self, chunk: Chunk) -> None:
        if chunk.is_final:
            await self._flush_chunks()
            # Every earlier chunk stored first (a retried one could land behind the final
            # chunk, where readers that stop at it never look); a lost one fails the attempt.
            await self._publisher.settle(self._chunk_subject, within=_SETTLE_WITHIN)
            await self._publisher.publish(
                self._chunk_subject,
                self._number(chunk),
                msg_id=final_chunk_msg_id(self._request.query_id, self._request.generation),
            )
            self.final_published = True
        elif self._coalescer is not None:
            await self._coalescer.add(self._chunk_subject, chunk)
        else:
            numbered = self._number(chunk)
            await self._publisher.publish_nowait(
                self._chunk_subject, numbered, msg_id=self._chunk_id(numbered)
            )

    async def notice(self, text: str) -> None:
        """A system chunk of the service's own (Ark's ``ark.systemMessage`` form), numbered
        after everything already published; the resolver's chunks follow it."""
        request = self._request
        await self._publish_chunk(
            Chunk(
                id=SYSTEM_CHUNK_ID,
                created=int(time.time()),
                model="",
                choices=[ChunkChoice(delta=ChunkDelta(role="system", content=text))],
                ark=ArkChunkMetadata(
                    query=request.query_id,
                    session=request.spec.session_id or request.query_id,
                    system_message=text,
                ),
                seq=0,
            )
        )

    async def event(self, event: QueryEvent) -> None:
        msg_id = (
            f"{self._request.query_id}:{self._request.generation}:event:"
            f"{self._attempt}:{next(self._events)}"
        )
        await self._publisher.publish_nowait(self._event_subject, event, msg_id=msg_id)

    async def status(self, update: StatusUpdate) -> None:
        await self._flush_chunks()
        await self._publisher.publish(self._status_subject, update, msg_id=status_msg_id(update))
        if update.terminal:
            self.terminal = update

    async def settle(self) -> None:
        """Every chunk handed over so far is stored (merged ones flushed first); raises the
        publisher's :class:`~ark_mesh.bus.PublishError` naming a loss, ``TimeoutError`` when
        they are not stored within a minute.

        Called before a checkpoint is saved: a checkpoint counts chunks as the query's output
        (a resumed run does not stream that step again), so it must never count a chunk that
        a dying stream leader lost. Waiting here costs once per step, not per chunk."""
        await self._flush_chunks()
        await self._publisher.settle(self._chunk_subject, within=_SETTLE_WITHIN)

    async def _flush_chunks(self) -> None:
        if self._coalescer is not None:
            await self._coalescer.flush(self._chunk_subject)

    async def close(self) -> None:
        if self._coalescer is not None:
            await self._coalescer.close()
