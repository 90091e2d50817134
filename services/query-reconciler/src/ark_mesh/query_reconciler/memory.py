"""Conversation memory on JetStream: the resolver's ``MemoryStore`` port over ``ARK_MEMORY``.

Each save of a query's turn is one :class:`~ark_mesh.contracts.ConversationMessages` record on
``ark.<tenant>.memory.<conversationId>``; the history of a conversation is every record of its
subject, oldest first, read back in full with an ordered consumer (never truncated to a first
page). Retention is the stream's ``max_age`` (the message TTL). Conversation ids are UUIDs
minted locally — creating a conversation needs no round trip, its subject comes to exist with
the first save.

Saves carry a ``Nats-Msg-Id`` of the query uid, generation and save number, so the save of a
query whose reconciler died right after it (and which is then resolved again) is dropped as a
duplicate inside the stream's duplicate window instead of doubling the turn.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from ark_mesh.bus import Bus, BusError, NatsError, Publisher, StreamReader
from ark_mesh.contracts import (
    ConversationMessages,
    Memory,
    QueryRequest,
    SubjectError,
    decoder_for,
    subjects,
)
from ark_mesh.resolver import ChatMessage, MemoryBackendError

__all__ = ["JetStreamMemory", "JetStreamMemoryStore"]

_decode = decoder_for(ConversationMessages)


class JetStreamMemoryStore:
    """The conversations of one tenant, written on behalf of one query resolution."""

    def __init__(
        self,
        bus: Bus,
        publisher: Publisher,
        request: QueryRequest,
        *,
        read_timeout: float = 10.0,
    ) -> None:
        self._reader = StreamReader(bus, subjects.ARK_MEMORY)
        self._publisher = publisher
        self._tenant = request.tenant
        self._save_prefix = f"{request.query_id}:{request.generation}:memory"
        self._saves = itertools.count(1)
        self._read_timeout = read_timeout

    def _subject(self, conversation_id: str) -> str:
        try:
            return subjects.memory(self._tenant, conversation_id)
        except SubjectError as exc:
            # A conversation id is user input (spec.conversationId): say what is wrong with it.
            raise MemoryBackendError(
                f"conversation id {conversation_id!r} is unusable: {exc}"
            ) from exc

    async def create_conversation(self) -> str:
        return str(uuid.uuid4())

    async def get_messages(self, conversation_id: str) -> list[ChatMessage]:
        subject = self._subject(conversation_id)
        messages: list[ChatMessage] = []
        pending = 0
        try:
            async for entry in self._reader.read(
                subject, decoder=_decode, caught_up=True, idle_timeout=self._read_timeout
            ):
                messages.extend(entry.message.messages)
                pending = entry.pending
        except (BusError, NatsError, TimeoutError) as exc:
            raise MemoryBackendError(f"cannot read conversation {conversation_id}: {exc}") from exc
        if pending:
            # The reader stops silently on an idle timeout; a partial history must not pass
            # for the whole conversation.
            raise MemoryBackendError(
                f"conversation {conversation_id}: history read stopped with {pending} "
                "record(s) still unread"
            )
        return messages

    async def add_messages(
        self, conversation_id: str, query_id: str, messages: Sequence[ChatMessage]
    ) -> None:
        record = ConversationMessages(
            conversation_id=conversation_id,
            query_id=query_id,
            messages=[dict(message) for message in messages],
            timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        try:
            await self._publisher.publish(
                self._subject(conversation_id),
                record,
                msg_id=f"{self._save_prefix}:{next(self._saves)}",
            )
        except (BusError, NatsError) as exc:
            raise MemoryBackendError(
                f"cannot save to conversation {conversation_id}: {exc}"
            ) from exc


class JetStreamMemory:
    """A :class:`~ark_mesh.resolver.MemoryFactory` for one resolution: every Memory resource
    is served from ``ARK_MEMORY`` under the request's tenant (the address is not used)."""

    def __init__(
        self, bus: Bus, publisher: Publisher, request: QueryRequest, *, read_timeout: float = 10.0
    ) -> None:
        # One store per resolution, whichever Memory resource asks: save numbers (and so the
        # message ids) count the saves of the whole resolution.
        self.store = JetStreamMemoryStore(bus, publisher, request, read_timeout=read_timeout)

    def __call__(
        self, memory: Memory, address: str, headers: Mapping[str, str]
    ) -> JetStreamMemoryStore:
        return self.store
