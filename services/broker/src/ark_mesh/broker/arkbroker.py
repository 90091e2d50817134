"""Ark broker's read routes, served from JetStream: a query's chunks by name, operation events.

The routes Ark's dashboard, ark-api and CLI read from ``ark-broker`` (and ark-api's
``/v1/broker/…`` proxies of them), over the streams the mesh already writes:

===========================  ==========================================  ========================
``GET /stream/{queryName}``  ARK_CHUNKS ``ark.<tenant>.query.<id>.chunk``  SSE to ``[DONE]``
``GET /stream``              ARK_CHUNKS ``ark.<tenant>.query.*.chunk``     page, or SSE (``watch``)
``GET /events``              ARK_EVENTS ``ark.<tenant>.query.*.event``     page, or SSE (``watch``)
``GET /events/{queryId}``    ARK_EVENTS ``ark.<tenant>.query.<id>.event``  page, or SSE (``watch``)
===========================  ==========================================  ========================

Every subject read carries the caller's tenant, so another tenant's chunks and events cannot
be reached whatever name or id is sent.

**Sequence numbers** (``cursor``, ``nextCursor``) are JetStream stream sequences: monotonic
within the stream as Ark's are within its store, though not consecutive for one tenant or
query (other subjects share the stream). ``cursor`` is exclusive, as in Ark.

**Shapes** are Ark's: a page is ``{items, total, hasMore, nextCursor?}`` whose items are the
events themselves (Ark's broker lists each stored item's ``data``), or for chunks broker items
``{sequenceNumber, timestamp, data: {queryId, chunk}}``; a watch sends each as ``data:``; chunks are sent exactly as ``/v1/queries/{id}/stream`` sends them
(:func:`~ark_mesh.broker.openai_compat.openai_chunk`), without ``id:`` lines, as Ark's broker.

**Parameters** are checked as Ark's broker checks them: ``limit`` 1 to 1000 (default 100) and
``cursor`` a sequence, else 400 ``PAGINATION_ERROR``; ``watch``/``from-beginning`` are
``true``/``false`` and ``wait-for-query``/``max-chunk-size`` integers, else 400
``VALIDATION_ERROR``; ``field`` names the parameter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from aiohttp import web

from ark_mesh.broker.errors import BadRequestError, NotFoundError, UnavailableError
from ark_mesh.broker.openai_compat import openai_chunk
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import QueryRecord
from ark_mesh.broker.responses import (
    ChunkItem,
    ChunkPage,
    ChunkRecord,
    EventData,
    EventItem,
    EventPage,
    StreamError,
    StreamErrorEvent,
)
from ark_mesh.broker.sse import DONE, MAX_SEQUENCE, comment, event
from ark_mesh.broker.streaming import Ending, close_entries, open_sse, passed, pump
from ark_mesh.bus import BusError, NatsError, StreamEntry, StreamReader
from ark_mesh.contracts import Chunk, ChunkHead, QueryEvent, decoder_for, subjects
from ark_mesh.telemetry import bound_context

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_NUMBER",
    "STREAM_FAILURES",
    "PaginationError",
    "ValidationError",
    "broker_chunks",
    "cannot_continue",
    "chunk_item",
    "chunks",
    "event_data",
    "event_item",
    "events",
    "query_events",
    "stream",
    "stream_by_name",
    "watch_query_events",
    "watching",
]

_chunk = decoder_for(Chunk).decode
_chunk_head = decoder_for(ChunkHead).decode
_event = decoder_for(QueryEvent).decode
_encoder = msgspec.json.Encoder()

M = TypeVar("M")
STREAM_FAILURES: tuple[type[BaseException], ...] = (
    BusError,
    NatsError,
    TimeoutError,
    UnavailableError,
)
"""What ends a stream that was already answered with an error event and ``[DONE]`` (NATS
trouble while following; the client may resume)."""

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_NUMBER = MAX_SEQUENCE
"""The largest ``cursor``, ``wait-for-query`` or ``max-chunk-size`` taken (a stream sequence)."""
WAIT_MIN_SECONDS = 1
WAIT_MAX_SECONDS = 300
_LOOKUP_BACKOFF = (0.1, 1.0)
"""While ``wait-for-query`` waits for a query to exist: first and longest pause between lookups."""

TIMEOUT_EVENT = StreamErrorEvent(
    error=StreamError(
        message="Request timeout waiting for streaming query response",
        type="timeout_error",
        code="timeout",
    )
)


class PaginationError(BadRequestError):
    """Ark's broker answer to a bad ``limit`` or ``cursor``."""

    status = 400
    code = "PAGINATION_ERROR"


class ValidationError(BadRequestError):
    """Ark's broker answer to any other malformed query parameter."""

    status = 400
    code = "VALIDATION_ERROR"


# --------------------------------------------------------------------------- parameters


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise ValidationError(f"{name} must be 'true' or 'false', got {value!r}", field=name)
    return value == "true"


def _integer(query: Mapping[str, str], name: str, error: type[BadRequestError]) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise error(f"{name} must be a non-negative integer, got {value!r}", field=name)
    if int(value) > MAX_SEQUENCE:
        raise error(f"{name} cannot exceed {MAX_SEQUENCE}", field=name)
    return int(value)


def _page_params(query: Mapping[str, str]) -> tuple[int, int | None]:
    """``limit`` (1 to 1000, default 100) and the exclusive ``cursor``, as Ark's broker parses them."""
    limit = _integer(query, "limit", PaginationError)
    if limit is not None and limit < 1:
        raise PaginationError("limit must be a positive integer", field="limit")
    if limit is not None and limit > MAX_LIMIT:
        raise PaginationError(f"limit cannot exceed {MAX_LIMIT}", field="limit")
    return limit or DEFAULT_LIMIT, _integer(query, "cursor", PaginationError)


def _wait_seconds(query: Mapping[str, str]) -> int | None:
    """``wait-for-query``, clamped to 1 to 300 s as Ark's broker clamps it."""
    wait = _integer(query, "wait-for-query", ValidationError)
    return None if wait is None else max(WAIT_MIN_SECONDS, min(wait, WAIT_MAX_SECONDS))


def _check_chunk_size(query: Mapping[str, str]) -> None:
    """``max-chunk-size`` is a testing aid Ark's broker validates and then does not use."""
    size = _integer(query, "max-chunk-size", ValidationError)
    if size is not None and size < 1:
        raise ValidationError("max-chunk-size must be a positive integer", field="max-chunk-size")


def watching(query: Mapping[str, str]) -> bool:
    """``watch=true``: answer with SSE instead of a page (``false`` or absent: a page)."""
    return _flag(query, "watch")


# --------------------------------------------------------------------------- SSE plumbing


def cannot_continue(error: BaseException) -> bytes:
    """The error line (Ark's error chunk shape, as the timeout event) ending a stream whose
    read failed after its answer started; ``[DONE]`` follows. A client resumes with
    ``Last-Event-ID`` where the stream sends ``id:``, else reconnects."""
    return event(
        _encoder.encode(
            StreamErrorEvent(
                error=StreamError(
                    message=f"the stream cannot continue (resume it): {error}",
                    type="server_error",
                    code="unavailable",
                )
            )
        )
    )


def _end_by(broker: QueryBroker) -> float | None:
    limit = broker.config.streaming.watch_max_seconds
    return None if limit is None else asyncio.get_running_loop().time() + limit


# --------------------------------------------------------------------------- GET /stream/{name}


async def resolve(broker: QueryBroker, tenant: str, ref: str) -> str | None:
    """The id of the tenant's query ``ref`` (a broker-mode query by name or id, a Query
    resource by name: its uid), or ``None``."""
    try:
        query = await broker.get_any(tenant, ref)
    except NotFoundError:
        return None
    if isinstance(query, QueryRecord):
        return query.id
    uid = (query.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


async def _appearing(
    broker: QueryBroker,
    response: web.StreamResponse,
    tenant: str,
    name: str,
    deadline: float,
    heartbeat: float,
) -> str | None:
    """Look the query up again until it exists or ``deadline`` (loop time) passes, with a
    heartbeat comment at least every ``heartbeat`` seconds. A query's name appears in the
    read model (or the API server) once, so a few lookups with backoff are all it takes."""
    loop = asyncio.get_running_loop()
    pause, longest = _LOOKUP_BACKOFF
    beat = loop.time() + heartbeat
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(pause, remaining, max(beat - loop.time(), 0.0)))
        if loop.time() >= beat:
            await response.write(comment("heartbeat"))
            beat = loop.time() + heartbeat
        found = await resolve(broker, tenant, name)
        if found is not None:
            return found
        pause = min(pause * 2, longest)
    return None


async def _through_error(
    entries: AsyncIterator[StreamEntry[ChunkHead]],
) -> AsyncIterator[StreamEntry[ChunkHead]]:
    """The chunks up to the final one (the read ends there) or the first error chunk: Ark's
    broker forwards an error and ends the stream."""
    try:
        async for entry in entries:
            yield entry
            if entry.message.is_error:
                return
    finally:
        await close_entries(entries)


async def stream(request: web.Request, broker: QueryBroker, tenant: str) -> web.StreamResponse:
    """Ark's ``GET /stream/{queryName}`` (see :func:`stream_by_name`)."""
    from_beginning = _flag(request.query, "from-beginning")
    return await stream_by_name(
        request, broker, tenant, request.match_info["queryName"], from_beginning=from_beginning
    )


async def stream_by_name(
    request: web.Request, broker: QueryBroker, tenant: str, name: str, *, from_beginning: bool
) -> web.StreamResponse:
    """The query's chunks as SSE, then ``[DONE]``, as Ark's ``GET /stream/{queryName}``.

    ``from-beginning`` replays the stored chunks first; otherwise only chunks stored from
    now on are sent, and a query whose stream had already ended gets ``[DONE]`` at once
    (Ark's broker would wait for ever). ``wait-for-query`` (1 to 300 s) bounds the wait for the
    query to exist and send its first chunk: past it, Ark's timeout error event and
    ``[DONE]``. Without it, a name that is not the tenant's query is a 404."""
    wait = _wait_seconds(request.query)
    _check_chunk_size(request.query)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait if wait is not None else None
    end_by = _end_by(broker)
    query_id = await resolve(broker, tenant, name)
    if query_id is None and deadline is None:
        raise NotFoundError(f"query {name!r} not found", field="queryName")
    response = await open_sse(request)
    try:
        await _follow_by_name(
            response, broker, tenant, name, query_id, from_beginning, deadline, end_by
        )
    except STREAM_FAILURES as exc:
        await _fail(response, exc)
    return response


async def _follow_by_name(
    response: web.StreamResponse,
    broker: QueryBroker,
    tenant: str,
    name: str,
    query_id: str | None,
    from_beginning: bool,
    deadline: float | None,
    end_by: float | None,
) -> None:
    """The part of :func:`stream_by_name` after the answer started."""
    loop = asyncio.get_running_loop()
    heartbeat = broker.config.streaming.heartbeat_seconds
    if query_id is None:
        assert deadline is not None
        until = deadline if end_by is None else min(deadline, end_by)
        query_id = await _appearing(broker, response, tenant, name, until, heartbeat)
        if query_id is None:
            await _finish(response, passed(loop.time(), deadline, end_by) or "timeout")
            return
    with bound_context(tenant=tenant, query_id=query_id):
        after, live_from = 0, None
        if not from_beginning:
            last = await broker.reader.last(
                subjects.query_chunk(tenant, query_id), decoder=_chunk_head
            )
            if last is not None and (last.message.is_final or last.message.is_error):
                await _finish(response, "end")
                return
            if last is not None:
                after, live_from = last.message.seq, last.seq + 1
        ending = await pump(
            response,
            _through_error(broker.chunk_heads(tenant, query_id, after=after, live_from=live_from)),
            lambda entry: event(openai_chunk(entry.data)),
            heartbeat,
            first_by=deadline,
            end_by=end_by,
        )
        await _finish(response, ending)


async def _fail(response: web.StreamResponse, error: BaseException) -> None:
    """End a started stream whose read failed: the error line, ``[DONE]``."""
    await response.write(cannot_continue(error))
    await response.write(DONE)
    await response.write_eof()


async def _finish(response: web.StreamResponse, ending: Ending) -> None:
    """``[DONE]`` after the end, Ark's timeout event and ``[DONE]`` after a timeout; a cut
    (``watch_max_seconds``) just ends the response, as a proxy would."""
    if ending == "timeout":
        await response.write(event(_encoder.encode(TIMEOUT_EVENT)))
    if ending != "cut":
        await response.write(DONE)
    await response.write_eof()


# --------------------------------------------------------------------------- events


def event_data(message: QueryEvent) -> EventData:
    """An event as Ark's broker stores and serves it (``POST /events`` body)."""
    return EventData(
        timestamp=message.timestamp,
        event_type=message.event_type,
        reason=message.reason,
        message=message.message,
        data=dict(message.data),
    )


def event_item(entry: StreamEntry[QueryEvent]) -> EventItem:
    """An event in Ark's broker item envelope: its stream sequence, time and data."""
    return EventItem(
        sequence_number=entry.seq,
        timestamp=entry.message.timestamp,
        data=event_data(entry.message),
    )


def _tenant_events(tenant: str) -> str:
    """Every event subject of the tenant (ARK_EVENTS holds ``ark.*.query.*.event``)."""
    return f"{subjects.ROOT}.{subjects.validate_token(tenant, 'tenant')}.query.*.event"


def _query_events(tenant: str, query_id: str) -> str:
    try:
        return subjects.query_event(tenant, query_id)
    except ValueError:
        raise NotFoundError(f"query {query_id!r} not found", field="queryId") from None


def _session_filter(session_id: str | None) -> Callable[[QueryEvent], bool] | None:
    if session_id is None:
        return None
    return lambda message: message.data.get("sessionId") == session_id


async def _page(
    reader: StreamReader,
    subject: str,
    decoder: Callable[[bytes], M],
    *,
    limit: int,
    cursor: int | None,
    keep: Callable[[M], bool] | None = None,
) -> tuple[list[StreamEntry[M]], int, bool]:
    """One page of the entries on ``subject`` after ``cursor``: the entries, how many match
    in all (whatever the cursor), whether more follow.

    Unfiltered, it reads at most ``limit`` entries from the cursor on and counts the subject
    on the server (more follow: entries were still pending after the last one read). With
    ``keep`` (``session_id``: a field inside the event, not in its subject) every entry of
    the subject is read and filtered, as Ark's broker filters its store."""
    start = cursor + 1 if cursor is not None else None
    if keep is None:
        total = await reader.count(subject)
        entries = [
            entry
            async for entry in reader.read(
                subject, decoder=decoder, start_seq=start, caught_up=True, limit=limit
            )
        ]
        return entries, total, len(entries) == limit and entries[-1].pending > 0
    matching = [
        entry
        async for entry in reader.read(subject, decoder=decoder, caught_up=True)
        if keep(entry.message)
    ]
    after = [entry for entry in matching if cursor is None or entry.seq > cursor]
    return after[:limit], len(matching), len(after) > limit


async def page(
    reader: StreamReader,
    subject: str,
    *,
    limit: int,
    cursor: int | None,
    keep: Callable[[QueryEvent], bool] | None = None,
) -> EventPage:
    """One page of Ark's ``GET /events``: the events themselves, ``nextCursor`` while
    ``hasMore``."""
    entries, total, has_more = await _page(
        reader, subject, _event, limit=limit, cursor=cursor, keep=keep
    )
    return EventPage(
        items=[event_data(entry.message) for entry in entries],
        total=total,
        has_more=has_more,
        next_cursor=entries[-1].seq if has_more else None,
    )


async def watch(
    request: web.Request,
    broker: QueryBroker,
    subject: str,
    decoder: Callable[[bytes], M],
    *,
    start: int | None,
    render: Callable[[StreamEntry[M]], bytes | None],
) -> web.StreamResponse:
    """SSE of the entries on ``subject``: from stream sequence ``start`` (``None``: only
    entries stored from now on, i.e. after the ``: connected`` comment), live, until the
    client leaves (or ``watch_max_seconds``)."""
    if start is None:
        start = await broker.reader.last_sequence(subject) + 1
    entries = broker.fanout.follow(subject, decoder=decoder, start_seq=start)
    response = await open_sse(request)
    try:
        await pump(
            response,
            entries,
            render,
            broker.config.streaming.heartbeat_seconds,
            end_by=_end_by(broker),
        )
    except STREAM_FAILURES as exc:
        await _fail(response, exc)
        return response
    await response.write_eof()
    return response


def _render_event(
    keep: Callable[[QueryEvent], bool] | None,
) -> Callable[[StreamEntry[QueryEvent]], bytes | None]:
    def render(entry: StreamEntry[QueryEvent]) -> bytes | None:
        if keep is not None and not keep(entry.message):
            return None
        return event(_encoder.encode(event_data(entry.message)))

    return render


def _watch_start(query: Mapping[str, str], cursor: int | None) -> tuple[bool, int | None]:
    """Whether to watch, and where a watch starts: the first event (``from-beginning``),
    after ``cursor``, or ``None`` (new events only), as Ark's broker replays. Both flags are
    checked whatever the answer, so a malformed one is never ignored."""
    watch, from_beginning = _flag(query, "watch"), _flag(query, "from-beginning")
    if from_beginning:
        return watch, 1
    return watch, cursor + 1 if cursor is not None else None


async def events(request: web.Request, broker: QueryBroker, tenant: str) -> web.StreamResponse:
    """Ark's ``GET /events``: the tenant's events, one page, or SSE with ``watch=true``
    (``session_id`` filters both)."""
    query = request.query
    limit, cursor = _page_params(query)
    keep = _session_filter(query.get("session_id"))
    subject = _tenant_events(tenant)
    watching_, start = _watch_start(query, cursor)
    if watching_:
        return await watch(
            request, broker, subject, _event, start=start, render=_render_event(keep)
        )
    with bound_context(tenant=tenant):
        body = await page(broker.reader, subject, limit=limit, cursor=cursor, keep=keep)
    return web.Response(body=_encoder.encode(body), content_type="application/json")


async def query_events(
    request: web.Request, broker: QueryBroker, tenant: str, ref: str
) -> web.StreamResponse:
    """Ark's ``GET /events/{queryId}``: one query's events (by its id, which Ark's events
    carry as ``queryId``; a name of the tenant's query is taken too), a page or SSE.

    An id with no events is an empty page, as in Ark's broker: events outlive the query they
    describe, and the subject holds the caller's tenant, so nothing of another tenant's is
    ever read."""
    query = request.query
    limit, cursor = _page_params(query)
    watching_, start = _watch_start(query, cursor)
    query_id = await resolve(broker, tenant, ref) or ref
    subject = _query_events(tenant, query_id)
    with bound_context(tenant=tenant, query_id=query_id):
        if watching_:
            return await watch(
                request, broker, subject, _event, start=start, render=_render_event(None)
            )
        body = await page(broker.reader, subject, limit=limit, cursor=cursor)
    return web.Response(body=_encoder.encode(body), content_type="application/json")


async def watch_query_events(
    request: web.Request, broker: QueryBroker, tenant: str, query_id: str, after: int | None
) -> web.StreamResponse:
    """``GET /v1/queries/{id}/events?watch=true``: the query's events as SSE, each with
    ``id:`` its stream sequence and ``data:`` the item as the listing shows it, from the
    first (or after ``Last-Event-ID``/``after``), live."""
    subject = subjects.query_event(tenant, query_id)
    start = after + 1 if after is not None else 1
    with bound_context(tenant=tenant, query_id=query_id):
        return await watch(
            request,
            broker,
            subject,
            _event,
            start=start,
            render=lambda entry: event(_encoder.encode(event_item(entry)), id=entry.seq),
        )


# --------------------------------------------------------------------------- GET /stream


def _tenant_chunks(tenant: str) -> str:
    """Every chunk subject of the tenant (ARK_CHUNKS holds ``ark.*.query.*.chunk``)."""
    return f"{subjects.ROOT}.{subjects.validate_token(tenant, 'tenant')}.query.*.chunk"


def chunk_item(entry: StreamEntry[Chunk]) -> ChunkItem:
    """A chunk in Ark's broker item envelope. ``queryId`` is the query's id (its subject's
    token; Ark's writers key chunks by name), ``timestamp`` the chunk's ``created``."""
    created = datetime.fromtimestamp(entry.message.created, UTC)
    return ChunkItem(
        sequence_number=entry.seq,
        timestamp=created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        data=ChunkRecord(
            query_id=entry.subject.split(".")[3],
            chunk=msgspec.json.decode(openai_chunk(entry.data)),
        ),
    )


async def chunks(request: web.Request, broker: QueryBroker, tenant: str) -> web.StreamResponse:
    """Ark's ``GET /stream``: the tenant's chunks of every query, one page of broker items,
    or with ``watch=true`` each chunk stored from now on as ``data:``."""
    query = request.query
    limit, cursor = _page_params(query)
    subject = _tenant_chunks(tenant)
    if watching(query):
        return await watch(
            request,
            broker,
            subject,
            _chunk_head,
            start=None,
            render=lambda entry: event(openai_chunk(entry.data)),
        )
    with bound_context(tenant=tenant):
        entries, total, has_more = await _page(
            broker.reader, subject, _chunk, limit=limit, cursor=cursor
        )
    body = ChunkPage(
        items=[chunk_item(entry) for entry in entries],
        total=total,
        has_more=has_more,
        next_cursor=entries[-1].seq if has_more else None,
    )
    return web.Response(body=_encoder.encode(body), content_type="application/json")


async def broker_chunks(
    request: web.Request, broker: QueryBroker, tenant: str
) -> web.StreamResponse:
    """ark-api's ``GET /v1/broker/chunks``: with ``watch=true&query-id=<name>`` the query's
    stream from the beginning (ark-api asks ``/stream/<name>?from-beginning=true``), else
    Ark's ``GET /stream``."""
    name = request.query.get("query-id")
    if watching(request.query) and name:
        _page_params(request.query)
        return await stream_by_name(request, broker, tenant, name, from_beginning=True)
    return await chunks(request, broker, tenant)
