"""The production :class:`~ark_mesh.resolver.ports.ModelClient`, built on the ``openai`` package.

OpenAI-compatible providers get an ``AsyncOpenAI``, Azure OpenAI an ``AsyncAzureOpenAI``. A call
is streamed (``stream_options.include_usage``, as Ark asks) or plain, as the caller says; a plain
answer is handed back as one chunk holding its content, every tool call and the usage. SDK
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
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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


def _usage(usage: CompletionUsage | None) -> TokenUsage | None:
    if usage is None:
        return None
    details = usage.prompt_tokens_details
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
    )


def _model_chunk(chunk: ChatCompletionChunk) -> ModelChunk:
    choices = msgspec.convert(
        [choice.model_dump(mode="json", exclude_none=True) for choice in chunk.choices],
        tuple[ChunkChoice, ...],
    )
    return ModelChunk(
        id=chunk.id,
        created=chunk.created,
        model=chunk.model,
        choices=choices,
        usage=_usage(chunk.usage),
    )


def _answer_chunk(completion: ChatCompletion) -> ModelChunk:
    """A non-streamed answer as one chunk: the delta carries the whole message.

    Providers are lenient in what they send (Ark's mock-llm echoes a ``user`` message back and
    omits ``created`` and ``index``), so only what a chunk needs is read, and the role is
    always ``assistant``: this is the model's turn whatever the provider labelled it.
    """
    choices = []
    for position, choice in enumerate(completion.choices or []):
        message = choice.message.model_dump(mode="json", exclude_none=True, warnings=False)
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        calls = message.get("tool_calls") or []
        if calls:
            delta["tool_calls"] = [
                {
                    "index": index,
                    "id": call.get("id"),
                    "type": "function",
                    "function": call.get("function") or {},
                }
                for index, call in enumerate(calls)
            ]
        choices.append(
            {
                "index": choice.index if choice.index is not None else position,
                "delta": delta,
                "finish_reason": choice.finish_reason,
            }
        )
    return ModelChunk(
        id=completion.id or "",
        created=completion.created or 0,
        model=completion.model or "",
        choices=msgspec.convert(choices, tuple[ChunkChoice, ...]),
        usage=_usage(completion.usage),
    )


class OpenAIModelClient:
    """Chat completions, streamed or plain, from OpenAI-compatible and Azure OpenAI endpoints.

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
        self, endpoint: ModelEndpoint, request: ChatRequest, *, streamed: bool = True
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
        if streamed:
            optional["stream"] = True
            optional["stream_options"] = {"include_usage": True}
        try:
            response = await create(
                model=endpoint.model,
                messages=list(request.messages),
                extra_headers=headers or None,
                extra_body=body or None,
                **optional,
            )
        except Exception as exc:
            raise _translate(exc, endpoint) from exc

        if not streamed:
            answer = _answer_chunk(response)

            async def whole() -> AsyncIterator[ModelChunk]:
                yield answer

            yield whole()
            return
        stream = response

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
