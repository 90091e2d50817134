"""Requests to the responses-reconciler, independent of HTTP: publish, follow, cancel, store.

The exchange is the embeddings one (:mod:`.embeddings`) plus a stream and a cancel: the
request id is minted by the caller (``resp_…`` for the Responses API, ``chatcmpl-…`` for a chat
completion on a Model), the :class:`~ark_mesh.contracts.ResponsesRequest` goes to
``ark.<tenant>.work.responses`` (``Nats-Msg-Id`` = the request id, so a publish retried by the
bus is not answered twice), chunks arrive on ``ark.<tenant>.query.<id>.chunk`` when the request
streams and the one :class:`~ark_mesh.contracts.ResponsesResult` on ``….result`` (read whole:
a long answer arrives in pieces, :mod:`ark_mesh.bus.large`). Both are read
from the *start* of their subject, so nothing that lands before the read begins is missed.
A cancel goes through :class:`~ark_mesh.bus.CancelChannel` (core subject + KV flag), which the
reconciler watches for the whole run, so a request still queued is canceled too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ark_mesh.broker.conversations import ResponseStore
from ark_mesh.broker.errors import UnavailableError
from ark_mesh.bus import (
    BusError,
    CancelChannel,
    Fanout,
    NatsError,
    Publisher,
    StreamEntry,
    StreamReader,
    in_sequence,
    read_whole,
)
from ark_mesh.contracts import (
    Chunk,
    ResponsesRequest,
    ResponsesResult,
    decoder_for,
    rfc3339,
    subjects,
)
from ark_mesh.telemetry import get_logger

__all__ = ["ResponsesBroker"]

_log = get_logger(__name__)
_chunk = decoder_for(Chunk).decode
_result = decoder_for(ResponsesResult).decode


class ResponsesBroker:
    """Turns a chat or Responses call into a bus request, its chunks and its result."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        reader: StreamReader,
        cancels: CancelChannel,
        store: ResponseStore,
        fanout: Fanout | None = None,
    ) -> None:
        self.publisher = publisher
        self.reader = reader
        self.fanout = fanout or Fanout(reader)
        self.cancels = cancels
        self.store = store

    async def submit(
        self,
        tenant: str,
        request_id: str,
        *,
        target: str,
        messages: list[dict[str, Any]],
        stream: bool,
        run_timeout: tuple[str, timedelta] | None,
        session_id: str | None = None,
        conversation_id: str | None = None,
    ) -> ResponsesRequest:
        """Queue the request; raises :class:`~ark_mesh.broker.errors.UnavailableError` when it
        could not be queued. ``run_timeout`` (as sent, and parsed) is the request's ``timeout``
        and sets the ``deadline`` the reconciler honours."""
        now = datetime.now(UTC)
        request = ResponsesRequest(
            request_id=request_id,
            tenant=tenant,
            namespace=tenant,
            target=target,
            messages=[dict(message) for message in messages],
            stream=stream,
            session_id=session_id,
            conversation_id=conversation_id,
            timeout=run_timeout[0] if run_timeout is not None else None,
            submitted_at=rfc3339(now),
            deadline=rfc3339(now + run_timeout[1]) if run_timeout is not None else None,
        )
        try:
            await self.publisher.publish(
                subjects.work_responses(tenant), request, msg_id=request_id
            )
        except BusError as exc:
            raise UnavailableError(f"the request could not be queued: {exc}") from exc
        _log.info(
            "responses request queued",
            tenant=tenant,
            request_id=request_id,
            target=target,
            messages=len(messages),
            stream=stream,
        )
        return request

    def chunks(self, tenant: str, request_id: str) -> AsyncIterator[StreamEntry[Chunk]]:
        """The request's chunks from the first, live, through the final chunk (through the
        shared feed, :class:`~ark_mesh.bus.Fanout`), in ``seq`` order, each once."""
        return in_sequence(
            self.fanout.follow(
                subjects.query_chunk(tenant, request_id),
                decoder=_chunk,
                until=lambda entry: entry.message.is_final,
            )
        )

    async def result(self, tenant: str, request_id: str) -> ResponsesResult:
        """The request's one result (waits for it; bound the wait at the call site)."""
        async for entry in read_whole(
            self.reader,
            subjects.query_result(tenant, request_id),
            decoder=_result,
            until=lambda _: True,
        ):
            return entry.message
        raise TimeoutError  # the read ended without a result

    async def cancel(self, tenant: str, request_id: str, reason: str) -> None:
        """Ask the reconciler to stop the request (best effort: logged when NATS is away)."""
        try:
            await self.cancels.request(tenant, request_id, reason=reason, requested_by="broker")
        except (BusError, NatsError, OSError, TimeoutError) as exc:
            _log.warning("cancel not sent", request_id=request_id, error=str(exc))
            return
        _log.info("responses request canceled", request_id=request_id, reason=reason)
