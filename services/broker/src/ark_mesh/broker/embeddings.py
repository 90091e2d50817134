"""Embeddings over the bus, independent of HTTP: publish one request, wait for its one result.

The broker keeps no record of an embeddings request: it is a short request/response exchange.
The request id is minted here, the :class:`~ark_mesh.contracts.EmbeddingsRequest` goes to
``ark.<tenant>.work.embeddings`` (``Nats-Msg-Id`` = the request id, so a publish retried by the
bus is not embedded twice), and the embeddings-reconciler answers exactly once on
``ark.<tenant>.query.<request_id>.result``. The result is read from the *start* of that subject,
so an answer that lands before the read begins is not missed, and a result sent in pieces (larger
than one NATS message, :mod:`ark_mesh.bus.large`) is read whole.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from ark_mesh.broker.errors import TooLargeError, UnavailableError
from ark_mesh.bus import BusError, PayloadTooLargeError, Publisher, StreamReader, read_whole
from ark_mesh.contracts import EmbeddingsRequest, EmbeddingsResult, decoder_for, subjects
from ark_mesh.telemetry import get_logger

__all__ = ["EmbeddingsBroker"]

_log = get_logger(__name__)
_result = decoder_for(EmbeddingsResult).decode


class EmbeddingsBroker:
    """Turns an embeddings call into a bus request and its result."""

    def __init__(self, *, publisher: Publisher, reader: StreamReader) -> None:
        self.publisher = publisher
        self.reader = reader

    async def embed(
        self, tenant: str, *, model: str, texts: list[str], dimensions: int | None, within: float
    ) -> EmbeddingsResult:
        """The result for ``texts`` embedded with the Model ``model`` of ``tenant``'s namespace.

        Raises :class:`TimeoutError` when no result came within ``within`` seconds,
        :class:`~ark_mesh.broker.errors.TooLargeError` when the request is larger than one NATS
        message and :class:`~ark_mesh.broker.errors.UnavailableError` when it could not be
        queued.
        """
        request = EmbeddingsRequest(
            request_id=str(uuid.uuid4()),
            tenant=tenant,
            namespace=tenant,
            model=model,
            input=texts,
            dimensions=dimensions,
            submitted_at=datetime.now(UTC).isoformat(),
        )
        try:
            await self.publisher.publish(
                subjects.work_embeddings(tenant), request, msg_id=request.request_id
            )
        except PayloadTooLargeError as exc:
            raise TooLargeError(
                f"the embeddings request is larger than the bus carries: {exc.detail}",
                field="input",
            ) from exc
        except BusError as exc:
            raise UnavailableError(f"the embeddings request could not be queued: {exc}") from exc
        _log.info(
            "embeddings requested",
            tenant=tenant,
            request_id=request.request_id,
            model=model,
            inputs=len(texts),
        )
        async with asyncio.timeout(within):
            async for entry in read_whole(
                self.reader,
                subjects.query_result(tenant, request.request_id),
                decoder=_result,
                until=lambda _: True,
            ):
                return entry.message
        raise TimeoutError  # the read ended without a result
