"""Where a responses request reports: its chunk subject (when streaming) and its result subject.

:class:`ResponsesSink` is the resolver's ``ResolutionSink`` for one request. It publishes chunks
only when the caller asked to stream, drops operation events (a responses request has no event
or status subject; the result is its one outcome) and keeps the last status update, from which
the service builds the :class:`~ark_mesh.contracts.ResponsesResult` of agent and team targets.

Message ids are deterministic — ``<request_id>:chunk:<seq>``, ``<request_id>:final`` and
``<request_id>:result`` — so a redelivered request never adds a second final chunk or a second
result inside JetStream's duplicate window. Every publish is awaited: chunks keep their order
and the result is stored before the work message is acked.
"""

from __future__ import annotations

from ark_mesh.bus import Publisher, publish_whole
from ark_mesh.contracts import (
    Chunk,
    QueryEvent,
    ResponsesResult,
    StatusUpdate,
    subjects,
)

__all__ = ["ResponsesSink", "chunk_msg_id", "result_msg_id"]


def chunk_msg_id(request_id: str, chunk: Chunk) -> str:
    if chunk.is_final:
        return f"{request_id}:final"
    return f"{request_id}:chunk:{chunk.seq}"


def result_msg_id(request_id: str) -> str:
    return f"{request_id}:result"


class ResponsesSink:
    """Reports one attempt of one request (see the module docstring)."""

    def __init__(self, publisher: Publisher, tenant: str, request_id: str, *, stream: bool) -> None:
        self._publisher = publisher
        self._tenant = tenant
        self._request_id = request_id
        self._stream = stream
        self.last_status: StatusUpdate | None = None
        self.final_sent = False
        self.last_seq = 0

    async def chunk(self, chunk: Chunk) -> None:
        if not self._stream:
            return
        self.last_seq = max(self.last_seq, chunk.seq)
        await self._publisher.publish(
            subjects.query_chunk(self._tenant, self._request_id),
            chunk,
            msg_id=chunk_msg_id(self._request_id, chunk),
        )
        if chunk.is_final:
            self.final_sent = True

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
