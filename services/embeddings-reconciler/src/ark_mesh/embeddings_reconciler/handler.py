"""One delivery of an ``EmbeddingsRequest``: resolve the Model, embed, answer once.

For each delivery — once the service skeleton (:class:`~ark_mesh.service.WorkQueueService`) has
refused work whose ids cannot name subjects or that names another tenant than the subject it
arrived on — :class:`EmbeddingsWork`

1. checks the request and resolves the Model in the request's namespace with the resolver's
   :func:`~ark_mesh.resolver.models.endpoint_for` (provider, base URL, API key from Secrets,
   headers, Azure API version) — exactly as a query would reach the same Model;
2. embeds the input in batches of ``max_batch`` and publishes one ``completed``
   :class:`~ark_mesh.contracts.EmbeddingsResult` on ``ark.<tenant>.query.<request_id>.result``
   — in pieces (:func:`~ark_mesh.bus.publish_whole`) when it is larger than one NATS message;
   one too large even for that is answered ``failed``, naming its size.

A permanent failure (unknown Model, unusable Model, provider 4xx, invalid request) is answered
with a ``failed`` result naming the problem and acked — retrying cannot help. A transient one
(429, 5xx, connection) becomes the bus's :class:`~ark_mesh.bus.TransientError`, honouring the
provider's ``Retry-After``; once MaxDeliver is used up, :meth:`EmbeddingsWork.end_dead_letter`
still answers ``failed``, so a caller waiting on the result subject always hears back.

Every result of a request carries the ``Nats-Msg-Id`` ``<request_id>:result``: a redelivery
after a published result, or a dead letter racing a late success, is dropped by JetStream's
duplicate window instead of producing a second answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ark_mesh.bus import (
    DeadLetterNotice,
    MessageContext,
    PayloadTooLargeError,
    Publisher,
    TransientError,
    publish_whole,
)
from ark_mesh.bus.large import DEFAULT_MAX_BYTES
from ark_mesh.contracts import (
    EmbeddingsRequest,
    EmbeddingsResult,
    EmbeddingsUsage,
    Model,
    rfc3339,
    subjects,
)
from ark_mesh.embeddings_reconciler.batching import Embedder, embed_all
from ark_mesh.embeddings_reconciler.errors import InvalidEmbeddingsRequestError
from ark_mesh.resolver import (
    ModelUnavailableError,
    PermanentResolutionError,
    ResourceNotFoundError,
    ResourceStore,
    TransientResolutionError,
    ValueResolver,
    endpoint_for,
)
from ark_mesh.telemetry import bound_context, get_logger

__all__ = ["EmbeddingsWork", "result_msg_id"]

log = get_logger(__name__)


def result_msg_id(request_id: str) -> str:
    return f"{request_id}:result"


def _now() -> str:
    return rfc3339(datetime.now(UTC))


class EmbeddingsWork:
    """The worker's handler and dead-letter callback; shared by every delivery of a replica."""

    def __init__(
        self,
        publisher: Publisher,
        store: ResourceStore,
        embedder: Embedder,
        *,
        max_batch: int,
        max_result_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._publisher = publisher
        self._store = store
        self._embedder = embedder
        self._max_batch = max_batch
        self._max_result_bytes = max_result_bytes

    async def handle(self, request: EmbeddingsRequest, context: MessageContext) -> None:
        with bound_context(
            request_id=request.request_id,
            model=request.model,
            namespace=request.namespace,
            delivery=context.delivery,
        ):
            try:
                result = await self._embed(request)
            except TransientResolutionError as exc:
                delay = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
                log.warning("embeddings attempt failed; will retry", reason=str(exc))
                raise TransientError(str(exc), delay=delay) from exc
            except PermanentResolutionError as exc:
                log.info("embeddings request failed", reason=str(exc))
                result = _failed(request, str(exc))
            await self._answer(result)

    async def _embed(self, request: EmbeddingsRequest) -> EmbeddingsResult:
        _check_request(request)
        model = await self._store.get(Model, request.namespace, request.model)
        if model is None:
            raise ResourceNotFoundError(
                "Model", request.namespace, request.model, referenced_by="EmbeddingsRequest"
            )
        endpoint = await endpoint_for(model, ValueResolver(self._store, request.namespace))
        answer = await embed_all(
            self._embedder,
            endpoint,
            request.input,
            max_batch=self._max_batch,
            dimensions=request.dimensions,
        )
        log.info("embeddings completed", inputs=len(request.input))
        return EmbeddingsResult(
            request_id=request.request_id,
            tenant=request.tenant,
            status="completed",
            model=request.model,
            embeddings=answer.vectors,
            usage=EmbeddingsUsage(
                prompt_tokens=answer.prompt_tokens, total_tokens=answer.total_tokens
            ),
            finished_at=_now(),
        )

    async def _answer(self, result: EmbeddingsResult) -> None:
        subject = subjects.query_result(result.tenant, result.request_id)
        msg_id = result_msg_id(result.request_id)
        try:
            # In pieces when larger than one NATS message (many or long vectors).
            await publish_whole(
                self._publisher, subject, result, msg_id=msg_id, max_bytes=self._max_result_bytes
            )
        except PayloadTooLargeError as exc:
            # Too large even in pieces: the caller hears why now, not after redeliveries.
            log.warning("embeddings result too large to deliver", reason=exc.detail)
            failed = _failed(result, f"The embeddings result cannot be delivered: {exc.detail}")
            await self._publisher.publish(subject, failed, msg_id=msg_id)

    async def end_dead_letter(self, request: EmbeddingsRequest, notice: DeadLetterNotice) -> None:
        """Answer a request whose work was dead-lettered (the skeleton decoded and checked it)."""
        message = f"The embeddings request could not be processed: {notice.letter.reason}"
        log.warning(
            "answering a dead-lettered embeddings request",
            request_id=request.request_id,
            cause=notice.cause.value,
        )
        await self._answer(_failed(request, message))


def _failed(request: EmbeddingsRequest | EmbeddingsResult, error: str) -> EmbeddingsResult:
    """A ``failed`` result for the request (or in place of a result that cannot be sent)."""
    return EmbeddingsResult(
        request_id=request.request_id,
        tenant=request.tenant,
        status="failed",
        model=request.model,
        error=error,
        finished_at=_now(),
    )


def _check_request(request: EmbeddingsRequest) -> None:
    if not request.model:
        raise InvalidEmbeddingsRequestError("EmbeddingsRequest.model names no Model")
    if not request.input:
        raise InvalidEmbeddingsRequestError("EmbeddingsRequest.input must hold at least one text")
    empty = [index for index, text in enumerate(request.input) if not text]
    if empty:
        # OpenAI refuses empty strings with a 400; naming the positions is more useful.
        raise InvalidEmbeddingsRequestError(
            f"EmbeddingsRequest.input has empty text(s) at index {empty}"
        )
    if request.dimensions is not None and request.dimensions < 1:
        raise InvalidEmbeddingsRequestError(
            f"EmbeddingsRequest.dimensions must be positive, got {request.dimensions}"
        )
