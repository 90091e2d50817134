"""The broker's OpenAPI 3.1 document, generated from its route declarations and Structs.

Every route the broker serves is one :class:`Operation` (in :mod:`.api`): method, path,
handler, parameters, request body Struct and reply Structs. :func:`~ark_mesh.broker.api.build_app`
registers the handlers from the same declarations, so a route cannot exist without being
documented, and :func:`openapi_document` turns the declarations into the document — the bodies'
schemas come from msgspec (``schema_components``), exactly as ``contracts.export`` derives the
message schemas, so the document describes what the code decodes and encodes.

The errors every route can answer are added from what the route is: its dialect (Ark's broker
envelope, or OpenAI's error object under ``/openai/v1``), whether it needs the caller's tenant
(401), takes a body (400/413/422) or a path id (404). ``429``/``503`` carry ``Retry-After``.

The document is served at ``GET /openapi.json`` and checked in as ``proto-schemas/openapi.json``
(``make schemas``, :mod:`ark_mesh.broker.export`; a test fails when it is stale).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web

from ark_mesh.broker.responses import ErrorEnvelope, OpenAIError

__all__ = [
    "OPENAPI_VERSION",
    "Operation",
    "Param",
    "Reply",
    "openapi_document",
    "openapi_text",
]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
_REF = "#/components/schemas/{name}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Dialect = Literal["ark", "openai"]


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter; ``schema`` is its JSON Schema."""

    name: str
    location: Literal["path", "query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """One documented answer. ``body`` is the JSON body's type; ``sse`` the type of each
    ``data:`` line of a ``text/event-stream`` answer (a tuple: any of those types; both
    ``body`` and ``sse``: the request chooses); ``headers``
    the response headers it sets; ``links`` the operations its answer leads to (OpenAPI links:
    operation id → parameter → runtime expression), which clients and stateful testing follow."""

    status: int
    description: str
    body: Any = None
    sse: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One route: registered by ``build_app`` and documented by :func:`openapi_document`."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    replies: tuple[Reply, ...]
    params: tuple[Param, ...] = ()
    body: Any = None
    dialect: Dialect = "ark"
    tenant: bool = True
    """Whether the route needs the caller's tenant (bearer token, or ``?namespace=``)."""
    description: str = ""


RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying."}

NAMESPACE = Param(
    "namespace",
    "query",
    "With `auth.mode: none`, the tenant (a DNS-1123 label); default `auth.default_tenant`. "
    "Ignored with bearer tokens.",
    {"type": "string"},
)


def _error_replies(operation: Operation) -> list[Reply]:
    """The errors every route of its kind can answer, in the route's dialect."""
    envelope = OpenAIError if operation.dialect == "openai" else ErrorEnvelope
    replies = [
        Reply(400, "A parameter or header is malformed, or the body is not JSON/UTF-8", envelope)
    ]
    if operation.tenant:
        replies.append(Reply(401, "No bearer token, or an unknown one", envelope))
    if any(param.location == "path" for param in operation.params):
        replies.append(Reply(404, "Not found in the caller's namespace", envelope))
    if operation.body is not None:
        replies += [
            Reply(
                413,
                "The body is larger than `limits.max_body_bytes`, or a query larger than the bus "
                "carries (`field: input`)",
                envelope,
            ),
            Reply(422, "A body field is invalid; `field`/`param` names it", envelope),
        ]
    replies += [
        Reply(500, "An unexpected failure of the broker (a bug)", envelope),
        Reply(503, "NATS or Kubernetes is unavailable; retry later", envelope, headers=RETRY_AFTER),
    ]
    return replies


def _sse_event(data: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 reads a ``text/event-stream`` schema as one event;
    3.2 calls it ``itemSchema``): ``id`` the resume position where resumable (a chunk's ``seq``, an event's stream sequence), ``data`` a JSON
    document of the reply's type, or ``[DONE]`` at the end. Comments (``: connected``,
    ``: heartbeat``) are not events."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string", "enum": ["message"]},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": data,
                    },
                ]
            },
        },
    }


def _alternatives(sse: Any) -> tuple[Any, ...]:
    """The types an event of ``sse`` may be (a tuple of them, one type, or none)."""
    if sse is None:
        return ()
    return tuple(sse) if isinstance(sse, tuple) else (sse,)


def _content(reply: Reply, refs: Mapping[Any, dict[str, Any]]) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if reply.body is not None:
        content["application/json"] = {"schema": refs[reply.body]}
    if reply.sse is not None:
        kinds = _alternatives(reply.sse)
        data = refs[kinds[0]] if len(kinds) == 1 else {"anyOf": [refs[kind] for kind in kinds]}
        content["text/event-stream"] = {"schema": _sse_event(data)}
    return content or None


def _parameter(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.location,
        "description": param.description,
        "required": param.required or param.location == "path",
        "schema": dict(param.schema),
    }


def openapi_document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (deterministic: same code, same bytes)."""
    operations = list(operations)
    replies: dict[str, list[Reply]] = {}
    for op in operations:
        # A route's own reply for a status replaces the generic one (e.g. readyz's 503).
        by_status = {reply.status: reply for reply in _error_replies(op)}
        by_status.update({reply.status: reply for reply in op.replies})
        replies[op.operation_id] = [by_status[status] for status in sorted(by_status)]
    types: list[Any] = []
    for op in operations:
        candidates = [op.body, *(r.body for r in replies[op.operation_id])]
        for reply in replies[op.operation_id]:
            candidates += _alternatives(reply.sse)
        for type_ in candidates:
            if type_ is not None and type_ not in types:
                types.append(type_)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
        }
        if op.description:
            entry["description"] = op.description
        params = [*op.params, NAMESPACE] if op.tenant else list(op.params)
        if params:
            entry["parameters"] = [_parameter(p) for p in params]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[op.body]}},
            }
        responses: dict[str, Any] = {}
        for reply in replies[op.operation_id]:
            answer: dict[str, Any] = {"description": reply.description}
            content = _content(reply, refs)
            if content is not None:
                answer["content"] = content
            if reply.headers:
                answer["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in reply.headers.items()
                }
            if reply.links:
                answer["links"] = {
                    operation_id[0].upper() + operation_id[1:]: {
                        "operationId": operation_id,
                        "parameters": dict(parameters),
                    }
                    for operation_id, parameters in reply.links.items()
                }
            responses[str(reply.status)] = answer
        entry["responses"] = responses
        if op.tenant:
            # Optional in the document: with `auth.mode: none` no route needs a token.
            entry["security"] = [{"bearer": []}, {}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ark-mesh broker",
            "version": API_VERSION,
            "description": "Broker mode of ark-mesh: Ark's query API without etcd (and, with "
            "`reconciliation: direct`, as Query resources), ark-api's query, agent, model, team "
            "and tool routes, SSE streams with Last-Event-ID resume, operation events, cancel, "
            "and OpenAI-compatible models, chat completions and embeddings. Errors use Ark's "
            "broker envelope, and OpenAI's error object under /openai/v1.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A tenant's token (`auth.mode: token`).",
                }
            },
        },
    }


def openapi_text(operations: Iterable[Operation]) -> str:
    """The document as checked in: sorted keys, two-space indent, a final newline."""
    return json.dumps(openapi_document(operations), indent=2, sort_keys=True) + "\n"
