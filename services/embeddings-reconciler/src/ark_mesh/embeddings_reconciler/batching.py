"""Splitting a large input across provider calls and joining the answers in input order.

Calls run one after another: a request's batches share one provider and one rate limit, and
the worker's slots already bound how many requests (and so calls) run at once. If a batch fails
transiently the whole request is redelivered — batches are not resumed, which keeps a
redelivery simple at the price of repeating calls that had succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ark_mesh.embeddings_reconciler.provider import EmbeddingsBatch
from ark_mesh.resolver import ModelEndpoint

__all__ = ["Embedder", "batches", "embed_all"]


class Embedder(Protocol):
    """What the batching needs from a provider client (the seam tests and other providers use)."""

    async def embed(
        self, endpoint: ModelEndpoint, texts: Sequence[str], *, dimensions: int | None = None
    ) -> EmbeddingsBatch: ...


def batches(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most ``size`` texts."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


async def embed_all(
    embedder: Embedder,
    endpoint: ModelEndpoint,
    texts: Sequence[str],
    *,
    max_batch: int,
    dimensions: int | None = None,
) -> EmbeddingsBatch:
    """Every text's vector, in input order, with the usage of all calls added up."""
    vectors: list[list[float]] = []
    prompt_tokens = total_tokens = 0
    for batch in batches(texts, max_batch):
        answer = await embedder.embed(endpoint, batch, dimensions=dimensions)
        vectors.extend(answer.vectors)
        prompt_tokens += answer.prompt_tokens
        total_tokens += answer.total_tokens
    return EmbeddingsBatch(vectors=vectors, prompt_tokens=prompt_tokens, total_tokens=total_tokens)
