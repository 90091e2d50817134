"""The embeddings-reconciler service: :class:`EmbeddingsWork` on the shared work skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side (connect, provision, bind the
shared durable ``embeddings`` consumer, drain on SIGTERM); this adds the resource source
(cluster cache or manifests, readiness ``resources``) and the provider client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ark_mesh.bus import Bus, Publisher
from ark_mesh.contracts import EmbeddingsRequest
from ark_mesh.embeddings_reconciler.config import SERVICE_NAME, EmbeddingsReconcilerConfig
from ark_mesh.embeddings_reconciler.handler import EmbeddingsWork
from ark_mesh.embeddings_reconciler.provider import OpenAIEmbeddings
from ark_mesh.service import (
    ReconcilerService,
    WorkHandlers,
    WorkIdentity,
)

__all__ = ["EmbeddingsReconcilerService"]


class EmbeddingsReconcilerService(ReconcilerService[EmbeddingsRequest, EmbeddingsReconcilerConfig]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    kind = "embeddings"
    message_type = EmbeddingsRequest

    def describe(self) -> Mapping[str, Any]:
        return {"max_batch": self.config.max_batch}

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[EmbeddingsRequest]:
        embedder = OpenAIEmbeddings(timeout=self.config.timeout)
        stack.push_async_callback(embedder.aclose)
        work = EmbeddingsWork(
            publisher,
            self.store,
            embedder,
            max_batch=self.config.max_batch,
            max_result_bytes=self.config.max_result_bytes,
        )
        return WorkHandlers(work.handle, identify=_identify, end=work.end_dead_letter)


def _identify(request: EmbeddingsRequest) -> WorkIdentity:
    return WorkIdentity(request.tenant, request.request_id, "request id")
