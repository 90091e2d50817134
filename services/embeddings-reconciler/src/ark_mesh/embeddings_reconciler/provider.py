"""Calling a provider's OpenAI-compatible ``/embeddings`` endpoint with the ``openai`` package.

OpenAI-compatible providers get an ``AsyncOpenAI``, Azure OpenAI an ``AsyncAzureOpenAI`` (its
deployment path); SDK clients are cached per address, key and API version because each owns a
connection pool. The SDK's own retry is off: a failed call fails the delivery, and the bus
redelivers the whole request with backoff rather than holding a worker slot.

Vectors are asked for as ``float``: the SDK would otherwise request base64 and unpack float32,
silently losing the precision the provider computed.

SDK exceptions are translated here, at the seam, into the resolver's error tree: 408, 409, 429,
5xx, timeouts and connection failures become :class:`ModelUnavailableError`, other 4xx
:class:`ModelRequestError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from ark_mesh.resolver import ModelEndpoint, ModelRequestError, ModelUnavailableError

__all__ = ["AZURE_API_VERSION", "EmbeddingsBatch", "OpenAIEmbeddings"]

AZURE_API_VERSION = "2024-10-21"
_RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class EmbeddingsBatch:
    """The provider's answer to one call: one vector per text, in the texts' order."""

    vectors: list[list[float]]
    prompt_tokens: int
    total_tokens: int


def _retry_after(response_headers: Any) -> float | None:
    raw = response_headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _translate(exc: openai.APIError, endpoint: ModelEndpoint) -> Exception:
    where = f"model '{endpoint.name}'"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"{where}: provider answered {status}: {exc.message}"
        if status in _RETRYABLE_STATUS or status >= 500:
            return ModelUnavailableError(
                detail, status=status, retry_after=_retry_after(exc.response.headers)
            )
        return ModelRequestError(detail, status=status)
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(f"{where}: embeddings request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(f"{where}: connection failed: {exc}")
    # Undecodable or otherwise odd answers: the next attempt may well get a proper one.
    return ModelUnavailableError(f"{where}: {exc.message}")


class OpenAIEmbeddings:
    """Embeds texts through OpenAI-compatible and Azure OpenAI endpoints."""

    def __init__(self, *, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._clients: dict[tuple[str, str | None, str | None, str | None], AsyncOpenAI] = {}

    def _client(self, endpoint: ModelEndpoint) -> AsyncOpenAI:
        key = (endpoint.provider, endpoint.base_url, endpoint.api_key, endpoint.api_version)
        client = self._clients.get(key)
        if client is None:
            # Gateways often need no key, but the SDK refuses to start without one.
            api_key = endpoint.api_key or "unused"
            if endpoint.provider == "azure":
                client = AsyncAzureOpenAI(
                    azure_endpoint=endpoint.base_url or "",
                    api_key=api_key,
                    api_version=endpoint.api_version or AZURE_API_VERSION,
                    max_retries=0,
                    timeout=self.timeout,
                )
            else:
                client = AsyncOpenAI(
                    base_url=endpoint.base_url,
                    api_key=api_key,
                    max_retries=0,
                    timeout=self.timeout,
                )
            self._clients[key] = client
        return client

    async def embed(
        self, endpoint: ModelEndpoint, texts: Sequence[str], *, dimensions: int | None = None
    ) -> EmbeddingsBatch:
        """One provider call for ``texts``; raises the resolver's model errors."""
        optional: dict[str, Any] = {}
        if dimensions is not None:
            optional["dimensions"] = dimensions
        try:
            response = await self._client(endpoint).embeddings.create(
                model=endpoint.model,
                input=list(texts),
                encoding_format="float",
                extra_headers=dict(endpoint.headers) or None,
                **optional,
            )
        except openai.APIError as exc:
            raise _translate(exc, endpoint) from exc
        # Providers may answer out of order; ``index`` is what ties a vector to its text.
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(texts))):
            raise ModelRequestError(
                f"model '{endpoint.name}': provider answered {len(data)} vector(s) "
                f"for {len(texts)} input(s)"
            )
        usage = response.usage
        return EmbeddingsBatch(
            vectors=[list(item.embedding) for item in data],
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            total_tokens=usage.total_tokens if usage is not None else 0,
        )

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
