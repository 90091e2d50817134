"""The broker's HTTP API (aiohttp): routes, the error envelope, tracing and SSE plumbing.

Routes (the tenant comes from :class:`~ark_mesh.broker.tenancy.TenantResolver`):

======  ===========================================  ==============================================
POST    /v1/queries                                  accept a query → 202 ``{id, name, namespace,
                                                     status}`` + ``Location``
GET     /v1/queries                                  the tenant's queries ``{items, count}``
GET     /v1/queries/{id}                             one query (read model)
GET     /v1/queries/{id}/stream                      SSE of its chunks; ``Last-Event-ID`` resumes
GET     /v1/queries/{id}/events                      its operation events ``{items, total}``
POST    /v1/queries/{id}/cancel                      ask the running reconciler to stop → 202
POST    /openai/v1/chat/completions                  OpenAI-compatible, ``model: agent/<name>``
POST    /openai/v1/embeddings                        OpenAI-compatible, ``model: [model/]<name>``
GET     /healthz, /readyz                            probes (also on the health port)
======  ===========================================  ==============================================

Every request runs in an OpenTelemetry SERVER span continued from the caller's
``traceparent``; the bus publisher injects that span into the work message, so one trace runs
from the HTTP request to the LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ark_mesh.broker.bodies import (
    ChatCompletionRequest,
    EmbeddingsCreateRequest,
    QueryCreateRequest,
    convert_body,
    decode_body,
)
from ark_mesh.broker.embeddings import EmbeddingsBroker
from ark_mesh.broker.errors import ApiError, BadRequestError, GatewayTimeoutError
from ark_mesh.broker.openai_compat import (
    chat_completion,
    completion_error,
    embeddings_list,
    openai_chunk,
    openai_error,
)
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import QueryRecord
from ark_mesh.broker.sse import DONE, SSE_HEADERS, comment, event, parse_last_event_id
from ark_mesh.broker.tenancy import TenantResolver
from ark_mesh.bus import StreamEntry
from ark_mesh.contracts import Chunk, parse_duration
from ark_mesh.contracts.ark import STREAMING_ANNOTATION
from ark_mesh.service import HealthServer
from ark_mesh.telemetry import bound_context, extract_context, get_logger

__all__ = ["build_app"]

_log = get_logger(__name__)
_tracer = trace.get_tracer("ark_mesh.broker")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BROKER: web.AppKey[QueryBroker] = web.AppKey("broker", QueryBroker)
EMBEDDINGS: web.AppKey[EmbeddingsBroker] = web.AppKey("embeddings", EmbeddingsBroker)
TENANTS: web.AppKey[TenantResolver] = web.AppKey("tenants", TenantResolver)
HEALTH: web.AppKey[HealthServer] = web.AppKey("health", HealthServer)
HEARTBEAT: web.AppKey[float] = web.AppKey("heartbeat", float)
COMPLETION_WAIT: web.AppKey[float] = web.AppKey("completion_wait", float)


def build_app(
    broker: QueryBroker,
    embeddings: EmbeddingsBroker,
    tenants: TenantResolver,
    health: HealthServer,
    *,
    heartbeat: float,
    completion_wait: float,
    max_body_bytes: int,
) -> web.Application:
    app = web.Application(
        middlewares=[_trace_middleware, _error_middleware], client_max_size=max_body_bytes
    )
    app[BROKER] = broker
    app[EMBEDDINGS] = embeddings
    app[TENANTS] = tenants
    app[HEALTH] = health
    app[HEARTBEAT] = heartbeat
    app[COMPLETION_WAIT] = completion_wait
    app.router.add_post("/v1/queries", create_query)
    app.router.add_get("/v1/queries", list_queries)
    app.router.add_get("/v1/queries/{id}", get_query)
    app.router.add_get("/v1/queries/{id}/stream", stream_query)
    app.router.add_get("/v1/queries/{id}/events", query_events)
    app.router.add_post("/v1/queries/{id}/cancel", cancel_query)
    app.router.add_post("/openai/v1/chat/completions", chat_completions)
    app.router.add_post("/openai/v1/embeddings", create_embeddings)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


# --------------------------------------------------------------------------- middleware


def _envelope(status: int, code: str, message: str, field: str | None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "requestId": str(uuid.uuid4())}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = _envelope(exc.http_status, exc.code, exc.message, exc.field)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status, "BAD_REQUEST"
        )
        return _envelope(exc.status, code, exc.reason, None)


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
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


# --------------------------------------------------------------------------- helpers


def _tenant(request: web.Request) -> str:
    return request.app[TENANTS].tenant(request.headers, request.query)


def _accepted(record: QueryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "namespace": record.namespace,
        "status": msgspec.to_builtins(record.status),
    }


async def _open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(comment("connected"))
    return response


async def _pump(
    response: web.StreamResponse,
    entries: AsyncIterator[StreamEntry[Chunk]],
    render: Callable[[StreamEntry[Chunk]], bytes],
    heartbeat: float,
) -> None:
    """Write every entry; a heartbeat comment whenever none came for ``heartbeat`` seconds.

    The pending read is kept across heartbeats (never restarted), so nothing is skipped.
    """
    iterator = aiter(entries)
    pending: asyncio.Future[StreamEntry[Chunk]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                await response.write(comment("heartbeat"))
                continue
            try:
                entry = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            await response.write(render(entry))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


# --------------------------------------------------------------------------- /v1/queries


async def create_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = decode_body(await request.read(), QueryCreateRequest)
    with bound_context(tenant=tenant):
        record, created = await request.app[BROKER].accept(
            tenant, body, idempotency_key=request.headers.get("Idempotency-Key") or None
        )
    headers = {"Location": f"/v1/queries/{record.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(_accepted(record), status=202, headers=headers)


async def list_queries(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    records = await request.app[BROKER].list_queries(tenant)
    return web.json_response(
        {"items": [record.view() for record in records], "count": len(records)}
    )


async def get_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    record = await request.app[BROKER].get(tenant, request.match_info["id"])
    return web.json_response(record.view())


async def stream_query(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    try:
        after = parse_last_event_id(
            request.headers.get("Last-Event-ID") or request.query.get("after")
        )
    except ValueError as exc:
        raise BadRequestError(str(exc), field="Last-Event-ID", status=400) from None
    broker = request.app[BROKER]
    await broker.get(tenant, query_id)
    with bound_context(tenant=tenant, query_id=query_id):
        response = await _open_sse(request)
        await _pump(
            response,
            broker.chunks(tenant, query_id, after=after),
            lambda entry: event(openai_chunk(entry.data), id=entry.seq),
            request.app[HEARTBEAT],
        )
        await response.write(DONE)
        await response.write_eof()
    return response


async def query_events(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    broker = request.app[BROKER]
    await broker.get(tenant, query_id)
    entries = await broker.events(tenant, query_id)
    items = [
        {
            "sequenceNumber": entry.seq,
            "timestamp": entry.message.timestamp,
            "data": msgspec.to_builtins(entry.message),
        }
        for entry in entries
    ]
    for item in items:
        item["data"].pop("schema", None)
    return web.json_response({"items": items, "total": len(items), "hasMore": False})


async def cancel_query(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    query_id = request.match_info["id"]
    with bound_context(tenant=tenant, query_id=query_id):
        record = await request.app[BROKER].cancel(tenant, query_id, requested_by="broker")
    return web.json_response(
        {**_accepted(record), "cancelRequested": not record.terminal}, status=202
    )


# --------------------------------------------------------------------------- OpenAI


async def chat_completions(request: web.Request) -> web.StreamResponse:
    tenant = _tenant(request)
    body = decode_body(await request.read(), ChatCompletionRequest)
    timeout = body.meta("timeout")
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
    annotations = {STREAMING_ANNOTATION: "true"} if body.stream else None
    with bound_context(tenant=tenant):
        record, _ = await broker.accept(tenant, spec_body, annotations=annotations)
    with bound_context(tenant=tenant, query_id=record.id):
        if body.stream:
            response = await _open_sse(request)
            await _pump(
                response,
                broker.chunks(tenant, record.id, after=None),
                lambda entry: event(openai_chunk(entry.data)),
                request.app[HEARTBEAT],
            )
            await response.write(DONE)
            await response.write_eof()
            return response
        within = (
            parse_duration(timeout).total_seconds() if timeout else request.app[COMPLETION_WAIT]
        )
        try:
            final = await broker.wait_terminal(tenant, record.id, within=within)
        except TimeoutError:
            raise ApiError(
                f"query {record.name} did not finish within {within:g}s", status=504
            ) from None
        if final.phase != "done":
            return web.json_response(completion_error(final.status), status=500)
        return web.json_response(
            chat_completion(
                query_id=record.id, name=record.name, model=body.model, status=final.status
            )
        )


async def create_embeddings(request: web.Request) -> web.Response:
    """Embeddings through the embeddings-reconciler. The tenant is resolved first, so 401s are
    the broker's envelope exactly as on every route; everything after answers in OpenAI's
    error shape (``param`` names the field), which OpenAI clients turn into their errors."""
    tenant = _tenant(request)
    try:
        body = decode_body(await request.read(), EmbeddingsCreateRequest)
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
    except ApiError as exc:
        error_type = "invalid_request_error" if exc.http_status < 500 else "server_error"
        return web.json_response(
            openai_error(
                exc.message, error_type=error_type, code=exc.code.lower(), param=exc.field
            ),
            status=exc.http_status,
            headers=exc.headers,
        )
    if result.status == "failed":
        # The result does not classify its failure; the permanent ones (unknown or unusable
        # Model, provider 4xx, invalid input) are the caller's to fix, so 400.
        return web.json_response(
            openai_error(
                result.error or f"embeddings with model {model!r} failed",
                error_type="invalid_request_error",
                code="embeddings_failed",
                param="model",
            ),
            status=400,
        )
    return web.json_response(
        embeddings_list(result, model=body.model, encoding_format=body.encoding_format)
    )


# --------------------------------------------------------------------------- probes


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    results = await request.app[HEALTH].readiness()
    ready = all(value == "ok" for value in results.values())
    return web.json_response(
        {"status": "ok" if ready else "not ready", "checks": results},
        status=200 if ready else 503,
    )
