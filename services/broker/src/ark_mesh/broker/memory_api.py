"""Ark's Memory API (ark-broker's ``/conversations``, ``/messages``, ``/memory-status``) over
``ARK_MEMORY``, and the ark-api routes the dashboard reads memory through.

Conversation memory is already on JetStream: the query-reconciler's ``jetstream`` memory backend
appends one :class:`~ark_mesh.contracts.ConversationMessages` record per save on
``ark.<tenant>.memory.<conversationId>``. These routes read and write the same records, so
messages appended with ``POST /messages`` are history to the next query of that conversation,
and what queries saved is listed here. Everything is scoped to the caller's tenant: the tenant
is the subject's second token, so another tenant's conversation is simply not there (``404``),
and ``DELETE /conversations`` purges the caller's conversations only (Ark's purges the store).

Sequences: a record is one JetStream message holding every message of one save, so a message's
``sequence`` is its record's stream sequence times :data:`PER_RECORD` plus its place in the
record: unique, increasing in stream order, and a page holds exactly ``limit`` messages even
when that splits a save. ``cursor`` is exclusive, as in Ark: ``nextCursor`` is the last
sequence of the page. Deleting one query's messages deletes its records (each record holds one
query's save), by stream sequence.

``ttl_seconds`` on ``POST /messages`` becomes JetStream's per-message TTL (``Nats-TTL``), which
needs a stream created with ``allow_msg_ttl`` (nats-server 2.11); otherwise it is refused by
name rather than ignored — the stream's ``max_age`` is then the TTL of every message.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from ark_mesh.broker.bodies import decode_body
from ark_mesh.broker.errors import BadRequestError, NotFoundError, UnavailableError
from ark_mesh.broker.openapi import Operation, Param, Reply
from ark_mesh.broker.readmodel import now
from ark_mesh.bus import Bus, BusError, NatsError, Publisher, StreamEntry, StreamReader
from ark_mesh.contracts import ConversationMessages, SubjectError, decoder_for, subjects
from ark_mesh.telemetry import get_logger

__all__ = [
    "MEMORY",
    "ApiMessage",
    "ConversationMemory",
    "MemoryItem",
    "MessagesPage",
    "int_param",
    "memory_operations",
    "refuse_watch",
]

_decode = decoder_for(ConversationMessages)
_log = get_logger(__name__)
_encoder = msgspec.json.Encoder()
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
DEFAULT_MEMORY_NAME = "default"
"""ark-api names the Memory a conversation came from; broker mode keeps every conversation of
a tenant in one store, reported under the name Ark's default Memory has."""

Record = StreamEntry[ConversationMessages]
AppendHook = Callable[[str, str, str, str], Awaitable[object]]
"""``(tenant, conversation_id, query_id, timestamp)`` of an append."""


# --------------------------------------------------------------------------- bodies


class PostMessagesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """ark-broker's ``POST /messages`` body (snake_case, as Ark's memory clients send it)."""

    conversation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    query_id: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    messages: list[dict[str, Any]]
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ConversationCreated(msgspec.Struct, kw_only=True):
    conversation_id: str


class ConversationIds(msgspec.Struct, kw_only=True):
    conversations: list[str]


class MemoryItem(msgspec.Struct, kw_only=True):
    """One message as Ark's broker lists it; ``sequence`` places it (see the module docstring)."""

    timestamp: str
    conversation_id: str
    query_id: str
    message: Any
    sequence: int


class ConversationDetail(msgspec.Struct, kw_only=True):
    conversation_id: str
    messages: list[MemoryItem]


class MessagesPage(msgspec.Struct, kw_only=True, omit_defaults=True):
    items: list[MemoryItem]
    total: int
    has_more: bool = msgspec.field(name="hasMore")
    next_cursor: int | None = msgspec.field(default=None, name="nextCursor")


class MemoryConversationMessages(msgspec.Struct, kw_only=True):
    """ark-api's ``GET /v1/memories/{name}/conversations/{id}/messages``.

    ark-api passes the memory service's ``/messages`` answer through, so which keys a client
    finds depended on the broker behind it: the newest broker pages ``items`` (records), while
    Ark's dashboard reads ``messages`` and renders each one's ``role`` and ``content``. Both are
    here, so either client reads the conversation."""

    items: list[MemoryItem]
    total: int
    messages: list[Any]
    """The conversation's chat messages in order (each record's ``message``)."""


class ConversationStats(msgspec.Struct, kw_only=True):
    message_count: int
    query_count: int


class MemoryStatus(msgspec.Struct, kw_only=True):
    total_conversations: int
    total_messages: int
    conversations: dict[str, ConversationStats]


class StatusMessage(msgspec.Struct, kw_only=True):
    status: str
    message: str


class ApiConversation(msgspec.Struct, kw_only=True, rename="camel"):
    conversation_id: str
    memory_name: str


class ApiConversationList(msgspec.Struct, kw_only=True):
    """ark-api's ``ConversationListResponse``."""

    items: list[ApiConversation]
    total: int


class ApiMemoryMessage(msgspec.Struct, kw_only=True, rename="camel"):
    timestamp: str
    memory_name: str
    conversation_id: str
    query_id: str
    message: Any
    sequence: int


class ApiMemoryMessageList(msgspec.Struct, kw_only=True):
    """ark-api's ``MemoryMessageListResponse`` (newest first)."""

    items: list[ApiMemoryMessage]
    total: int


class ApiMessage(msgspec.Struct, kw_only=True):
    """ark-api's answer to a delete."""

    message: str


# --------------------------------------------------------------------------- the store


class ConversationMemory:
    """The conversations of every tenant on ``ARK_MEMORY``; each call names its tenant."""

    def __init__(
        self,
        bus: Bus,
        publisher: Publisher,
        *,
        allow_ttl: bool = False,
        read_timeout: float = 10.0,
    ) -> None:
        self.bus = bus
        self._publisher = publisher
        self._reader = StreamReader(bus, subjects.ARK_MEMORY)
        self._allow_ttl = allow_ttl
        self._read_timeout = read_timeout
        self.on_append: AppendHook | None = None
        """Told of every append (the sessions read model's ``applyMessage``)."""

    @staticmethod
    def subject(tenant: str, conversation_id: str | None) -> str | None:
        """The conversation's subject (all the tenant's conversations for ``None``), or
        ``None`` when the id cannot be a subject token: no conversation has such an id."""
        if conversation_id is None:
            return f"{subjects.ROOT}.{subjects.validate_token(tenant, 'tenant')}.memory.*"
        try:
            return subjects.memory(tenant, conversation_id)
        except SubjectError:
            return None

    async def records(self, tenant: str, conversation_id: str | None = None) -> list[Record]:
        """Every record of the conversation (of all the tenant's, for ``None``), oldest first,
        read in full (a read that stops short is a 503, never a partial answer)."""
        subject = self.subject(tenant, conversation_id)
        if subject is None:
            return []
        found: list[Record] = []
        pending = 0
        try:
            async for entry in self._reader.read(
                subject, decoder=_decode, caught_up=True, idle_timeout=self._read_timeout
            ):
                found.append(entry)
                pending = entry.pending
        except (BusError, NatsError, TimeoutError) as exc:
            raise UnavailableError(f"conversation memory is unavailable: {exc}") from exc
        if pending:
            raise UnavailableError(
                f"conversation memory read stopped with {pending} record(s) unread"
            )
        return found

    async def append(self, tenant: str, body: PostMessagesRequest) -> int | None:
        """Append ``body.messages`` as one record; its stream sequence (``None``: no messages,
        nothing written, as Ark adds nothing)."""
        subject = self.subject(tenant, body.conversation_id)
        if subject is None:
            raise BadRequestError(
                f"conversation_id {body.conversation_id!r} cannot be a conversation id "
                "(no dots, spaces, '*' or '>')",
                field="conversation_id",
            )
        headers: dict[str, str] = {}
        if body.ttl_seconds is not None:
            if not self._allow_ttl:
                raise BadRequestError(
                    "ttl_seconds needs per-message TTLs, which this mesh's ARK_MEMORY stream "
                    "does not allow (topology.memory.allow_msg_ttl, nats-server 2.11); its "
                    "messages expire after the stream's max_age",
                    field="ttl_seconds",
                )
            headers["Nats-TTL"] = f"{body.ttl_seconds}s"
        if not body.messages:
            return None
        record = ConversationMessages(
            conversation_id=body.conversation_id,
            query_id=body.query_id,
            messages=body.messages,
            timestamp=now(),
        )
        try:
            ack = await self._publisher.publish(
                subject, record, msg_id=f"memory-api:{uuid.uuid4()}", headers=headers or None
            )
        except (BusError, NatsError) as exc:
            raise UnavailableError(f"cannot append to conversation memory: {exc}") from exc
        if self.on_append is not None:
            # The messages are stored: a 503 now would make the client append them twice.
            try:
                await self.on_append(tenant, body.conversation_id, body.query_id, record.timestamp)
            except UnavailableError as exc:
                _log.warning(
                    "session not updated for appended messages",
                    query_id=body.query_id,
                    error=exc.message,
                )
        return ack.seq

    async def purge(self, tenant: str, conversation_id: str | None = None) -> None:
        """Purge one conversation's subject (all the tenant's for ``None``)."""
        subject = self.subject(tenant, conversation_id)
        if subject is None:
            return
        try:
            await self.bus.jsm.purge_stream(subjects.ARK_MEMORY, subject=subject)
        except (BusError, NatsError) as exc:
            raise UnavailableError(f"cannot purge conversation memory: {exc}") from exc

    async def delete_query(
        self, tenant: str, query_id: str, conversation_id: str | None = None
    ) -> int:
        """Delete the records of query ``query_id`` (in one conversation, or in all of the
        tenant's); how many records were deleted."""
        deleted = 0
        for entry in await self.records(tenant, conversation_id):
            if entry.message.query_id != query_id:
                continue
            try:
                await self.bus.jsm.delete_msg(subjects.ARK_MEMORY, entry.seq)
            except (BusError, NatsError) as exc:
                raise UnavailableError(f"cannot delete from conversation memory: {exc}") from exc
            deleted += 1
        return deleted


PER_RECORD = 1 << 16
"""Sequence numbers one record spans: a save holds far fewer messages, and stream sequences up
to 2**37 keep every ``sequence`` a safe integer for JavaScript clients."""


def items_of(records: list[Record]) -> list[MemoryItem]:
    return [
        MemoryItem(
            timestamp=entry.message.timestamp,
            conversation_id=entry.message.conversation_id,
            query_id=entry.message.query_id,
            message=message,
            sequence=entry.seq * PER_RECORD + index,
        )
        for entry in records
        for index, message in enumerate(entry.message.messages[:PER_RECORD])
    ]


def conversation_ids(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(entry.message.conversation_id for entry in records))


def page(records: list[Record], *, limit: int, cursor: int | None) -> MessagesPage:
    """The messages after ``cursor`` (exclusive), at most ``limit`` of them."""
    items = items_of(records)
    after = [item for item in items if cursor is None or item.sequence > cursor]
    taken = after[:limit]
    more = len(taken) < len(after)
    return MessagesPage(
        items=taken,
        total=len(items),
        has_more=more,
        next_cursor=taken[-1].sequence if more and taken else None,
    )


# --------------------------------------------------------------------------- HTTP

MEMORY: web.AppKey[ConversationMemory] = web.AppKey("memory", ConversationMemory)
TenantOf = Callable[[web.Request], str]


def int_param(request: web.Request, name: str, low: int, high: int) -> int | None:
    """An integer query parameter within ``[low, high]`` (``None`` when absent); anything else
    is a 400 naming it."""
    values = request.query.getall(name, [])
    if not values:
        return None
    value = values[0]
    if (
        len(values) > 1
        or not (value.isascii() and value.isdigit())
        or not low <= int(value) <= high
    ):
        raise BadRequestError(
            f"{name} must be an integer from {low} to {high}, got {value!r}",
            field=name,
            status=400,
        )
    return int(value)


def _json(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def _memory(request: web.Request) -> ConversationMemory:
    memory = request.app.get(MEMORY)
    if memory is None:
        raise UnavailableError("conversation memory is not configured in this broker")
    return memory


def refuse_watch(request: web.Request) -> None:
    """``watch=true`` asks for an SSE stream these routes do not serve: refused by name."""
    if request.query.get("watch") == "true":
        raise BadRequestError(
            "watch=true (an SSE stream) is not served here; page with limit and cursor instead",
            field="watch",
            status=400,
        )


def memory_operations(tenant_of: TenantOf) -> tuple[Operation, ...]:
    """The Memory API's routes (ark-broker's and ark-api's), for ``api.OPERATIONS``."""

    async def create_conversation(request: web.Request) -> web.Response:
        tenant_of(request)
        return _json(ConversationCreated(conversation_id=str(uuid.uuid4())), 201)

    async def list_conversations(request: web.Request) -> web.Response:
        records = await _memory(request).records(tenant_of(request))
        return _json(ConversationIds(conversations=conversation_ids(records)))

    async def get_conversation(request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        records = await _memory(request).records(tenant_of(request), conversation_id)
        items = items_of(records)
        if not items:
            raise NotFoundError("Conversation not found", field="conversation_id")
        return _json(ConversationDetail(conversation_id=conversation_id, messages=items))

    async def delete_conversation(request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        await _memory(request).purge(tenant_of(request), conversation_id)
        if request.path.startswith("/v1/"):
            return _json(ApiMessage(message=f"Conversation {conversation_id} deleted successfully"))
        return _json(
            StatusMessage(status="success", message=f"Conversation {conversation_id} deleted")
        )

    async def delete_conversations(request: web.Request) -> web.Response:
        await _memory(request).purge(tenant_of(request))
        if request.path.startswith("/v1/conversations"):
            return _json(ApiMessage(message="All conversations deleted successfully"))
        if request.path.endswith("/messages"):
            return _json(StatusMessage(status="success", message="Memory purged"))
        return _json(StatusMessage(status="success", message="All conversations deleted"))

    async def delete_conversation_query(request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        query_id = request.match_info["query_id"]
        await _memory(request).delete_query(tenant_of(request), query_id, conversation_id)
        if request.path.startswith("/v1/"):
            return _json(ApiMessage(message=f"Query {query_id} messages deleted successfully"))
        return _json(
            StatusMessage(
                status="success",
                message=f"Query {query_id} messages deleted from conversation {conversation_id}",
            )
        )

    async def delete_query_messages(request: web.Request) -> web.Response:
        query_id = request.match_info["query_id"]
        deleted = await _memory(request).delete_query(tenant_of(request), query_id)
        return _json(
            StatusMessage(
                status="success",
                message=f"Deleted {deleted} message record(s) of query {query_id}",
            )
        )

    async def post_messages(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        body = decode_body(await request.read(), PostMessagesRequest)
        await _memory(request).append(tenant, body)
        return web.Response(status=200)

    async def list_messages(request: web.Request) -> web.Response:
        refuse_watch(request)
        tenant = tenant_of(request)
        limit = int_param(request, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
        cursor = int_param(request, "cursor", 0, 2**63 - 1)
        conversation_id = request.query.get("conversation_id") or None
        query_id = request.query.get("query_id") or None
        records = await _memory(request).records(tenant, conversation_id)
        if query_id is not None:
            records = [entry for entry in records if entry.message.query_id == query_id]
        return _json(page(records, limit=limit, cursor=cursor))

    async def memory_status(request: web.Request) -> web.Response:
        records = await _memory(request).records(tenant_of(request))
        stats: dict[str, ConversationStats] = {}
        queries: dict[str, set[str]] = {}
        for entry in records:
            cid = entry.message.conversation_id
            current = stats.setdefault(cid, ConversationStats(message_count=0, query_count=0))
            current.message_count += len(entry.message.messages)
            queries.setdefault(cid, set()).add(entry.message.query_id)
            current.query_count = len(queries[cid])
        return _json(
            MemoryStatus(
                total_conversations=len(stats),
                total_messages=sum(s.message_count for s in stats.values()),
                conversations=stats,
            )
        )

    async def api_list_conversations(request: web.Request) -> web.Response:
        records = await _memory(request).records(tenant_of(request))
        items = [
            ApiConversation(conversation_id=cid, memory_name=DEFAULT_MEMORY_NAME)
            for cid in conversation_ids(records)
        ]
        return _json(ApiConversationList(items=items, total=len(items)))

    async def api_memory_messages(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        memory_name = request.query.get("memory")
        conversation_id = request.query.get("conversation") or None
        query_id = request.query.get("query") or None
        records = (
            []
            if memory_name not in (None, "", DEFAULT_MEMORY_NAME)
            else await _memory(request).records(tenant, conversation_id)
        )
        items = [
            ApiMemoryMessage(
                timestamp=item.timestamp,
                memory_name=DEFAULT_MEMORY_NAME,
                conversation_id=item.conversation_id,
                query_id=item.query_id,
                message=item.message,
                sequence=item.sequence,
            )
            for item in items_of(records)
            if query_id is None or item.query_id == query_id
        ]
        items.reverse()  # newest first, as ark-api sorts them
        return _json(ApiMemoryMessageList(items=items, total=len(items)))

    async def api_memory_conversation(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        conversation_id = request.match_info["conversation_id"]
        records = await _memory(request).records(tenant, conversation_id)
        items = items_of(records)
        return _json(
            MemoryConversationMessages(
                items=items, total=len(items), messages=[item.message for item in items]
            )
        )

    cid = Param("conversation_id", "path", "The conversation's id.")
    qid = Param("query_id", "path", "The query's name (Ark's memory key for a query).")
    status = Reply(200, "Done", StatusMessage)
    api_done = Reply(200, "Done", ApiMessage)
    tag, api_tag = "memory", "memory (ark-api)"
    memory_param = Param(
        "memory", "query", "The Memory whose broker to ask (broker mode: ignored)."
    )
    messages_params = (
        Param("conversation_id", "query", "Only this conversation's messages."),
        Param("query_id", "query", "Only this query's messages."),
        Param(
            "limit",
            "query",
            f"Messages per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        ),
        Param(
            "cursor",
            "query",
            "Messages after this sequence (the previous page's `nextCursor`).",
            {"type": "integer", "minimum": 0},
        ),
        Param("watch", "query", "`true` is refused: watching is not served."),
    )
    return (
        Operation(
            "POST",
            "/conversations",
            create_conversation,
            "createConversation",
            "A new conversation id (a UUID; the conversation exists once messages are added)",
            tag,
            replies=(Reply(201, "The id", ConversationCreated),),
        ),
        Operation(
            "GET",
            "/conversations",
            list_conversations,
            "listConversations",
            "The ids of the caller's conversations",
            tag,
            replies=(Reply(200, "The ids, oldest first", ConversationIds),),
        ),
        Operation(
            "DELETE",
            "/conversations",
            delete_conversations,
            "deleteConversations",
            "Delete all of the caller's conversations (sessions stay)",
            tag,
            replies=(status,),
        ),
        Operation(
            "GET",
            "/conversations/{conversation_id}",
            get_conversation,
            "getConversation",
            "The messages of one conversation",
            tag,
            params=(cid,),
            replies=(Reply(200, "The messages, oldest first", ConversationDetail),),
        ),
        Operation(
            "DELETE",
            "/conversations/{conversation_id}",
            delete_conversation,
            "deleteConversation",
            "Delete one conversation",
            tag,
            params=(cid,),
            replies=(status,),
        ),
        Operation(
            "DELETE",
            "/conversations/{conversation_id}/queries/{query_id}/messages",
            delete_conversation_query,
            "deleteConversationQueryMessages",
            "Delete one query's messages in a conversation",
            tag,
            params=(cid, qid),
            replies=(status,),
        ),
        Operation(
            "DELETE",
            "/queries/{query_id}/messages",
            delete_query_messages,
            "deleteQueryMessages",
            "Delete one query's messages in all of the caller's conversations",
            tag,
            params=(qid,),
            replies=(status,),
        ),
        Operation(
            "POST",
            "/messages",
            post_messages,
            "addMessages",
            "Append messages to a conversation (history for its next query)",
            tag,
            body=PostMessagesRequest,
            replies=(Reply(200, "Appended (empty body)"),),
        ),
        Operation(
            "GET",
            "/messages",
            list_messages,
            "listMessages",
            "A page of the caller's messages, oldest first",
            tag,
            params=messages_params,
            replies=(Reply(200, "One page", MessagesPage),),
        ),
        Operation(
            "DELETE",
            "/messages",
            delete_conversations,
            "purgeMessages",
            "Delete all of the caller's messages (Ark's older route)",
            tag,
            replies=(status,),
        ),
        Operation(
            "GET",
            "/v1/broker/messages",
            list_messages,
            "brokerListMessages",
            "ark-api's proxy of `GET /messages` (the dashboard's memory view)",
            api_tag,
            params=(memory_param, *messages_params),
            replies=(Reply(200, "One page", MessagesPage),),
        ),
        Operation(
            "DELETE",
            "/v1/broker/messages",
            delete_conversations,
            "brokerPurgeMessages",
            "ark-api's proxy of `DELETE /messages`: the caller's messages",
            api_tag,
            params=(memory_param,),
            replies=(status,),
        ),
        Operation(
            "GET",
            "/memory-status",
            memory_status,
            "getMemoryStatus",
            "Counts of the caller's conversations, messages and queries",
            tag,
            replies=(Reply(200, "The counts", MemoryStatus),),
        ),
        Operation(
            "GET",
            "/v1/conversations",
            api_list_conversations,
            "apiListConversations",
            "ark-api: the caller's conversations",
            api_tag,
            params=(Param("memory", "query", "Only this Memory's (broker mode: `default`)."),),
            replies=(Reply(200, "The conversations", ApiConversationList),),
        ),
        Operation(
            "DELETE",
            "/v1/conversations",
            delete_conversations,
            "apiDeleteConversations",
            "ark-api: delete all of the caller's conversations",
            api_tag,
            replies=(api_done,),
        ),
        Operation(
            "DELETE",
            "/v1/conversations/{conversation_id}",
            delete_conversation,
            "apiDeleteConversation",
            "ark-api: delete one conversation",
            api_tag,
            params=(cid,),
            replies=(api_done,),
        ),
        Operation(
            "DELETE",
            "/v1/conversations/{conversation_id}/queries/{query_id}/messages",
            delete_conversation_query,
            "apiDeleteConversationQueryMessages",
            "ark-api: delete one query's messages in a conversation",
            api_tag,
            params=(cid, qid),
            replies=(api_done,),
        ),
        Operation(
            "GET",
            "/v1/memory-messages",
            api_memory_messages,
            "apiListMemoryMessages",
            "ark-api: the caller's messages, newest first",
            api_tag,
            params=(
                Param("memory", "query", "Only this Memory's (broker mode: `default`)."),
                Param("conversation", "query", "Only this conversation's messages."),
                Param("query", "query", "Only this query's messages."),
            ),
            replies=(Reply(200, "The messages", ApiMemoryMessageList),),
        ),
        Operation(
            "GET",
            "/v1/memories/{name}/conversations/{conversation_id}/messages",
            api_memory_conversation,
            "apiGetMemoryConversationMessages",
            "ark-api: one conversation's messages (the broker's `/messages` page)",
            api_tag,
            params=(Param("name", "path", "The Memory's name."), cid),
            replies=(Reply(200, "The messages", MemoryConversationMessages),),
        ),
    )
