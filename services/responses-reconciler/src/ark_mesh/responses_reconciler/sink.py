"""Where a responses request reports: its chunk subject (when streaming) and its result subject.

:class:`ResponsesSink` is the resolver's ``ResolutionSink`` for one request. It publishes chunks
only when the caller asked to stream, drops operation events (a responses request has no event
or status subject; the result is its one outcome) and keeps the last status update, from which
the service builds the :class:`~ark_mesh.contracts.ResponsesResult` of agent and team targets.

Message ids are deterministic — ``<request_id>:chunk:<seq>``, ``<request_id>:final`` and
``<request_id>:result`` — so a redelivered request never adds a second final chunk or a second
result inside JetStream's duplicate window. Every publish is awaited: chunks keep their order
and the result is stored before the work message is acked.

**Numbering survives redelivery.** The resolver numbers chunks from 1 in every attempt; the
sink publishes them after ``offset``, the ``seq`` of the last chunk an earlier attempt left on
the subject (read by the handler before it starts), so ``seq`` — and the message id made from
it — never repeats within a request: an attempt's chunks are never dropped as duplicates of
an earlier attempt's, and readers can order them. :meth:`ResponsesSink.notice` tells readers
that output before it is superseded (Ark's ``ark.systemMessage`` chunk, as the
query-reconciler writes it).
"""

from __future__ import annotations

import time

import msgspec

from ark_mesh.bus import Publisher, publish_whole
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryEvent,
    ResponsesResult,
    StatusUpdate,
    subjects,
)
from ark_mesh.resolver import SYSTEM_CHUNK_ID

__all__ = ["ResponsesSink", "chunk_msg_id", "result_msg_id"]


def chunk_msg_id(request_id: str, chunk: Chunk) -> str:
    if chunk.is_final:
        return f"{request_id}:final"
    return f"{request_id}:chunk:{chunk.seq}"


def result_msg_id(request_id: str) -> str:
    return f"{request_id}:result"


class ResponsesSink:
    """Reports one attempt of one request (see the module docstring)."""

    def __init__(
        self,
        publisher: Publisher,
        tenant: str,
        request_id: str,
        *,
        stream: bool,
        offset: int = 0,
        session: str | None = None,
    ) -> None:
        self._publisher = publisher
        self._tenant = tenant
        self._request_id = request_id
        self._stream = stream
        self._offset = offset
        self._session = session or request_id
        self.last_status: StatusUpdate | None = None
        self.final_sent = False
        self.last_seq = 0
        """The last ``seq`` as the resolver numbered it (before ``offset``)."""

    async def chunk(self, chunk: Chunk) -> None:
        if not self._stream:
            return
        self.last_seq = max(self.last_seq, chunk.seq)
        numbered = msgspec.structs.replace(chunk, seq=self._offset + chunk.seq)
        await self._publisher.publish(
            subjects.query_chunk(self._tenant, self._request_id),
            numbered,
            msg_id=chunk_msg_id(self._request_id, numbered),
        )
        if chunk.is_final:
            self.final_sent = True

    async def notice(self, text: str) -> None:
        """A system chunk numbered after everything already on the subject; the resolver's
        chunks follow it (a streaming request only)."""
        if not self._stream:
            return
        self._offset += 1
        await self._publisher.publish(
            subjects.query_chunk(self._tenant, self._request_id),
            Chunk(
                id=SYSTEM_CHUNK_ID,
                created=int(time.time()),
                model="",
                choices=[ChunkChoice(delta=ChunkDelta(role="system", content=text))],
                ark=ArkChunkMetadata(
                    query=self._request_id, session=self._session, system_message=text
                ),
                seq=self._offset,
            ),
            msg_id=f"{self._request_id}:chunk:{self._offset}",
        )

    async def event(self, event: QueryEvent) -> None:
        return None

    async def status(self, update: StatusUpdate) -> None:
        self.last_status = update

    async def result(self, result: ResponsesResult) -> None:
        # In pieces when larger than one NATS message (:mod:`ark_mesh.bus.large`).
        await publish_whole(
            self._publisher,
            subjects.query_result(self._tenant, self._request_id),
            result,
            msg_id=result_msg_id(self._request_id),
        )
