"""The sessions routes: ark-broker's ``GET /sessions[/{id}]`` and ark-api's aliases.

``GET /sessions`` without ``limit``/``cursor`` answers the caller's whole store
``{sessions: {<id>: SessionEntry}}``; with either, a page (``cursor`` is an offset, as in Ark)
plus ``statusCounts`` of the filtered set. Filters: ``status``, ``search`` (session id, name,
a query's agent/team/tool), ``sort`` (``date``, ``name``, ``conversations``) with ``order``
(default ``desc``). ark-api proxies the same answers at ``/v1/broker/sessions``; its
``/v1/sessions`` (what Ark's CLI lists) is ``{items: [{sessionId, memoryName}], total}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec
from aiohttp import web

from ark_mesh.broker.errors import BadRequestError, NotFoundError, UnavailableError
from ark_mesh.broker.memory_api import (
    DEFAULT_MEMORY_NAME,
    MAX_LIMIT,
    MEMORY,
    ApiMessage,
    StatusMessage,
    int_param,
    refuse_watch,
)
from ark_mesh.broker.openapi import Operation, Param, Reply
from ark_mesh.broker.readmodel import parse_instant
from ark_mesh.broker.sessions import (
    SessionEntry,
    SessionIndex,
    SessionStore,
    session_key,
    status_counts,
)

__all__ = ["SESSIONS", "Sessions", "session_operations"]

_encoder = msgspec.json.Encoder()
_STATUSES = ("active", "idle", "error")
_SORTS = ("date", "name", "conversations")


@dataclass(frozen=True)
class Sessions:
    """The KV store (one session, read through) and the watched index (listings)."""

    store: SessionStore
    index: SessionIndex

    async def apply_message(
        self, tenant: str, conversation_id: str, query_name: str, at: str
    ) -> None:
        """Ark's ``applyMessage`` for messages appended through ``POST /messages``."""
        for key in self.index.holding(tenant, query_name):
            await self.store.apply_message(key, query_name, conversation_id, at)


class SessionsStore(msgspec.Struct, kw_only=True):
    sessions: dict[str, SessionEntry]


class StatusCounts(msgspec.Struct, kw_only=True):
    active: int
    idle: int
    error: int


class SessionsPage(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    items: list[SessionEntry]
    total: int
    has_more: bool
    status_counts: StatusCounts
    next_cursor: int | None = None


class SessionsListing(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """What ``GET /sessions`` may answer, for the document: ``sessions`` alone (the whole
    store), or a page (``items`` … ``statusCounts``) — :class:`SessionsStore` or
    :class:`SessionsPage`."""

    sessions: dict[str, SessionEntry] | None = None
    items: list[SessionEntry] | None = None
    total: int | None = None
    has_more: bool | None = None
    status_counts: StatusCounts | None = None
    next_cursor: int | None = None


class ApiSession(msgspec.Struct, kw_only=True, rename="camel"):
    session_id: str
    memory_name: str


class ApiSessionList(msgspec.Struct, kw_only=True):
    """ark-api's ``SessionListResponse``."""

    items: list[ApiSession]
    total: int


SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
TenantOf = Callable[[web.Request], str]


def _json(body: msgspec.Struct) -> web.Response:
    return web.Response(body=_encoder.encode(body), content_type="application/json")


def _sessions(request: web.Request) -> Sessions:
    sessions = request.app.get(SESSIONS)
    if sessions is None:
        raise UnavailableError("the sessions read model is not configured in this broker")
    return sessions


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    value = values[0]
    if len(values) > 1 or value not in allowed:
        raise BadRequestError(
            f"{name} must be one of {list(allowed)}, got {value!r}", field=name, status=400
        )
    return value


def _last_activity(entry: SessionEntry) -> datetime:
    return parse_instant(entry.last_activity) or datetime.min.replace(tzinfo=UTC)


def _conversation_count(entry: SessionEntry) -> int:
    return len({q.conversation_id for q in entry.queries.values() if q.conversation_id})


def _filtered(request: web.Request, entries: list[SessionEntry]) -> list[SessionEntry]:
    session_id = request.query.get("session_id")
    if session_id:
        entries = [entry for entry in entries if entry.session_id == session_id]
    status = _choice(request, "status", _STATUSES)
    if status is not None:
        entries = [entry for entry in entries if entry.status == status]
    search = (request.query.get("search") or "").lower()
    if search:
        entries = [
            entry
            for entry in entries
            if search in entry.session_id.lower()
            or search in entry.name.lower()
            or any(
                search in (value or "").lower()
                for query in entry.queries.values()
                for value in (query.agent, query.team, query.tool)
            )
        ]
    for name, after in (("dateFrom", True), ("dateTo", False)):
        text = request.query.get(name)
        if text is None:
            continue
        bound = parse_instant(text)
        if bound is None:
            raise BadRequestError(
                f"{name} must be an RFC 3339 date or instant, got {text!r}", field=name, status=400
            )
        entries = [
            entry
            for entry in entries
            if (_last_activity(entry) >= bound if after else _last_activity(entry) <= bound)
        ]
    sort = _choice(request, "sort", _SORTS)
    order: Literal["asc", "desc"] = (
        "asc" if _choice(request, "order", ("asc", "desc")) == "asc" else "desc"
    )
    if sort == "date":
        entries.sort(key=_last_activity, reverse=order == "desc")
    elif sort == "name":
        entries.sort(key=lambda e: e.name, reverse=order == "desc")
    elif sort == "conversations":
        entries.sort(key=_conversation_count, reverse=order == "desc")
    return entries


def session_operations(tenant_of: TenantOf) -> tuple[Operation, ...]:
    """The sessions routes, for ``api.OPERATIONS``."""

    async def list_sessions(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        refuse_watch(request)
        entries = _sessions(request).index.sessions(tenant)
        limit = int_param(request, "limit", 1, MAX_LIMIT)
        cursor = int_param(request, "cursor", 0, 2**31 - 1)
        entries = _filtered(request, entries)
        if limit is None and cursor is None:
            return _json(SessionsStore(sessions={e.session_id: e for e in entries}))
        start, size = cursor or 0, limit or 100
        end = start + size
        counts = status_counts(entries)
        return _json(
            SessionsPage(
                items=entries[start:end],
                total=len(entries),
                has_more=end < len(entries),
                next_cursor=end if end < len(entries) else None,
                status_counts=StatusCounts(**counts),
            )
        )

    async def get_session(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        session_id = request.match_info["session_id"]
        entry = await _sessions(request).store.get(tenant, session_id)
        if entry is None:
            raise NotFoundError("Session not found", field="session_id")
        return _json(entry)

    async def purge_sessions(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        sessions = _sessions(request)
        await sessions.store.purge(sessions.index.keys(tenant))
        return _json(StatusMessage(status="success", message="Sessions purged"))

    async def delete_session_query(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        query_name = request.match_info["query_id"]
        sessions = _sessions(request)
        removed = 0
        for key in sessions.index.keys(tenant):
            removed += await sessions.store.remove_query(key, query_name)
        return _json(
            StatusMessage(
                status="success",
                message=f"Query {query_name} removed from {removed} session(s)",
            )
        )

    # ark-api's deletes (what `ark sessions delete` calls): ark-api forwards them to every
    # Memory's service, where a session's messages are the messages of its queries. Here the
    # session's queries are known from the read model, so their messages are deleted from the
    # conversation memory and the session is forgotten.
    async def api_delete_session(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        session_id = request.match_info["session_id"]
        sessions = _sessions(request)
        entry = await sessions.store.get(tenant, session_id)
        if entry is None:
            raise NotFoundError(f"Session {session_id} not found", field="session_id")
        memory = request.app[MEMORY]
        for name, query in entry.queries.items():
            await memory.delete_query(tenant, name, query.conversation_id)
        await sessions.store.purge([session_key(tenant, session_id)])
        return _json(ApiMessage(message=f"Session {session_id} deleted from 1 memory service(s)"))

    async def api_delete_sessions(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        sessions = _sessions(request)
        await request.app[MEMORY].purge(tenant)
        await sessions.store.purge(sessions.index.keys(tenant))
        return _json(ApiMessage(message="All sessions deleted successfully from 1 memory services"))

    async def api_delete_session_query(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        session_id = request.match_info["session_id"]
        query_id = request.match_info["query_id"]
        entry = await _sessions(request).store.get(tenant, session_id)
        query = entry.queries.get(query_id) if entry is not None else None
        conversation = query.conversation_id if query is not None else None
        await request.app[MEMORY].delete_query(tenant, query_id, conversation)
        return _json(
            ApiMessage(
                message=f"Query {query_id} messages deleted successfully from session {session_id}"
            )
        )

    async def api_list_sessions(request: web.Request) -> web.Response:
        tenant = tenant_of(request)
        entries = _sessions(request).index.sessions(tenant)
        memory = request.query.get("memory")
        if memory not in (None, "", DEFAULT_MEMORY_NAME):
            entries = []
        items = [
            ApiSession(session_id=entry.session_id, memory_name=DEFAULT_MEMORY_NAME)
            for entry in entries
        ]
        return _json(ApiSessionList(items=items, total=len(items)))

    sid = Param("session_id", "path", "The session's id (`spec.sessionId`, else the query uid).")
    page_params = (
        Param(
            "limit",
            "query",
            f"Page size (at most {MAX_LIMIT}); with `limit` or `cursor` the answer is a page.",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        ),
        Param("cursor", "query", "Offset of the page.", {"type": "integer", "minimum": 0}),
        Param("session_id", "query", "Only this session."),
        Param("status", "query", "Only sessions in this status.", {"enum": list(_STATUSES)}),
        Param("search", "query", "Substring of the id, name, or a query's agent/team/tool."),
        Param("dateFrom", "query", "Only sessions active at or after this instant."),
        Param("dateTo", "query", "Only sessions active at or before this instant."),
        Param("sort", "query", "Sort key.", {"enum": list(_SORTS)}),
        Param("order", "query", "Sort order (default `desc`).", {"enum": ["asc", "desc"]}),
        Param("watch", "query", "`true` is refused: watching is not served."),
    )
    listing = (
        Reply(
            200,
            "The whole store `{sessions}`; with `limit`/`cursor` a page with `statusCounts`",
            SessionsListing,
        ),
    )
    one = (Reply(200, "The session", SessionEntry),)
    memory = Param("memory", "query", "The Memory whose broker to ask (broker mode: ignored).")
    operations: list[Operation] = []
    for prefix, suffix in (("", ""), ("/v1/broker", "Broker")):
        extra = (memory,) if prefix else ()
        operations += [
            Operation(
                "GET",
                f"{prefix}/sessions",
                list_sessions,
                f"listSessions{suffix}",
                "The caller's sessions (folded from the operation events)"
                + (" — ark-api's proxy of the broker's route" if prefix else ""),
                "sessions",
                params=(*page_params, *extra),
                replies=listing,
            ),
            Operation(
                "DELETE",
                f"{prefix}/sessions",
                purge_sessions,
                f"purgeSessions{suffix}",
                "Forget the caller's sessions (events still to come start new ones)",
                "sessions",
                params=extra,
                replies=(Reply(200, "Purged", StatusMessage),),
            ),
            Operation(
                "GET",
                f"{prefix}/sessions/{{session_id}}",
                get_session,
                f"getSession{suffix}",
                "One session: its queries, status, participants and conversations",
                "sessions",
                params=(sid, *extra),
                replies=one,
            ),
        ]
    operations.append(
        Operation(
            "DELETE",
            "/sessions/queries/{query_id}",
            delete_session_query,
            "deleteSessionQuery",
            "Remove a query (by name) from the caller's sessions; a session left empty goes",
            "sessions",
            params=(Param("query_id", "path", "The query's name."),),
            replies=(Reply(200, "Removed", StatusMessage),),
        )
    )
    operations.append(
        Operation(
            "GET",
            "/v1/sessions",
            api_list_sessions,
            "apiListSessions",
            "ark-api: the caller's session ids (what Ark's CLI lists)",
            "sessions",
            params=(Param("memory", "query", "Only this Memory's (broker mode: `default`)."),),
            replies=(Reply(200, "The sessions", ApiSessionList),),
        )
    )
    operations += [
        Operation(
            "DELETE",
            "/v1/sessions",
            api_delete_sessions,
            "apiDeleteSessions",
            "ark-api: forget the caller's sessions and delete their conversation memory",
            "sessions",
            replies=(Reply(200, "Deleted", ApiMessage),),
        ),
        Operation(
            "DELETE",
            "/v1/sessions/{session_id}",
            api_delete_session,
            "apiDeleteSession",
            "ark-api: forget one session and delete its queries' messages",
            "sessions",
            params=(sid,),
            replies=(Reply(200, "Deleted", ApiMessage),),
        ),
        Operation(
            "DELETE",
            "/v1/sessions/{session_id}/queries/{query_id}/messages",
            api_delete_session_query,
            "apiDeleteSessionQueryMessages",
            "ark-api: delete one query's messages (the query stays in the session)",
            "sessions",
            params=(sid, Param("query_id", "path", "The query's name.")),
            replies=(Reply(200, "Deleted", ApiMessage),),
        ),
    ]
    return tuple(operations)
