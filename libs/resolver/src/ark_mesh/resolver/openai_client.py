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

Answers are read from the SDK's raw response (``with_streaming_response`` /
``with_raw_response``): the SDK still builds the request, authenticates, retries and raises for
an error status, but the body is parsed here — each ``data:`` line of a stream, or the whole
answer — decoded by msgspec straight into the chunk shape the mesh forwards. Building the SDK's pydantic models for every token cost
several times the rest of the hot path (issue 14's profile); nothing else reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import msgspec
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

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


class _WireTokenDetails(msgspec.Struct):
    cached_tokens: int | None = None


class _WireUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: _WireTokenDetails | None = None


class _WireChunk(msgspec.Struct):
    """One ``chat.completion.chunk`` as providers send it; what the mesh does not use is
    skipped by the decoder, and fields providers leave out default."""

    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: tuple[ChunkChoice, ...] | None = None
    usage: _WireUsage | None = None
    error: dict[str, Any] | str | None = None


_chunk_decoder = msgspec.json.Decoder(_WireChunk)


def _wire_usage(usage: _WireUsage | None) -> TokenUsage | None:
    if usage is None:
        return None
    details = usage.prompt_tokens_details
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
    )


def _model_chunk(data: str, endpoint: ModelEndpoint) -> ModelChunk:
    try:
        wire = _chunk_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ModelUnavailableError(
            f"model '{endpoint.name}': the provider sent a chunk that is not a chat "
            f"completion chunk: {exc}"
        ) from exc
    if wire.error is not None:
        # OpenAI reports a failure inside an open stream as a data line carrying ``error``.
        message = (
            wire.error.get("message", wire.error) if isinstance(wire.error, dict) else wire.error
        )
        raise ModelUnavailableError(f"model '{endpoint.name}': {message}")
    return ModelChunk(
        id=wire.id or "",
        created=wire.created or 0,
        model=wire.model or "",
        choices=wire.choices or (),
        usage=_wire_usage(wire.usage),
    )


class _WireChoice(msgspec.Struct):
    index: int | None = None
    message: dict[str, Any] = msgspec.field(default_factory=dict)
    finish_reason: str | None = None


class _WireCompletion(msgspec.Struct):
    id: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[_WireChoice] | None = None
    usage: _WireUsage | None = None


_completion_decoder = msgspec.json.Decoder(_WireCompletion)


def _answer_chunk(body: bytes, endpoint: ModelEndpoint) -> ModelChunk:
    """A non-streamed answer as one chunk: the delta carries the whole message.

    Providers are lenient in what they send (Ark's mock-llm echoes a ``user`` message back and
    omits ``created`` and ``index``), so only what a chunk needs is read, and the role is
    always ``assistant``: this is the model's turn whatever the provider labelled it.
    """
    try:
        completion = _completion_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ModelUnavailableError(
            f"model '{endpoint.name}': the provider's answer is not a chat completion: {exc}"
        ) from exc
    choices = []
    for position, choice in enumerate(completion.choices or []):
        message = choice.message
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
        usage=_wire_usage(completion.usage),
    )


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (several ``data:`` lines joined), up to
    ``[DONE]``; comments, ``event:``/``id:`` fields and keep-alives are skipped."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                joined = "\n".join(data)
                data = []
                if joined.strip() == "[DONE]":
                    return
                yield joined
            continue
        if line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data and "\n".join(data).strip() != "[DONE]":
        yield "\n".join(data)


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
        completions: Any = self._client(endpoint).chat.completions
        arguments: dict[str, Any] = {
            "model": endpoint.model,
            "messages": list(request.messages),
            "extra_headers": headers or None,
            "extra_body": body or None,
            **optional,
        }
        if not streamed:
            try:
                response = await completions.with_raw_response.create(**arguments)
                answer = _answer_chunk(response.content, endpoint)
            except ModelUnavailableError:
                raise
            except Exception as exc:
                raise _translate(exc, endpoint) from exc

            async def whole() -> AsyncIterator[ModelChunk]:
                yield answer

            yield whole()
            return

        arguments["stream"] = True
        arguments["stream_options"] = {"include_usage": True}
        opened = completions.with_streaming_response.create(**arguments)
        try:
            raw = await opened.__aenter__()
        except Exception as exc:
            raise _translate(exc, endpoint) from exc

        async def chunks() -> AsyncIterator[ModelChunk]:
            try:
                async for data in _events(raw.iter_lines()):
                    yield _model_chunk(data, endpoint)
            except (ModelUnavailableError, ModelRequestError):
                raise
            except Exception as exc:
                raise _translate(exc, endpoint) from exc

        # Leaving this block closes the HTTP response: leaving it early (cancel, timeout)
        # stops the provider's generation instead of draining it.
        try:
            yield chunks()
        finally:
            await opened.__aexit__(None, None, None)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
