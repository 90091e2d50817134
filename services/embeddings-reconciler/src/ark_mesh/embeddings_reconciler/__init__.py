"""The embeddings reconciler: answers ``EmbeddingsRequest``s with vectors from a Model.

Run it with ``python -m ark_mesh.embeddings_reconciler --config FILE``. The pieces:

* :class:`EmbeddingsReconcilerConfig` — the typed configuration (:mod:`.config`);
* :class:`EmbeddingsReconcilerService` — wiring and lifecycle (:mod:`.service`);
* :class:`EmbeddingsWork` — one delivery: resolve the Model, embed, answer (:mod:`.handler`);
* :func:`embed_all` — batching in input order over an :class:`Embedder` (:mod:`.batching`);
* :class:`OpenAIEmbeddings` — the ``openai`` SDK client for ``/embeddings`` (:mod:`.provider`).

Errors are drawn in :mod:`ark_mesh.embeddings_reconciler.errors`.
"""

from ark_mesh.embeddings_reconciler.batching import Embedder, batches, embed_all
from ark_mesh.embeddings_reconciler.config import SERVICE_NAME, EmbeddingsReconcilerConfig
from ark_mesh.embeddings_reconciler.errors import InvalidEmbeddingsRequestError
from ark_mesh.embeddings_reconciler.handler import EmbeddingsWork, result_msg_id
from ark_mesh.embeddings_reconciler.provider import (
    AZURE_API_VERSION,
    EmbeddingsBatch,
    OpenAIEmbeddings,
)
from ark_mesh.embeddings_reconciler.service import EmbeddingsReconcilerService

__all__ = [
    "AZURE_API_VERSION",
    "SERVICE_NAME",
    "Embedder",
    "EmbeddingsBatch",
    "EmbeddingsReconcilerConfig",
    "EmbeddingsReconcilerService",
    "EmbeddingsWork",
    "InvalidEmbeddingsRequestError",
    "OpenAIEmbeddings",
    "batches",
    "embed_all",
    "result_msg_id",
]
