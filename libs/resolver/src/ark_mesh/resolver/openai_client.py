"""The production :class:`~ark_mesh.resolver.ports.ModelClient`, built on the ``openai`` package.

OpenAI-compatible providers get an ``AsyncOpenAI``, Azure OpenAI an ``AsyncAzureOpenAI``; SDK
clients are cached per (provider, address, key, API version) because each owns a connection pool,
while headers travel per request (they differ per agent and query). Model ``properties`` go into
the request body untouched by the SDK's own parameter list, so any provider-specific parameter
reaches the wire.

The SDK's exceptions are translated here, at the seam, into the resolver's error tree: 429, 408,
409, 5xx, timeouts and dropped connections become :class:`ModelUnavailableError` (a retry of the
query may succeed), other 4xx :class:`ModelRequestError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import msgspec
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from ark_mesh.contracts import ChunkChoice, TokenUsage
from ark_mesh.resolver.errors import ModelRequestError, ModelUnavailableError
from ark_mesh.resolver.ports import ChatRequest, ModelChunk, ModelEndpoint

__all__ = ["DEFAULT_AZURE_API_VERSION", "OpenAIModelClient"]

DEFAULT_AZURE_API_VERSION = "2024-10-21"
_RETRYABLE_STATUS = frozenset({408, 409, 429})


def _translate(exc: Exception, endpoint: ModelEndpoint) -> Exception:
    where = f"model '{endpoint.name}'"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"{where}: provider answered {status}: {exc.message}"
        if status in _RETRYABLE_STATUS or status >= 500:
            retry_after = exc.response.headers.get("retry-after")
            try:
                delay = float(retry_after) if retry_after is not None else None
            except ValueError:
                delay = None
            return ModelUnavailableError(detail, status=status, retry_after=delay)
        return ModelRequestError(detail, status=status)
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(f"{where}: request timed out")
    if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
        return ModelUnavailableError(f"{where}: connection failed: {exc}")
    if isinstance(exc, openai.APIError):
        return ModelUnavailableError(f"{where}: {exc.message}")
    return exc


def _model_chunk(chunk: ChatCompletionChunk) -> ModelChunk:
    usage = None
    if chunk.usage is not None:
        details = chunk.usage.prompt_tokens_details
        usage = TokenUsage(
            prompt_tokens=chunk.usage.prompt_tokens,
            completion_tokens=chunk.usage.completion_tokens,
            total_tokens=chunk.usage.total_tokens,
            cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
        )
    choices = msgspec.convert(
        [choice.model_dump(mode="json", exclude_none=True) for choice in chunk.choices],
        tuple[ChunkChoice, ...],
    )
    return ModelChunk(
        id=chunk.id, created=chunk.created, model=chunk.model, choices=choices, usage=usage
    )


class OpenAIModelClient:
    """Streams chat completions from OpenAI-compatible and Azure OpenAI endpoints.

    ``max_retries`` is the SDK's own retry of a single call (it honours ``Retry-After``); set it
    to 0 when the caller retries whole queries instead.
    """

    def __init__(self, *, max_retries: int = 2, timeout: float = 600.0) -> None:
        self.max_retries = max_retries
        self.timeout = timeout
        self._clients: dict[tuple[str, str | None, str | None, str | None], AsyncOpenAI] = {}

    def _client(self, endpoint: ModelEndpoint) -> AsyncOpenAI:
        key = (endpoint.provider, endpoint.base_url, endpoint.api_key, endpoint.api_version)
        client = self._clients.get(key)
        if client is None:
            # Providers behind a gateway often need no key, but the SDK insists on one.
            api_key = endpoint.api_key or "unused"
            if endpoint.provider == "azure":
                client = AsyncAzureOpenAI(
                    azure_endpoint=endpoint.base_url or "",
                    api_key=api_key,
                    api_version=endpoint.api_version or DEFAULT_AZURE_API_VERSION,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
            else:
                client = AsyncOpenAI(
                    base_url=endpoint.base_url,
                    api_key=api_key,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
            self._clients[key] = client
        return client

    @asynccontextmanager
    async def stream(
        self, endpoint: ModelEndpoint, request: ChatRequest
    ) -> AsyncIterator[AsyncIterator[ModelChunk]]:
        body: dict[str, Any] = dict(endpoint.properties)
        optional: dict[str, Any] = {}
        if request.tools:
            optional["tools"] = list(request.tools)
        if request.tool_choice is not None:
            optional["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            optional["response_format"] = dict(request.response_format)
        headers = {**endpoint.headers, **request.headers}
        # Messages and tools are plain dicts in OpenAI's wire shape; the SDK's TypedDict
        # overloads cannot see that, so the call is made through an untyped reference.
        create: Any = self._client(endpoint).chat.completions.create
        try:
            stream = await create(
                model=endpoint.model,
                messages=list(request.messages),
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers or None,
                extra_body=body or None,
                **optional,
            )
        except Exception as exc:
            raise _translate(exc, endpoint) from exc

        async def chunks() -> AsyncIterator[ModelChunk]:
            try:
                async for chunk in stream:
                    yield _model_chunk(chunk)
            except Exception as exc:
                raise _translate(exc, endpoint) from exc

        # Closing the SDK stream closes the HTTP response: leaving this block early (cancel,
        # timeout) stops the provider's generation instead of draining it.
        async with stream:
            yield chunks()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
