"""The broker's HTTP API (aiohttp): routes, the error envelope, tracing and SSE plumbing.

Routes (the tenant comes from :class:`~ark_mesh.broker.tenancy.TenantResolver`):

======  ===========================================  ==============================================
POST    /v1/queries                                  accept a query → 202 ``{id, name, namespace,
                                                     status}`` + ``Location``
GET     /v1/queries                                  the tenant's queries ``{items, count}``
GET     /v1/queries/{id}                             one query (read model)
GET     /v1/queries/{id}/stream                      SSE of its chunks; ``Last-Event-ID`` resumes
GET     /v1/queries/{id}/events                      its operation events ``{items, total}``;
                                                     ``?watch=true``: SSE, live
POST    /v1/queries/{id}/cancel                      ask the running reconciler to stop → 202
GET     /v1/tool-approvals[/pending]                 the tenant's tool approvals ``{items, count}``
GET     /v1/tool-approvals/{name}                    one approval (``a2a-task-<taskId>``)
POST    /v1/tool-approvals/{name}/decision           approve or reject it (both modes)
POST    /openai/v1/chat/completions                  OpenAI-compatible, ``model: agent/<name>``
POST    /openai/v1/embeddings                        OpenAI-compatible, ``model: [model/]<name>``
POST    /openai/v1/responses                         OpenAI Responses API (responses-reconciler)
GET     /openai/v1/responses/{id}                    a stored response (``DELETE``: forget it)
ALL     /conversations, /messages, /memory-status    Ark's Memory API on ARK_MEMORY (.memory_api)
GET     /sessions[/{id}]                             sessions folded from events (.sessions)
GET     /stream/{queryName}                          Ark broker: a query's chunks by name (SSE)
GET     /stream                                      Ark broker: all chunks, a page or SSE
GET     /events[/{queryId}]                          Ark broker: events, a page or SSE
GET     /v1/broker/events[/{query_id}], /chunks      ark-api's proxies of those
GET     /openapi.json                                this API as an OpenAPI 3.1 document
GET     /healthz, /readyz                            probes (also on the health port)
======  ===========================================  ==============================================

Each route is one :class:`~ark_mesh.broker.openapi.Operation` in :data:`OPERATIONS`:
:func:`build_app` registers the handlers from it and :mod:`.openapi` documents it, so a route
cannot be served undocumented. A new route is one more declaration there.

No client mistake is a 5xx: malformed ids, headers, encodings, numbers and bodies are 4xx
naming what was wrong (``field`` in Ark's envelope, ``param`` in OpenAI's under
``/openai/v1``); NATS trouble is a 503 with ``Retry-After``; anything else unexpected is a 500
in the same envelope (and a bug).

Every request runs in an OpenTelemetry SERVER span continued from the caller's
``traceparent``; the bus publisher injects that span into the work message, so one trace runs
from the HTTP request to the LLM call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ark_mesh.broker import arkbroker, direct
from ark_mesh.broker.approvals import ToolApprovals
from ark_mesh.broker.bodies import (
    MESSAGES_MIGRATION_WARNING,
    QUERY_CREATE_BODY,
    ApprovalDecisionRequest,
    ChatCompletionRequest,
    EmbeddingsCreateRequest,
    QueryCreateRequest,
    QueryUpdateRequest,
    convert_body,
    decode_body,
)
from ark_mesh.broker.catalog import (
    MAX_PAGE_LIMIT,
    Catalog,
    agent_detail,
    agent_summary,
    model_detail,
    model_summary,
    parse_limit,
    team_detail,
    team_summary,
    tool_detail,
    tool_summary,
)
from ark_mesh.broker.chat_metadata import requested_annotations
from ark_mesh.broker.embeddings import EmbeddingsBroker
from ark_mesh.broker.errors import (
    ApiError,
    BadRequestError,
    GatewayTimeoutError,
    UnavailableError,
)
from ark_mesh.broker.memory_api import MEMORY, ConversationMemory, memory_operations
from ark_mesh.broker.openai_compat import (
    ChunkShaper,
    chat_completion,
    completion_error,
    embeddings_list,
    openai_chunk,
    openai_error,
    read_failure,
    unknown_target,
)
from ark_mesh.broker.openapi import RETRY_AFTER, Operation, Param, Reply, openapi_document
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import QueryRecord
from ark_mesh.broker.responses import (
    AgentDetailResponse,
    AgentListResponse,
    ApprovalDecisionResponse,
    CancelAccepted,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionStreamError,
    ChunkPage,
    ClientContext,
    CompletionFailure,
    EmbeddingsList,
    ErrorBody,
    ErrorEnvelope,
    EventData,
    EventItem,
    EventList,
    EventPage,
    Health,
    ModelDetailResponse,
    ModelListResponse,
    OpenAIError,
    OpenAIModelList,
    OpenAIResponse,
    OpenAIResponseDeleted,
    OpenAIResponseStreamEvent,
    QueryDetailResponse,
    QueryListResponse,
    QueryResponse,
    Readiness,
    StreamErrorEvent,
    TeamDetailResponse,
    TeamListResponse,
    ToolApprovalDetailResponse,
    ToolApprovalListResponse,
    ToolDetailResponse,
    ToolListResponse,
)
from ark_mesh.broker.responses_api import (
    ResponsesCreateRequest,
    chat_on_model,
    create_response,
    delete_response,
    get_response,
)
from ark_mesh.broker.responses_bus import ResponsesBroker
from ark_mesh.broker.sessions_api import SESSIONS, Sessions, session_operations
from ark_mesh.broker.sse import DONE, event, parse_last_event_id
from ark_mesh.broker.streaming import close_entries, end_stream, open_sse, pump
from ark_mesh.broker.tenancy import TenantResolver
from ark_mesh.bus import BusError, NatsError, StreamEntry
from ark_mesh.contracts import Agent, Chunk, Model, Resource, Team, Tool, parse_duration
from ark_mesh.contracts.ark import MIGRATION_WARNING_PREFIX, STREAMING_ANNOTATION
from ark_mesh.service import HealthServer
from ark_mesh.telemetry import bound_context, extract_context, get_logger
from ark_mesh.telemetry.messaging import SECONDS_BUCKETS

__all__ = ["OPERATIONS", "build_app"]

_log = get_logger(__name__)
_tracer = trace.get_tracer("ark_mesh.broker")
# OpenTelemetry's HTTP server metric: one series per route template and status, never per path
# (paths hold query ids). For a stream the duration is the stream's, as the convention has it.
_request_duration = metrics.get_meter("ark_mesh.broker").create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Duration of HTTP server requests.",
    explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
R = TypeVar("R", bound=Resource)

BROKER: web.AppKey[QueryBroker] = web.AppKey("broker", QueryBroker)
EMBEDDINGS: web.AppKey[EmbeddingsBroker] = web.AppKey("embeddings", EmbeddingsBroker)
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog", Catalog)
APPROVALS: web.AppKey[ToolApprovals] = web.AppKey("approvals", ToolApprovals)
RESPONSES: web.AppKey[ResponsesBroker] = web.AppKey("responses", ResponsesBroker)
MAX_PAGE = 2**31 - 1
TENANTS: web.AppKey[TenantResolver] = web.AppKey("tenants", TenantResolver)
HEALTH: web.AppKey[HealthServer] = web.AppKey("health", HealthServer)
HEARTBEAT: web.AppKey[float] = web.AppKey("heartbeat", float)
COMPLETION_WAIT: web.AppKey[float] = web.AppKey("completion_wait", float)
DOCUMENT: web.AppKey[bytes] = web.AppKey("openapi", bytes)

_OPENAI_PREFIX = "/openai/"
_encoder = msgspec.json.Encoder()


def build_app(
    broker: QueryBroker,
    embeddings: EmbeddingsBroker,
    tenants: TenantResolver,
    health: HealthServer,
    *,
    heartbeat: float,
    completion_wait: float,
    max_body_bytes: int,
    catalog: Catalog | None = None,
    approvals: ToolApprovals | None = None,
    responses: ResponsesBroker | None = None,
    memory: ConversationMemory | None = None,
    sessions: Sessions | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[_trace_middleware, _error_middleware], client_max_size=max_body_bytes
    )
    app[BROKER] = broker
    app[EMBEDDINGS] = embeddings
    app[CATALOG] = catalog or Catalog(None)
    app[APPROVALS] = approvals or ToolApprovals(broker)
    if responses is not None:
        app[RESPONSES] = responses
    app[TENANTS] = tenants
    if memory is not None:
        app[MEMORY] = memory
    if sessions is not None:
        app[SESSIONS] = sessions
    app[HEALTH] = health
    app[HEARTBEAT] = heartbeat
    app[COMPLETION_WAIT] = completion_wait
    app[DOCUMENT] = _encoder.encode(openapi_document(OPERATIONS))
    for operation in OPERATIONS:
        if operation.method == "GET":
            app.router.add_get(operation.path, operation.handler)  # and HEAD, as before
        else:
            app.router.add_route(operation.method, operation.path, operation.handler)
    return app


# --------------------------------------------------------------------------- middleware


def _json(
    body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer encoded from its response Struct (the type the document promises)."""
    return web.Response(
        body=_encoder.encode(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error(
    request: web.Request, status: int, code: str, message: str, field: str | None
) -> web.Response:
    """An error in the route's dialect: OpenAI's error object under ``/openai/``, else Ark's.

    The message may quote what the client sent, which can hold bytes that were not UTF-8
    (decoded as surrogate escapes): they are written as escapes, or encoding would fail."""
    message = message.encode("utf-8", "backslashreplace").decode()
    if request.path.startswith(_OPENAI_PREFIX):
        return _json(
            openai_error(
                message,
                error_type="invalid_request_error" if status < 500 else "server_error",
                code=code.lower(),
                param=field,
            ),
            status,
        )
    body = ErrorBody(code=code, message=message, request_id=str(uuid.uuid4()), field=field)
    return _json(ErrorEnvelope(error=body), status)


_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
}


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error(request, exc.http_status, exc.code, exc.message, exc.field)
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "BAD_REQUEST")
        response = _error(request, exc.status, code, exc.reason, None)
    except (BusError, NatsError, TimeoutError) as exc:
        # TimeoutError: a NATS request timing out under asyncio (aiohttp would answer its
        # plain-text 504); every deliberate wait of a route is mapped by the route itself.
        response = _error(request, 503, "UNAVAILABLE", f"NATS is unavailable: {exc}", None)
    except ConnectionResetError:
        # The client went away (a write to it failed, typically a heartbeat): nothing to
        # answer, and not an error of ours — one debug line, never a traceback per client.
        _log.debug("client went away", path=request.path, method=request.method)
        return web.Response(status=499)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log.exception("unexpected failure", path=request.path, method=request.method)
        response = _error(
            request, 500, "INTERNAL_ERROR", f"internal error: {type(exc).__name__}", None
        )
    if (
        response.status in (429, 503)
        and "Retry-After" not in response.headers
        and not response.prepared
    ):
        response.headers["Retry-After"] = str(request.app[BROKER].config.limits.retry_after_seconds)
    return response


@web.middleware
async def _trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    template = route.canonical if route is not None else request.path
    with _tracer.start_as_current_span(
        f"{request.method} {template}",
        context=extract_context(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": template,
            "url.path": request.path,
        },
    ) as span:
        started = time.perf_counter()
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        _request_duration.record(
            time.perf_counter() - started,
            {
                "http.request.method": request.method,
                "http.route": template if route is not None else "",
                "http.response.status_code": response.status,
            },
        )
        return response


# --------------------------------------------------------------------------- helpers


def _tenant(request: web.Request) -> str:
    return request.app[TENANTS].tenant(request.headers, request.query)


async def _body(request: web.Request) -> bytes:
    """The request body, decompressed as its ``Content-Encoding`` says; a body that does not
    decompress is a 400 naming the header (aiohttp would let the zlib error become a 500)."""
    try:
        return await request.read()
    except web.HTTPException:
        raise  # 413: larger than client_max_size
    except Exception as exc:  # zlib/brotli errors, a broken chunked encoding …
        # aiohttp drops the connection after an unreadable body; saying so keeps a client from
        # reusing it for its next request (which would then fail as "server disconnected").
        raise BadRequestError(
            f"the request body could not be read as its Content-Encoding "
            f"{request.headers.get('Content-Encoding', 'identity')!r} says: "
            f"{type(exc).__name__}: {exc}",
            field="Content-Encoding",
            status=400,
            headers={"Connection": "close"},
        ) from None


def _detail(query: QueryRecord | dict[str, Any]) -> QueryDetailResponse:
    return query.detail() if isinstance(query, QueryRecord) else direct.detail(query)


def _summary(query: QueryRecord | dict[str, Any]) -> QueryResponse:
    return query.summary() if isinstance(query, QueryRecord) else direct.summary(query)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``; anything else is a 400 naming it."""
    value = request.query.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise BadRequestError(
            f"{name} must be an integer from {low} to {high}, got {value!r}",
            field=name,
            status=400,
        )
    return int(value)


def _search_text(value: Any) -> str:
    """A query's input as lowercase text, for ``?search=`` (message lists: their texts)."""
    if isinstance(value, str):
        return value.lower()
    parts: list[str] = []
    for message in value if isinstance(value, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                str(part["text"])
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            ]
    return " ".join(parts).lower()


async def _first_entry(
    entries: AsyncIterator[StreamEntry[Chunk]], within: float
) -> tuple[asyncio.Future[StreamEntry[Chunk]], StreamEntry[Chunk] | None]:
    """Start reading ``entries`` and wait up to ``within`` seconds for the first one (before
    any byte of the answer is sent); the read, and the entry if it came."""
    first = asyncio.ensure_future(anext(entries))
    done, _ = await asyncio.wait({first}, timeout=within)
    if not done or first.exception() is not None:
        return first, None
    return first, first.result()


# --------------------------------------------------------------------------- /v1/queries


async def create_query(request: web.Request) -> web.Response:
    """Ark's ``POST /v1/queries`` (with or without the trailing slash Ark's CLI sends)."""
    tenant = _tenant(request)
    body = decode_body(await _body(request), QueryCreateRequest)
    broker = request.app[BROKER]
    mode, asked = broker.mode(body)
    key = request.headers.get("Idempotency-Key") or None
    with bound_context(tenant=tenant):
        if mode == "direct":
            if key is not None:
                raise BadRequestError(
                    "Idempotency-Key applies to broker-mode queries; a direct query's name "
                    "already makes a retry a 409",
                    field="Idempotency-Key",
                )
            created = await broker.create_direct(tenant, body, asked)
            return _json(direct.detail(created), 200)
        record, new = await broker.accept(tenant, body, idempotency_key=key)
    headers = {"Location": f"/v1/queries/{record.id}"}
    if not new:
        headers["Idempotent-Replayed"] = "true"
    return _json(record.detail(), 202, headers)


async def list_queries(request: web.Request) -> web.Response:
    """ark-api's listing: broker-mode queries and Query resources alike, newest first, one
    page (``page``, ``page_size`` up to 500 and served at most 100, ``search`` in the input)."""
    tenant = _tenant(request)
    page = _int_param(request, "page", 1, 1, MAX_PAGE)
    page_size = min(_int_param(request, "page_size", 25, 1, 500), 100)
    search = (request.query.get("search") or "").lower()
    views = [_summary(query) for query in await request.app[BROKER].list_all(tenant)]
    if search:
        views = [view for view in views if search in _search_text(view.input)]
    views.sort(key=lambda view: (view.creation_timestamp or "", view.name), reverse=True)
    start = (page - 1) * page_size
    items = views[start : start + page_size]
    return _json(
        QueryListResponse(
            items=items, count=len(items), total=len(views), page=page, page_size=page_size
        )
    )


async def get_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    query = await request.app[BROKER].get_any(tenant, request.match_info["id"])
    return _json(_detail(query))


async def update_query(request: web.Request) -> web.Response:
    """ark-api's ``PUT``: the fields sent replace the Query's (a broker-mode query: only
    ``cancel``)."""
    tenant = _tenant(request)
    broker = request.app[BROKER]
    query = await broker.get_any(tenant, request.match_info["id"])
    body = decode_body(await _body(request), QueryUpdateRequest)
    if isinstance(query, QueryRecord):
        with bound_context(tenant=tenant, query_id=query.id):
            await broker.update(tenant, query, body)
        return _json((await broker.find(tenant, query.id) or query).detail())
    assert broker.direct is not None  # a Query resource was found through it
    annotations = (
        {MIGRATION_WARNING_PREFIX + "input-type": MESSAGES_MIGRATION_WARNING}
        if body.migrated()
        else {}
    )
    name = str(query["metadata"]["name"])
    updated = await broker.direct.update(tenant, name, body.changes(), annotations=annotations)
    return _json(direct.detail(updated))


async def patch_cancel_query(request: web.Request) -> web.Response:
    """ark-api's ``PATCH …/cancel``: ``spec.cancel = true`` for a Query resource; a cancel
    request to the running reconciler for a broker-mode query."""
    tenant = _tenant(request)
    broker = request.app[BROKER]
    query = await broker.get_any(tenant, request.match_info["id"])
    if isinstance(query, QueryRecord):
        with bound_context(tenant=tenant, query_id=query.id):
            record = await broker.cancel(tenant, query.id, requested_by="broker")
        return _json(record.detail())
    assert broker.direct is not None
    return _json(direct.detail(await broker.direct.cancel(tenant, str(query["metadata"]["name"]))))


async def delete_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    broker = request.app[BROKER]
    query = await broker.get_any(tenant, request.match_info["id"])
    if isinstance(query, QueryRecord):
        with bound_context(tenant=tenant, query_id=query.id):
            await broker.delete(tenant, query)
    else:
        assert broker.direct is not None
        await broker.direct.delete(tenant, str(query["metadata"]["name"]))
    return web.Response(status=204)


def _resume_after(request: web.Request) -> int | None:
    """``Last-Event-ID`` (what a reconnecting EventSource sends), else ``?after=``. Both are
    checked whenever sent, so a malformed one is never silently ignored; the error names it."""
    values: list[int | None] = []
    for name, value, allow_empty in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID"), True),
        ("after", request.query.get("after"), False),
    ):
        try:
            values.append(parse_last_event_id(value, name=name, allow_empty=allow_empty))
        except ValueError as exc:
            raise BadRequestError(str(exc), field=name, status=400) from None
    header, after = values
    return header if header is not None else after


async def stream_query(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    after = _resume_after(request)
    broker = request.app[BROKER]
    record = await broker.get(tenant, query_id)
    query_id = record.id
    with bound_context(tenant=tenant, query_id=query_id):
        # A finished query's stream ends at its final chunk: resuming at or past it has nothing
        # left to send, and a reader started there would wait for a chunk that never comes.
        finished = (
            record.terminal and after is not None and await broker.ended_by(tenant, query_id, after)
        )
        response = await open_sse(request)
        if not finished:
            try:
                await pump(
                    response,
                    broker.chunk_heads(tenant, query_id, after=after or 0),
                    lambda entry: event(openai_chunk(entry.data), id=entry.message.seq),
                    request.app[HEARTBEAT],
                )
            except arkbroker.STREAM_FAILURES as exc:
                # Ended, never cut: the client resumes exactly with Last-Event-ID.
                await response.write(arkbroker.cannot_continue(exc))
        await response.write(DONE)
        await response.write_eof()
    return response


async def query_events(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    watch = arkbroker.watching(request.query)
    after = _resume_after(request)
    broker = request.app[BROKER]
    query_id = (await broker.get(tenant, query_id)).id
    if watch:
        return await arkbroker.watch_query_events(request, broker, tenant, query_id, after)
    items = [arkbroker.event_item(entry) for entry in await broker.events(tenant, query_id)]
    return _json(EventList(items=items, total=len(items), has_more=False))


# --------------------------------------------------------------------------- Ark broker reads


async def ark_stream(request: web.Request) -> web.StreamResponse:
    return await arkbroker.stream(request, request.app[BROKER], _tenant(request))


async def ark_events(request: web.Request) -> web.StreamResponse:
    return await arkbroker.events(request, request.app[BROKER], _tenant(request))


async def ark_query_events(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    ref = request.match_info["queryId"]
    return await arkbroker.query_events(request, request.app[BROKER], tenant, ref)


async def ark_chunks(request: web.Request) -> web.StreamResponse:
    return await arkbroker.chunks(request, request.app[BROKER], _tenant(request))


async def ark_api_chunks(request: web.Request) -> web.StreamResponse:
    return await arkbroker.broker_chunks(request, request.app[BROKER], _tenant(request))


async def cancel_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    with bound_context(tenant=tenant, query_id=query_id):
        record = await request.app[BROKER].cancel(tenant, query_id, requested_by="broker")
    return _json(
        CancelAccepted(
            id=record.id,
            name=record.name,
            namespace=record.namespace,
            status=record.status,
            cancel_requested=not record.terminal,
        ),
        202,
    )


# --------------------------------------------------------------------------- /v1/tool-approvals


async def list_tool_approvals(request: web.Request) -> web.Response:
    """ark-api's listing, ``?phase=`` filtering (``pending``, ``approved``, ``rejected``,
    ``expired``)."""
    tenant = _tenant(request)
    items = await request.app[APPROVALS].list(tenant, request.query.get("phase") or None)
    return _json(ToolApprovalListResponse(items=items, count=len(items)))


async def list_pending_tool_approvals(request: web.Request) -> web.Response:
    items = await request.app[APPROVALS].list(_tenant(request), "pending")
    return _json(ToolApprovalListResponse(items=items, count=len(items)))


async def get_tool_approval(request: web.Request) -> web.Response:
    return _json(await request.app[APPROVALS].get(_tenant(request), request.match_info["name"]))


async def decide_tool_approval(request: web.Request) -> web.Response:
    """Approve or reject: who decided is ``X-Forwarded-User`` (set by the proxy in front, as
    for ark-api), else ``unknown``."""
    tenant = _tenant(request)
    name = request.match_info["name"]
    body = decode_body(await _body(request), ApprovalDecisionRequest)
    client = ClientContext(ip_address=request.remote, user_agent=request.headers.get("User-Agent"))
    with bound_context(tenant=tenant):
        answer = await request.app[APPROVALS].decide(
            tenant,
            name,
            body.action,
            reason=body.reason,
            responded_by=request.headers.get("X-Forwarded-User") or "unknown",
            client=client,
        )
    return _json(answer)


# --------------------------------------------------------------------------- /v1/agents …


async def _catalog_page(
    request: web.Request, kind: type[R]
) -> tuple[list[R], str | None, int | None]:
    tenant = _tenant(request)
    limit = parse_limit(request.query.get("limit"))
    return await request.app[CATALOG].page(
        kind, tenant, limit=limit, continue_token=request.query.get("continue")
    )


async def _catalog_one(request: web.Request, kind: type[R]) -> R:
    return await request.app[CATALOG].one(kind, _tenant(request), request.match_info["name"])


async def list_agents(request: web.Request) -> web.Response:
    items, token, remaining = await _catalog_page(request, Agent)
    views = [agent_summary(item) for item in items]
    return _json(
        AgentListResponse(
            items=views, count=len(views), continue_token=token, remaining_item_count=remaining
        )
    )


async def get_agent(request: web.Request) -> web.Response:
    return _json(agent_detail(await _catalog_one(request, Agent)))


async def list_models(request: web.Request) -> web.Response:
    items, token, remaining = await _catalog_page(request, Model)
    views = [model_summary(item) for item in items]
    return _json(
        ModelListResponse(
            items=views, count=len(views), continue_token=token, remaining_item_count=remaining
        )
    )


async def get_model(request: web.Request) -> web.Response:
    return _json(model_detail(await _catalog_one(request, Model)))


async def list_teams(request: web.Request) -> web.Response:
    items, token, remaining = await _catalog_page(request, Team)
    views = [team_summary(item) for item in items]
    return _json(
        TeamListResponse(
            items=views, count=len(views), continue_token=token, remaining_item_count=remaining
        )
    )


async def get_team(request: web.Request) -> web.Response:
    return _json(team_detail(await _catalog_one(request, Team)))


async def list_tools(request: web.Request) -> web.Response:
    items, token, remaining = await _catalog_page(request, Tool)
    views = [tool_summary(item) for item in items]
    return _json(
        ToolListResponse(
            items=views, count=len(views), continue_token=token, remaining_item_count=remaining
        )
    )


async def get_tool(request: web.Request) -> web.Response:
    return _json(tool_detail(await _catalog_one(request, Tool)))


async def openai_models(request: web.Request) -> web.Response:
    """OpenAI's ``GET /models``: every target of the caller's namespace."""
    return _json(await request.app[CATALOG].openai_models(_tenant(request)))


# --------------------------------------------------------------------------- OpenAI


async def chat_completions(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    body = decode_body(await _body(request), ChatCompletionRequest)
    if body.target()["type"] == "model":
        # A Model answers the whole conversation: the responses-reconciler's work.
        return await chat_on_model(
            request,
            body,
            tenant=tenant,
            broker=_responses(request),
            heartbeat=request.app[HEARTBEAT],
            completion_wait=request.app[COMPLETION_WAIT],
        )
    timeout = body.meta("timeout")
    # metadata.queryAnnotations / metadata.ark, as ark-api reads them (400 naming the key).
    annotations = requested_annotations(body.metadata)
    spec_body = convert_body(
        {
            "name": f"openai-query-{uuid.uuid4().hex[:8]}",
            "input": body.user_input(),
            "target": body.target(),
            "sessionId": body.meta("sessionId"),
            "conversationId": body.meta("conversationId"),
            "timeout": timeout,
        },
        QueryCreateRequest,
        prefix="metadata",
    )
    broker = request.app[BROKER]
    # A client asking for SSE asks for the model's tokens as they come: annotate the query the
    # way ark-api does, so its model calls are streamed (see ark_mesh.resolver.streaming).
    if body.stream:
        annotations[STREAMING_ANNOTATION] = "true"
    with bound_context(tenant=tenant):
        record, _ = await broker.accept(tenant, spec_body, annotations=annotations or None)
    with bound_context(tenant=tenant, query_id=record.id):
        if body.stream:
            shaper = ChunkShaper(include_usage=body.include_usage(), model=body.model)

            def render(entry: StreamEntry[Chunk]) -> bytes | None:
                shaped = shaper.chunk(entry.data)
                return event(shaped) if shaped is not None else None

            # A query whose target does not exist ends at once with only its final chunk: if
            # that comes before the first heartbeat is due, it is answered like the
            # non-streaming call (404 model_not_found) instead of a 200 stream of a failure.
            entries = aiter(broker.chunks(tenant, record.id))
            first, entry = await _first_entry(entries, request.app[HEARTBEAT])
            failed = first.exception() if first.done() and not first.cancelled() else None
            if isinstance(failed, arkbroker.STREAM_FAILURES):
                await close_entries(entries)
                raise failed  # nothing sent yet: a 503 like any other NATS trouble
            completed = entry.message.ark.completed_query if entry is not None else None
            if completed is not None and completed.status is not None:
                missing = unknown_target(completed.status, model=body.model)
                if missing is not None:
                    await close_entries(entries)
                    return _json(missing, 404)
            response = await open_sse(request)
            try:
                await pump(response, entries, render, request.app[HEARTBEAT], pending=first)
            except arkbroker.STREAM_FAILURES as exc:
                return await end_stream(response, _encoder.encode(read_failure(exc)))
            return await end_stream(response, shaper.usage_chunk())
        within = (
            parse_duration(timeout).total_seconds() if timeout else request.app[COMPLETION_WAIT]
        )
        try:
            final = await broker.wait_terminal(tenant, record.id, within=within)
        except TimeoutError:
            raise GatewayTimeoutError(
                f"query {record.name} did not finish within {within:g}s"
            ) from None
        if final.phase != "done":
            missing = unknown_target(final.status, model=body.model)
            if missing is not None:
                return _json(missing, 404)
            # The mesh already retried what was transient: a client retry would only run the
            # same failing query again, so tell OpenAI's SDKs not to (they honour the header).
            return _json(completion_error(final.status), 500, {"x-should-retry": "false"})
        return _json(
            chat_completion(
                query_id=record.id, name=record.name, model=body.model, status=final.status
            )
        )


def _responses(request: web.Request) -> ResponsesBroker:
    responses = request.app.get(RESPONSES)
    if responses is None:
        raise UnavailableError("this broker has no responses path configured")
    return responses


async def create_openai_response(request: web.Request) -> web.StreamResponse:
    """OpenAI's Responses API through the responses-reconciler (:mod:`.responses_api`)."""
    return await create_response(
        request,
        tenant=_tenant(request),
        data=await _body(request),
        broker=_responses(request),
        heartbeat=request.app[HEARTBEAT],
        completion_wait=request.app[COMPLETION_WAIT],
    )


async def get_openai_response(request: web.Request) -> web.Response:
    return await get_response(
        request,
        tenant=_tenant(request),
        response_id=request.match_info["response_id"],
        broker=_responses(request),
    )


async def delete_openai_response(request: web.Request) -> web.Response:
    return await delete_response(
        request,
        tenant=_tenant(request),
        response_id=request.match_info["response_id"],
        broker=_responses(request),
    )


async def create_embeddings(request: web.Request) -> web.Response:
    """Embeddings through the embeddings-reconciler; errors in OpenAI's shape (``param`` names
    the field), which OpenAI clients turn into their errors."""
    tenant = _tenant(request)
    body = decode_body(await _body(request), EmbeddingsCreateRequest)
    model, texts = body.model_name(), body.texts()
    within = request.app[COMPLETION_WAIT]
    with bound_context(tenant=tenant):
        try:
            result = await request.app[EMBEDDINGS].embed(
                tenant, model=model, texts=texts, dimensions=body.dimensions, within=within
            )
        except TimeoutError:
            raise GatewayTimeoutError(
                f"no embeddings result for model {model!r} within {within:g}s"
            ) from None
    if result.status == "failed":
        # The result does not classify its failure; the permanent ones (unknown or unusable
        # Model, provider 4xx, invalid input) are the caller's to fix, so 400.
        return _json(
            openai_error(
                result.error or f"embeddings with model {model!r} failed",
                error_type="invalid_request_error",
                code="embeddings_failed",
                param="model",
            ),
            400,
        )
    return _json(embeddings_list(result, model=body.model, encoding_format=body.encoding_format))


# --------------------------------------------------------------------------- probes and document


async def _healthz(_: web.Request) -> web.Response:
    return _json(Health(status="ok"))


async def _readyz(request: web.Request) -> web.Response:
    results = await request.app[HEALTH].readiness()
    ready = all(value == "ok" for value in results.values())
    return _json(
        Readiness(status="ok" if ready else "not ready", checks=dict(results)),
        200 if ready else 503,
    )


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


# --------------------------------------------------------------------------- the routes

_ID = Param(
    "id",
    "path",
    "The query's name in the caller's namespace, or its id (the uid in `Location`); "
    "anything else is simply not found.",
)
_NAME = Param("name", "path", "The object's name in the caller's namespace.")
_APPROVAL = Param(
    "name",
    "path",
    "The approval's name, `a2a-task-<taskId>` (the query's `status.response.a2a.taskId`).",
)
_PHASE = Param(
    "phase",
    "query",
    "Only approvals in this phase: `pending`, `approved`, `rejected`, `expired` (also "
    "`failed`, `cancelled`).",
)
_PAGE = Param(
    "page", "query", "Page number, from 1.", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
)
_PAGE_SIZE = Param(
    "page_size",
    "query",
    "Items per page (at most 500; pages hold at most 100, as in ark-api). Default 25.",
    {"type": "integer", "minimum": 1, "maximum": 500},
)
_SEARCH = Param("search", "query", "Case-insensitive substring of the queries' input.")
_LIMIT = Param(
    "limit",
    "query",
    f"Items per page (default 100, at most {MAX_PAGE_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT},
)
_CONTINUE = Param("continue", "query", "The `continue_token` of the previous page (opaque).")
_LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    "Resume after this stream sequence (the `id:` of the last event received; at most "
    "2^63-1). Empty: from the start.",
    {"type": "string", "pattern": "^([0-9]{1,19})?$"},
)
_AFTER = Param(
    "after",
    "query",
    "Like `Last-Event-ID`, for clients that cannot set headers; the header wins when both "
    "are sent.",
    {"type": "string", "pattern": "^[0-9]{1,19}$"},
)
_IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    "A retried POST with the same key returns the query the first one accepted.",
)
_BY_ID = {"id": "$response.body#/id"}
_QUERY_LINKS = {
    **{
        operation_id: _BY_ID
        for operation_id in (
            "getQuery",
            "streamQuery",
            "listQueryEvents",
            "cancelQuery",
            "updateQuery",
            "patchCancelQuery",
            "deleteQuery",
        )
    },
    "arkStreamQuery": {"queryName": "$response.body#/name"},
    "arkListQueryEvents": {"queryId": "$response.body#/id"},
    "arkApiBrokerChunks": {"query.query-id": "$response.body#/name", "query.watch": "true"},
}
_CREATE_REPLIES = (
    Reply(
        200,
        "A direct query: the Query resource was created (ark-api's answer)",
        QueryDetailResponse,
    ),
    Reply(
        202,
        "A broker-mode query was accepted; follow `Location`",
        QueryDetailResponse,
        headers={
            "Location": "The query's URL.",
            "Idempotent-Replayed": "`true` when an earlier request with the same "
            "Idempotency-Key accepted it.",
        },
        links=_QUERY_LINKS,
    ),
    Reply(409, "The name is taken, or the Idempotency-Key is in use", ErrorEnvelope),
    Reply(
        429,
        "The tenant has too many queries in flight",
        ErrorEnvelope,
        headers=RETRY_AFTER,
    ),
)
_CREATE_SUMMARY = (
    "Create a query: ark-api's QueryCreateRequest; `reconciliation` (or the annotation "
    "ark.mckinsey.com/reconciliation) chooses broker mode or a Query resource"
)


def _catalog_routes(
    plural: str,
    kind: str,
    listing: Handler,
    one: Handler,
    page: type[msgspec.Struct],
    detail: type[msgspec.Struct],
) -> tuple[Operation, Operation]:
    """``GET /v1/<plural>`` (a page) and ``GET /v1/<plural>/{name}``, as ark-api serves them."""
    return (
        Operation(
            "GET",
            f"/v1/{plural}",
            listing,
            f"list{kind}s",
            f"The {kind}s of the caller's namespace, by name, one page",
            "resources",
            params=(_LIMIT, _CONTINUE),
            replies=(Reply(200, f"A page of {kind}s", page),),
        ),
        Operation(
            "GET",
            f"/v1/{plural}/{{name}}",
            one,
            f"get{kind}",
            f"One {kind}",
            "resources",
            params=(_NAME,),
            replies=(Reply(200, f"The {kind}", detail),),
        ),
    )


_OPENAI_TIMEOUT = Reply(504, "The query did not finish in time", OpenAIError)
_RESPONSE_ID = Param("response_id", "path", "The response's id (`resp_…`).")

_TRUE_FALSE = {"type": "string", "enum": ["true", "false"]}
_QUERY_NAME = Param(
    "queryName",
    "path",
    "The query's name in the caller's namespace (a broker-mode query's id is taken too).",
)
_QUERY_ID = Param(
    "queryId",
    "path",
    "The query's id (the uid its events carry as `queryId`), or its name in the caller's "
    "namespace; an id without events is an empty page.",
)
_FROM_BEGINNING = Param(
    "from-beginning",
    "query",
    "`true`: replay what is stored first, then follow live (without it a watch sends only "
    "what is stored from now on, or after `cursor`).",
    _TRUE_FALSE,
)
_WAIT_FOR_QUERY = Param(
    "wait-for-query",
    "query",
    "Seconds (clamped to 1 to 300) to wait for the query to exist and send a chunk; past "
    "them Ark's timeout error event, then `[DONE]`. Without it an unknown name is a 404.",
    {"type": "integer", "minimum": 0, "maximum": arkbroker.MAX_NUMBER},
)
_MAX_CHUNK_SIZE = Param(
    "max-chunk-size",
    "query",
    "Ark's testing aid: validated, not used (as in Ark's broker).",
    {"type": "integer", "minimum": 1, "maximum": arkbroker.MAX_NUMBER},
)
_ARK_LIMIT = Param(
    "limit",
    "query",
    f"Items per page (default {arkbroker.DEFAULT_LIMIT}, at most {arkbroker.MAX_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": arkbroker.MAX_LIMIT},
)
_CURSOR = Param(
    "cursor",
    "query",
    "Only items after this sequence (exclusive; a page's `nextCursor`): JetStream stream "
    "sequences.",
    {"type": "integer", "minimum": 0, "maximum": arkbroker.MAX_NUMBER},
)
_WATCH = Param(
    "watch", "query", "`true`: server-sent events, live, instead of a page.", _TRUE_FALSE
)
_SESSION_ID = Param("session_id", "query", "Only events whose `data.sessionId` is this.")
_MEMORY = Param(
    "memory",
    "query",
    "ark-api's choice of broker (a Memory's name): accepted; one store serves them all.",
)
_CHUNKS_QUERY = Param(
    "query-id", "query", "The query's name (ark-api streams it from the beginning)."
)
_ARK_CHUNKS = Reply(
    200,
    "The chunks as Ark's broker sends them (no `id:`), then `[DONE]`; an error chunk, or Ark's "
    "timeout event, ends the stream",
    sse=(ChatCompletionChunk, StreamErrorEvent),
)
_ARK_CHUNK_PAGE = Reply(
    200,
    "A page of broker items (`nextCursor` while `hasMore`), or with `watch=true` each chunk "
    "stored from then on as `data:`",
    ChunkPage,
    sse=ChatCompletionChunk,
)
_ARK_EVENTS = Reply(
    200,
    "A page of events (`nextCursor` while `hasMore`), or with `watch=true` each event as `data:`",
    EventPage,
    sse=EventData,
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/v1/queries",
        create_query,
        "createQuery",
        _CREATE_SUMMARY,
        "queries",
        body=QUERY_CREATE_BODY,
        params=(_IDEMPOTENCY_KEY,),
        replies=_CREATE_REPLIES,
    ),
    Operation(
        "POST",
        "/v1/queries/",
        create_query,
        "createQueryTrailingSlash",
        "The same as `POST /v1/queries` (Ark's CLI sends the trailing slash)",
        "queries",
        body=QUERY_CREATE_BODY,
        params=(_IDEMPOTENCY_KEY,),
        replies=_CREATE_REPLIES,
    ),
    Operation(
        "GET",
        "/v1/queries",
        list_queries,
        "listQueries",
        "The tenant's queries, broker-mode and Query resources alike, newest first",
        "queries",
        params=(_PAGE, _PAGE_SIZE, _SEARCH),
        replies=(Reply(200, "One page of queries", QueryListResponse),),
    ),
    Operation(
        "GET",
        "/v1/queries/{id}",
        get_query,
        "getQuery",
        "One query and its latest status",
        "queries",
        params=(_ID,),
        replies=(Reply(200, "The query", QueryDetailResponse),),
    ),
    Operation(
        "PUT",
        "/v1/queries/{id}",
        update_query,
        "updateQuery",
        "Replace the spec fields sent (ark-api's QueryUpdateRequest); a broker-mode query "
        "only takes `cancel`",
        "queries",
        params=(_ID,),
        body=QueryUpdateRequest,
        replies=(
            Reply(200, "The query as updated", QueryDetailResponse),
            Reply(
                409,
                "A broker-mode query's spec is fixed (`field` names what was sent), or the "
                "Query changed meanwhile",
                ErrorEnvelope,
            ),
        ),
    ),
    Operation(
        "PATCH",
        "/v1/queries/{id}/cancel",
        patch_cancel_query,
        "patchCancelQuery",
        "Cancel the query (ark-api's route: `spec.cancel = true`)",
        "queries",
        params=(_ID,),
        replies=(Reply(200, "The query (its phase becomes `canceled`)", QueryDetailResponse),),
    ),
    Operation(
        "DELETE",
        "/v1/queries/{id}",
        delete_query,
        "deleteQuery",
        "Delete the query (a running broker-mode query is canceled first)",
        "queries",
        params=(_ID,),
        replies=(Reply(204, "Deleted"),),
    ),
    Operation(
        "GET",
        "/v1/queries/{id}/stream",
        stream_query,
        "streamQuery",
        "The query's chunks as server-sent events, live, to `[DONE]`",
        "queries",
        params=(_ID, _LAST_EVENT_ID, _AFTER),
        replies=(
            Reply(
                200,
                "Chunks in `seq` order with `id:` = the chunk's `seq` (`Last-Event-ID` "
                "resumes after it), then `[DONE]`; a stream that cannot continue (NATS away) "
                "ends with an error line, then `[DONE]`",
                sse=(ChatCompletionChunk, StreamErrorEvent),
            ),
        ),
    ),
    Operation(
        "GET",
        "/v1/queries/{id}/events",
        query_events,
        "listQueryEvents",
        "The query's operation events so far; with `watch=true` as server-sent events, live",
        "queries",
        params=(_ID, _WATCH, _LAST_EVENT_ID, _AFTER),
        replies=(
            Reply(
                200,
                "The events, in order; SSE with `id:` = stream sequence (`Last-Event-ID` resumes)",
                EventList,
                sse=EventItem,
            ),
        ),
    ),
    Operation(
        "POST",
        "/v1/queries/{id}/cancel",
        cancel_query,
        "cancelQuery",
        "Ask the running reconciler to stop the query (the broker's older route; "
        "`PATCH …/cancel` is ark-api's)",
        "queries",
        params=(_ID,),
        replies=(Reply(202, "Cancel requested (or the query had ended)", CancelAccepted),),
    ),
    Operation(
        "POST",
        "/openai/v1/chat/completions",
        chat_completions,
        "createChatCompletion",
        "OpenAI chat completions; `model` is `agent/<name>`, `team/…`, `model/…` or `tool/…`",
        "openai",
        body=ChatCompletionRequest,
        dialect="openai",
        replies=(
            Reply(
                200,
                "The completion; with `stream: true` server-sent chunks and `[DONE]`, the "
                "final chunk replaced by an error line when the query failed",
                ChatCompletion,
                sse=(ChatCompletionChunk, ChatCompletionStreamError),
            ),
            Reply(404, "The target named by `model` does not exist", OpenAIError),
            Reply(
                429,
                "The tenant has too many queries in flight",
                OpenAIError,
                headers=RETRY_AFTER,
            ),
            Reply(
                500,
                "The query ran and ended in `error`/`canceled` (Ark's `detail`, with "
                "`x-should-retry: false`), or an unexpected failure",
                CompletionFailure,
                headers={"x-should-retry": "`false`: retrying would run the query again."},
            ),
            _OPENAI_TIMEOUT,
        ),
    ),
    Operation(
        "POST",
        "/openai/v1/embeddings",
        create_embeddings,
        "createEmbeddings",
        "OpenAI embeddings from an embeddings Model of the tenant's namespace",
        "openai",
        body=EmbeddingsCreateRequest,
        dialect="openai",
        replies=(
            Reply(200, "The vectors, in input order", EmbeddingsList),
            _OPENAI_TIMEOUT,
        ),
    ),
    Operation(
        "POST",
        "/openai/v1/responses",
        create_openai_response,
        "createResponse",
        "OpenAI Responses API; `model` is `agent/<name>`, `team/…`, `model/…` or `tool/…`; "
        "`previous_response_id` continues a stored response",
        "openai",
        body=ResponsesCreateRequest,
        dialect="openai",
        replies=(
            Reply(
                200,
                "The response; with `stream: true` Responses events (`event:` + `data:`)",
                OpenAIResponse,
                sse=OpenAIResponseStreamEvent,
            ),
            Reply(
                404,
                "The target named by `model`, or `previous_response_id`, does not exist",
                OpenAIError,
            ),
            Reply(
                500,
                "The run ended failed or canceled (`x-should-retry: false`)",
                OpenAIError,
                headers={"x-should-retry": "`false`: retrying would run the request again."},
            ),
            _OPENAI_TIMEOUT,
        ),
    ),
    Operation(
        "GET",
        "/openai/v1/responses/{response_id}",
        get_openai_response,
        "getResponse",
        "A stored response (`store` was not false) of the caller's tenant",
        "openai",
        params=(_RESPONSE_ID,),
        dialect="openai",
        replies=(
            Reply(200, "The response", OpenAIResponse),
            Reply(404, "No such response in the caller's tenant", OpenAIError),
        ),
    ),
    Operation(
        "DELETE",
        "/openai/v1/responses/{response_id}",
        delete_openai_response,
        "deleteResponse",
        "Forget a stored response: it can no longer be read or continued",
        "openai",
        params=(_RESPONSE_ID,),
        dialect="openai",
        replies=(
            Reply(200, "Deleted", OpenAIResponseDeleted),
            Reply(404, "No such response in the caller's tenant", OpenAIError),
        ),
    ),
    Operation(
        "GET",
        "/v1/tool-approvals",
        list_tool_approvals,
        "listToolApprovals",
        "The tool approvals of the caller's namespace (broker-mode queries' and the A2ATasks "
        "of Query resources), newest first",
        "tool-approvals",
        params=(_PHASE,),
        replies=(Reply(200, "The approvals", ToolApprovalListResponse),),
    ),
    Operation(
        "GET",
        "/v1/tool-approvals/pending",
        list_pending_tool_approvals,
        "listPendingToolApprovals",
        "The approvals waiting for a decision",
        "tool-approvals",
        replies=(Reply(200, "The pending approvals", ToolApprovalListResponse),),
    ),
    Operation(
        "GET",
        "/v1/tool-approvals/{name}",
        get_tool_approval,
        "getToolApproval",
        "One approval: its tool calls, timeout, phase and decision",
        "tool-approvals",
        params=(_APPROVAL,),
        replies=(Reply(200, "The approval", ToolApprovalDetailResponse),),
    ),
    Operation(
        "POST",
        "/v1/tool-approvals/{name}/decision",
        decide_tool_approval,
        "decideToolApproval",
        "Approve or reject the pending tool calls; the query resumes",
        "tool-approvals",
        params=(_APPROVAL,),
        body=ApprovalDecisionRequest,
        replies=(
            Reply(200, "Decided; `phase` is the action taken", ApprovalDecisionResponse),
            Reply(409, "The approval is no longer pending (or was just decided)", ErrorEnvelope),
        ),
    ),
    *_catalog_routes(
        "agents", "Agent", list_agents, get_agent, AgentListResponse, AgentDetailResponse
    ),
    *_catalog_routes(
        "models", "Model", list_models, get_model, ModelListResponse, ModelDetailResponse
    ),
    *_catalog_routes("teams", "Team", list_teams, get_team, TeamListResponse, TeamDetailResponse),
    *_catalog_routes("tools", "Tool", list_tools, get_tool, ToolListResponse, ToolDetailResponse),
    Operation(
        "GET",
        "/openai/v1/models",
        openai_models,
        "listOpenAIModels",
        "The targets of the caller's namespace as OpenAI models (`agent/<name>`, `team/…`, "
        "`model/…`, `tool/…`)",
        "openai",
        dialect="openai",
        replies=(Reply(200, "The targets", OpenAIModelList),),
    ),
    *memory_operations(_tenant),
    *session_operations(_tenant),
    Operation(
        "GET",
        "/stream/{queryName}",
        ark_stream,
        "arkStreamQuery",
        "Ark broker: the query's chunks by name as server-sent events, to `[DONE]`",
        "ark-broker",
        params=(_QUERY_NAME, _FROM_BEGINNING, _WAIT_FOR_QUERY, _MAX_CHUNK_SIZE),
        replies=(_ARK_CHUNKS,),
    ),
    Operation(
        "GET",
        "/stream",
        ark_chunks,
        "arkListChunks",
        "Ark broker: the tenant's chunks of every query, one page, or server-sent events of "
        "new chunks",
        "ark-broker",
        params=(_ARK_LIMIT, _CURSOR, _WATCH),
        replies=(_ARK_CHUNK_PAGE,),
    ),
    Operation(
        "GET",
        "/events",
        ark_events,
        "arkListEvents",
        "Ark broker: the tenant's operation events, one page, or server-sent events",
        "ark-broker",
        params=(_ARK_LIMIT, _CURSOR, _WATCH, _FROM_BEGINNING, _SESSION_ID),
        replies=(_ARK_EVENTS,),
    ),
    Operation(
        "GET",
        "/events/{queryId}",
        ark_query_events,
        "arkListQueryEvents",
        "Ark broker: one query's operation events, one page, or server-sent events",
        "ark-broker",
        params=(_QUERY_ID, _ARK_LIMIT, _CURSOR, _WATCH, _FROM_BEGINNING),
        replies=(_ARK_EVENTS,),
    ),
    Operation(
        "GET",
        "/v1/broker/events",
        ark_events,
        "arkApiBrokerEvents",
        "ark-api's proxy of the broker's `GET /events`",
        "ark-broker",
        params=(_ARK_LIMIT, _CURSOR, _WATCH, _FROM_BEGINNING, _SESSION_ID, _MEMORY),
        replies=(_ARK_EVENTS,),
    ),
    Operation(
        "GET",
        "/v1/broker/events/{queryId}",
        ark_query_events,
        "arkApiBrokerQueryEvents",
        "ark-api's proxy of the broker's `GET /events/{queryId}`",
        "ark-broker",
        params=(_QUERY_ID, _ARK_LIMIT, _CURSOR, _WATCH, _FROM_BEGINNING, _MEMORY),
        replies=(_ARK_EVENTS,),
    ),
    Operation(
        "GET",
        "/v1/broker/chunks",
        ark_api_chunks,
        "arkApiBrokerChunks",
        "ark-api's proxy of the broker's chunks: `watch=true&query-id=<name>` is the query's "
        "stream from the beginning, anything else `GET /stream`",
        "ark-broker",
        params=(_WATCH, _CHUNKS_QUERY, _ARK_LIMIT, _CURSOR, _MEMORY),
        replies=(
            Reply(
                200,
                "A page of chunks, or SSE: the query's chunks to `[DONE]` (with `query-id`), "
                "else new chunks",
                ChunkPage,
                sse=(ChatCompletionChunk, StreamErrorEvent),
            ),
            Reply(404, "No query of that name in the caller's namespace", ErrorEnvelope),
        ),
    ),
    Operation(
        "GET",
        "/openapi.json",
        _openapi,
        "getOpenApi",
        "This document",
        "meta",
        tenant=False,
        replies=(Reply(200, "The OpenAPI 3.1 document", dict[str, Any]),),
    ),
    Operation(
        "GET",
        "/healthz",
        _healthz,
        "healthz",
        "Liveness",
        "probes",
        tenant=False,
        replies=(Reply(200, "Alive", Health),),
    ),
    Operation(
        "GET",
        "/readyz",
        _readyz,
        "readyz",
        "Readiness: NATS connected, status consumer bound, read model loaded",
        "probes",
        tenant=False,
        replies=(
            Reply(200, "Ready", Readiness),
            Reply(503, "Not ready; `checks` says what is missing", Readiness, headers=RETRY_AFTER),
        ),
    ),
)
