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

A **streamed** call to an OpenAI-compatible endpoint — the hot path: one per agent turn, with a
token per chunk — does not go through the SDK at all. It is one aiohttp POST whose server-sent
events are split into ``data:`` lines and decoded by msgspec straight into the chunk shape the
mesh forwards (:class:`_ThinStream`). Building the SDK's pydantic models for every token cost
several times the rest of the hot path (issue 14's profile), and even its raw response still
spent about six times the CPU of a plain aiohttp read on its request path and httpx's line
iteration. The thin stream keeps what the SDK did for such a call: the Bearer key, the
endpoint's and the call's headers over it, ``properties`` merged into the body last, the same
error mapping (the SDK's ``Error code: <status> - <message>`` text, ``Retry-After``), and
``max_retries`` retries of the opening request for what the SDK retries (connection failures,
timeouts, 408, 409, 429, 5xx, or ``x-should-retry: true``).

Everything else — plain (non-streamed) calls, and Azure OpenAI, whose deployment URLs and
``api-key`` auth the SDK knows — goes through the official client, whose raw response is
parsed here the same way (``with_raw_response`` / ``with_streaming_response``), so no
pydantic model is built on any path.

``max_connections`` caps the open connections to providers per client — the aiohttp pool of the
thin streams and the httpx pool of each SDK client (the SDK's own default of 1,000 made 5,000
concurrent slow queries run in steps of 1,000). It comes from ``models.maxConnections`` of the
service's configuration.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from ark_mesh.contracts import ChunkChoice, TokenUsage
from ark_mesh.resolver.errors import ModelRequestError, ModelUnavailableError
from ark_mesh.resolver.ports import ChatRequest, ModelChunk, ModelEndpoint

if TYPE_CHECKING:
    # Imported where an SDK client is built, not here: streamed calls to OpenAI-compatible
    # providers (the hot path) never touch the SDK, and importing it (with pydantic and its
    # httpx) costs every process that imports the resolver about 50 MiB (issue 14).
    import httpx2
    from openai import AsyncOpenAI

__all__ = ["DEFAULT_AZURE_API_VERSION", "DEFAULT_MAX_CONNECTIONS", "OpenAIModelClient"]

DEFAULT_AZURE_API_VERSION = "2024-10-21"
DEFAULT_MAX_CONNECTIONS = 10_000
"""Open connections to model providers per client unless configured: above what one replica's
slots hold at once, so the pool is a guard, not the bound of concurrency."""
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER = 60.0
_LINE_BUFFER = 2**20
"""aiohttp reads an SSE line of up to twice this (a provider may send a whole answer in one)."""


def _status_error(
    endpoint: ModelEndpoint, status: int, message: str, retry_after: str | None
) -> ModelUnavailableError | ModelRequestError:
    """An error status as the resolver's error: retryable (408, 409, 429, 5xx) or not."""
    detail = f"model '{endpoint.name}': provider answered {status}: {message}"
    if status in _RETRYABLE_STATUS or status >= 500:
        try:
            delay = float(retry_after) if retry_after is not None else None
        except ValueError:
            delay = None
        return ModelUnavailableError(detail, status=status, retry_after=delay)
    return ModelRequestError(detail, status=status)


def _status_message(status: int, body: bytes) -> str:
    """The SDK's text for an error answer: ``Error code: <status>``, plus `` - <message>``
    when the body is JSON with a (top-level or ``error.``) ``message``."""
    text = f"Error code: {status}"
    try:
        parsed = json.loads(body.decode("utf-8", "replace").strip())
    except ValueError:
        return text
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        text += f" - {message}"
    return text


def _translate(exc: Exception, endpoint: ModelEndpoint) -> Exception:
    """An exception of an SDK call (so the SDK is imported already) as the resolver's."""
    import httpx2
    import openai

    where = f"model '{endpoint.name}'"
    if isinstance(exc, openai.APIStatusError):
        return _status_error(
            endpoint, exc.status_code, exc.message, exc.response.headers.get("retry-after")
        )
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


def _retry_delay(attempt: int, retry_after: str | None) -> float:
    """The SDK's wait before retry ``attempt`` (0-based): ``Retry-After`` when it is sensible,
    else exponential from 0.5 s up to 8 s with up to 25 % jitter."""
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = 0.0
        if 0 < seconds <= _MAX_RETRY_AFTER:
            return seconds
    return min(_INITIAL_RETRY_DELAY * 2.0**attempt, _MAX_RETRY_DELAY) * (1 - 0.25 * random.random())


def _retryable(response: aiohttp.ClientResponse) -> bool:
    forced = response.headers.get("x-should-retry")
    if forced in ("true", "false"):
        return forced == "true"
    return response.status in _RETRYABLE_STATUS or response.status >= 500


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for line in response.content:
        yield line.decode("utf-8").rstrip("\r\n")


class _ThinStream:
    """Streamed chat completions from an OpenAI-compatible endpoint over one aiohttp session
    (see the module docstring for what it keeps of the SDK's behaviour)."""

    def __init__(self, *, max_retries: int, timeout: float, max_connections: int) -> None:
        self.max_retries = max_retries
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.timeout, sock_read=self.timeout
                ),
                read_bufsize=_LINE_BUFFER,
            )
        return self._session

    async def open(
        self, endpoint: ModelEndpoint, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """POST the call and return the open response (status checked, retries done)."""
        url = f"{(endpoint.base_url or DEFAULT_OPENAI_BASE_URL).rstrip('/')}/chat/completions"
        sent = {
            "Authorization": f"Bearer {endpoint.api_key or 'unused'}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **headers,
        }
        data = msgspec.json.encode(body)
        where = f"model '{endpoint.name}'"
        attempt = 0
        while True:
            retry_after: str | None = None
            try:
                response = await self._http().post(url, data=data, headers=sent)
            except TimeoutError as exc:
                if attempt >= self.max_retries:
                    raise ModelUnavailableError(f"{where}: request timed out") from exc
            except (aiohttp.ClientError, OSError) as exc:
                if attempt >= self.max_retries:
                    raise ModelUnavailableError(f"{where}: connection failed: {exc}") from exc
            else:
                if response.status < 400:
                    return response
                retry_after = response.headers.get("retry-after")
                try:
                    answer = await response.read()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    answer = b""
                finally:
                    response.release()
                if attempt >= self.max_retries or not _retryable(response):
                    raise _status_error(
                        endpoint,
                        response.status,
                        _status_message(response.status, answer),
                        retry_after,
                    )
            await asyncio.sleep(_retry_delay(attempt, retry_after))
            attempt += 1

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAIModelClient:
    """Chat completions, streamed or plain, from OpenAI-compatible and Azure OpenAI endpoints.

    ``max_retries`` is the retry of a single call (the SDK's, and the thin stream's of its
    opening request; both honour ``Retry-After``); set it to 0 when the caller retries whole
    queries instead. ``max_connections`` caps each connection pool (module docstring).
    """

    def __init__(
        self,
        *,
        max_retries: int = 2,
        timeout: float = 600.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_retries = max_retries
        self.timeout = timeout
        self.max_connections = max_connections
        self._clients: dict[tuple[str, str | None, str | None, str | None], AsyncOpenAI] = {}
        self._thin = _ThinStream(
            max_retries=max_retries, timeout=timeout, max_connections=max_connections
        )

    def _http_client(self) -> httpx2.AsyncClient:
        import httpx2
        import openai

        return openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=min(self.max_connections, 100),
            ),
            timeout=self.timeout,
        )

    def _client(self, endpoint: ModelEndpoint) -> AsyncOpenAI:
        key = (endpoint.provider, endpoint.base_url, endpoint.api_key, endpoint.api_version)
        client = self._clients.get(key)
        if client is None:
            # Providers behind a gateway often need no key, but the SDK insists on one.
            api_key = endpoint.api_key or "unused"
            from openai import AsyncAzureOpenAI, AsyncOpenAI

            if endpoint.provider == "azure":
                client = AsyncAzureOpenAI(
                    azure_endpoint=endpoint.base_url or "",
                    api_key=api_key,
                    api_version=endpoint.api_version or DEFAULT_AZURE_API_VERSION,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    http_client=self._http_client(),
                )
            else:
                client = AsyncOpenAI(
                    base_url=endpoint.base_url,
                    api_key=api_key,
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                    http_client=self._http_client(),
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
        if streamed and endpoint.provider != "azure":
            # The hot path: no SDK client is built (nor the SDK imported) for it.
            async with self._thin_stream(endpoint, request, optional, body, headers) as thin:
                yield thin
            return

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

    @asynccontextmanager
    async def _thin_stream(
        self,
        endpoint: ModelEndpoint,
        request: ChatRequest,
        optional: dict[str, Any],
        properties: dict[str, Any],
        headers: dict[str, str],
    ) -> AsyncIterator[AsyncIterator[ModelChunk]]:
        body: dict[str, Any] = {
            "model": endpoint.model,
            "messages": list(request.messages),
            **optional,
            "stream": True,
            "stream_options": {"include_usage": True},
            **properties,  # last, as the SDK merges ``extra_body`` over its own fields
        }
        response = await self._thin.open(endpoint, body, headers)

        async def chunks() -> AsyncIterator[ModelChunk]:
            try:
                async for data in _events(_lines(response)):
                    yield _model_chunk(data, endpoint)
                # The end of the body after [DONE], so the connection goes back to the pool.
                await response.read()
            except (ModelUnavailableError, ModelRequestError):
                raise
            except TimeoutError as exc:
                raise ModelUnavailableError(f"model '{endpoint.name}': request timed out") from exc
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise ModelUnavailableError(
                    f"model '{endpoint.name}': connection failed: {exc}"
                ) from exc

        # Leaving this block releases the response: a body read to its end returns the
        # connection to the pool, one left early (cancel, timeout) is closed, which stops the
        # provider's generation instead of draining it.
        try:
            yield chunks()
        finally:
            response.release()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
        await self._thin.aclose()
