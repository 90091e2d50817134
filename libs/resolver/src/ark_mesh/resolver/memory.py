"""Conversation memory: which store a query uses, its history, and saving the turn.

Choice of store, as Ark: ``spec.memory``, else the Memory named ``default`` in the query's
namespace, else none — never a Memory of another namespace, which would be another tenant's
conversations. With a store and no ``conversationId`` a new conversation is created;
without a store but with a ``conversationId`` the query runs without history and reports
``MemoryUnavailable``. A store that fails while loading history degrades the query (it runs
without history, ``MemoryDegraded``) instead of failing it. History is loaded in full — every
page — where Ark reads only the first 100 messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ark_mesh.contracts import Memory
from ark_mesh.resolver.context import QueryRun
from ark_mesh.resolver.errors import InvalidSpecError, MemoryBackendError, ResourceNotFoundError
from ark_mesh.resolver.ports import ChatMessage, MemoryFactory, MemoryStore
from ark_mesh.resolver.values import ValueResolver

__all__ = ["Conversation", "InMemoryMemoryStore", "open_conversation"]

DEFAULT_MEMORY_NAME = "default"


@dataclass
class InMemoryMemoryStore:
    """Conversations in a dict: for tests and single-process installs."""

    conversations: dict[str, list[tuple[str, ChatMessage]]] = field(default_factory=dict)

    async def create_conversation(self) -> str:
        conversation_id = str(uuid.uuid4())
        self.conversations[conversation_id] = []
        return conversation_id

    async def get_messages(self, conversation_id: str) -> list[ChatMessage]:
        return [dict(message) for _, message in self.conversations.get(conversation_id, [])]

    async def add_messages(
        self, conversation_id: str, query_id: str, messages: Sequence[ChatMessage]
    ) -> None:
        self.conversations.setdefault(conversation_id, []).extend(
            (query_id, dict(message)) for message in messages
        )


@dataclass
class Conversation:
    """The memory side of one query: store, conversation id, history, and memory conditions."""

    store: MemoryStore | None = None
    memory_name: str | None = None
    conversation_id: str | None = None
    history: list[ChatMessage] = field(default_factory=list)
    unavailable: bool = False
    degraded: str | None = None

    async def save(self, run: QueryRun, messages: Sequence[ChatMessage]) -> None:
        """Append this turn's messages; a failure is reported, never fatal."""
        if self.store is None or self.conversation_id is None or not messages:
            return
        data = {"memory": self.memory_name or "", "messages": str(len(messages))}
        try:
            async with run.report.operation(
                "MemoryAddMessages", f"Saving {len(messages)} messages to memory", data
            ):
                await self.store.add_messages(self.conversation_id, run.request.name, messages)
        except MemoryBackendError:
            return


async def _memory_resource(run: QueryRun) -> Memory | None:
    ref = run.request.spec.memory
    if ref is not None:
        namespace = ref.namespace or run.namespace
        if namespace != run.namespace:
            # A Memory holds conversations: one in another namespace is another tenant's data.
            raise InvalidSpecError(
                f"spec.memory.namespace: a query may only use a Memory of its own namespace "
                f"'{run.namespace}', not '{namespace}'"
            )
        memory = await run.store.get(Memory, namespace, ref.name)
        if memory is None:
            raise ResourceNotFoundError("Memory", namespace, ref.name, referenced_by="the query")
        return memory
    return await run.store.get(Memory, run.namespace, DEFAULT_MEMORY_NAME)


async def _address(run: QueryRun, memory: Memory) -> tuple[str, Mapping[str, str]]:
    namespace = memory.metadata.namespace or run.namespace
    values = run.values if namespace == run.namespace else ValueResolver(run.store, namespace)
    what = f"memory '{memory.metadata.name}'"
    address = (
        memory.status.last_resolved_address if memory.status else None
    ) or await values.required(memory.spec.address, what=f"{what} address")
    return address.rstrip("/"), await values.headers(memory.spec.headers, what=what)


async def open_conversation(run: QueryRun, factory: MemoryFactory) -> Conversation:
    """Pick the store, make sure there is a conversation id, and load its history."""
    # A resumed run continues the conversation its first round opened.
    requested = run.request.spec.conversation_id or run.journal.conversation_id
    memory = await _memory_resource(run)
    if memory is None:
        return Conversation(conversation_id=requested, unavailable=requested is not None)
    address, headers = await _address(run, memory)
    conversation = Conversation(
        store=factory(memory, address, headers),
        memory_name=memory.metadata.name,
        conversation_id=requested,
    )
    assert conversation.store is not None
    if conversation.conversation_id is None:
        try:
            conversation.conversation_id = await conversation.store.create_conversation()
        except MemoryBackendError as exc:
            conversation.degraded = f"could not create a conversation: {exc}"
            conversation.store = None
            return conversation
    run.report.conversation_id = conversation.conversation_id
    run.journal.conversation_id = conversation.conversation_id
    data = {"memory": memory.metadata.name}
    try:
        async with run.report.operation(
            "MemoryGetMessages", f"Loading history from memory {memory.metadata.name}", data
        ) as details:
            conversation.history = await conversation.store.get_messages(
                conversation.conversation_id
            )
            details["messages"] = str(len(conversation.history))
    except MemoryBackendError as exc:
        conversation.degraded = str(exc)
    return conversation
