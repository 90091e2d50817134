"""The resolver's ports: the only ways it touches the world.

The same :class:`~ark_mesh.resolver.resolution.QueryResolver` runs inside the controller (with
in-process adapters) and inside the query-reconciler service (with JetStream adapters). It can do
so because everything outside pure computation goes through one of these structural protocols:

* :class:`ResourceStore` — read Ark resources (the kube adapter, or an in-memory store);
* :class:`ModelClient` — chat completions from a model provider, streamed or not (the transport
  seam; the real one wraps the ``openai`` package);
* :class:`MemoryStore` / :class:`MemoryFactory` — conversation history (Ark's HTTP memory API,
  in-memory, or JetStream);
* :class:`ResolutionSink` — where chunks, operation events and status transitions go;
* :class:`Clock` — wall time for timestamps and a monotonic clock for budgets.

Implementations elsewhere need not import this module: the protocols are structural.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from ark_mesh.contracts import (
    Chunk,
    ChunkChoice,
    Memory,
    QueryEvent,
    Resource,
    StatusUpdate,
    TokenUsage,
)

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "Clock",
    "MemoryFactory",
    "MemoryStore",
    "ModelChunk",
    "ModelClient",
    "ModelEndpoint",
    "ResolutionSink",
    "ResourceStore",
]

R = TypeVar("R", bound=Resource)

ChatMessage = dict[str, Any]
"""An OpenAI chat message (``role``, ``content``, ``tool_calls``, ``tool_call_id``, ``name``)."""


class ResourceStore(Protocol):
    """Read access to resources of one cluster (or of a directory of manifests).

    ``label_selector`` is a Kubernetes ``LabelSelector`` in its wire form:
    ``{"matchLabels": {...}, "matchExpressions": [{"key", "operator", "values"}]}``.
    """

    async def get(self, kind: type[R], namespace: str, name: str) -> R | None: ...

    async def list(
        self, kind: type[R], namespace: str, label_selector: Mapping[str, Any] | None = None
    ) -> list[R]: ...


@dataclass(frozen=True)
class ModelEndpoint:
    """One Model resolved from its resource: provider, address, credentials, headers, params.

    ``model`` is the provider's model id (for Azure, the deployment name); ``properties`` are
    ChatCompletion parameters already converted to their JSON types (``temperature`` → float).
    """

    name: str
    namespace: str
    provider: Literal["openai", "azure"]
    model: str
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion call; ``headers`` are per-call overrides on top of the endpoint's."""

    messages: Sequence[ChatMessage]
    tools: Sequence[Mapping[str, Any]] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelChunk:
    """One ``chat.completion.chunk`` as the provider sent it (usage on the last), or a whole
    non-streamed answer in chunk form (content, every tool call, finish reason and usage)."""

    id: str
    created: int
    model: str
    choices: tuple[ChunkChoice, ...] = ()
    usage: TokenUsage | None = None


class ModelClient(Protocol):
    """Chat completions as chunks. Errors are raised as resolver errors:
    :class:`~ark_mesh.resolver.errors.ModelUnavailableError` (retryable) or
    :class:`~ark_mesh.resolver.errors.ModelRequestError` (refused).

    ``streamed`` says how the provider is called (see :mod:`ark_mesh.resolver.streaming` for
    who decides): ``True`` asks it to stream, with usage in the last chunk; ``False`` makes a
    plain call and yields its whole answer as one chunk. Callers read both the same way.
    Leaving the context manager early (cancellation) must close the provider's HTTP response.
    """

    def stream(
        self, endpoint: ModelEndpoint, request: ChatRequest, *, streamed: bool = True
    ) -> AbstractAsyncContextManager[AsyncIterator[ModelChunk]]: ...


class MemoryStore(Protocol):
    """Conversation history. ``query_id`` is the Query **name**, as in Ark's memory API."""

    async def create_conversation(self) -> str: ...

    async def get_messages(self, conversation_id: str) -> list[ChatMessage]:
        """Every message of the conversation, oldest first (all pages, never truncated)."""
        ...

    async def add_messages(
        self, conversation_id: str, query_id: str, messages: Sequence[ChatMessage]
    ) -> None: ...


class MemoryFactory(Protocol):
    """Turns a Memory resource (with its resolved address) into a store."""

    def __call__(self, memory: Memory, address: str, headers: Mapping[str, str]) -> MemoryStore: ...


class ResolutionSink(Protocol):
    """Where a resolution reports: streamed chunks, operation events, status transitions."""

    async def chunk(self, chunk: Chunk) -> None: ...

    async def event(self, event: QueryEvent) -> None: ...

    async def status(self, update: StatusUpdate) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC wall time (timestamps, absolute deadlines)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (durations, remaining budget)."""
        ...
