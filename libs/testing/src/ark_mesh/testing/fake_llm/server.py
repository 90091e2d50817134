"""The fake model server: a real aiohttp HTTP server speaking OpenAI's wire protocol.

Endpoints: ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/responses`` (JSON and SSE),
``POST /v1/embeddings``, ``GET /v1/models``, and the Azure deployment paths
(``/openai/deployments/<name>/chat/completions`` and ``/embeddings``) so an Azure client can be
pointed at it too. Control endpoints let a test (or another process) script it while it runs:
``POST /_fake/rules`` adds rules, ``GET /_fake/rules`` lists them, ``GET /_fake/requests`` returns
every received request (body, headers, query, and how it ended), ``POST /_fake/reset`` forgets
requests and test-added rules.

Each recorded request ends with an ``outcome``: ``completed``, ``error`` (scripted or bad
request), ``dropped`` (the script cut the connection) or ``client_disconnected`` (the client went
away mid-answer — what a resolver's cancel must cause).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import msgspec
from aiohttp import web

from ark_mesh.testing.fake_llm.script import (
    DEFAULT_MODELS,
    Endpoint,
    ModelRequest,
    Reply,
    Rule,
    RuleBook,
    Script,
    ScriptError,
    parse_rules,
)
from ark_mesh.testing.fake_llm.wire import (
    Answer,
    BadRequestError,
    answer_for,
    chat_chunks,
    chat_completion,
    default_reply,
    embedding_inputs,
    embeddings_response,
    error_body,
    parse_request,
    responses_events,
    responses_object,
)

__all__ = ["FakeModelServer", "Outcome", "RecordedRequest"]

Outcome = Literal["pending", "completed", "error", "dropped", "client_disconnected"]


@dataclass
class RecordedRequest:
    """One request as the server saw it; ``outcome`` is updated when the answer ends."""

    id: int
    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    outcome: Outcome = "pending"
    rule: str | None = None

    def header(self, name: str) -> str | None:
        """Header value by case-insensitive name."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


class _DropConnectionError(Exception):
    """The script asked to cut the connection (after ``response`` was started, if any)."""

    def __init__(self, response: web.StreamResponse | None = None) -> None:
        super().__init__("connection dropped by script")
        self.response = response


@dataclass
class FakeModelServer:
    """An OpenAI-compatible server on a free loopback port, scripted by rules.

    Use as ``async with FakeModelServer() as fake:`` and point clients at ``fake.base_url``.
    """

    script: Script = field(default_factory=Script)
    _rules: RuleBook = field(default_factory=RuleBook, init=False)
    _requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _url: str | None = field(default=None, init=False)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), init=False)

    def __post_init__(self) -> None:
        self._rules.add(self.script.rules, permanent=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/chat/completions", self._chat),
                web.post("/openai/deployments/{deployment}/chat/completions", self._chat),
                web.post("/v1/responses", self._responses),
                web.post("/v1/embeddings", self._embeddings),
                web.post("/openai/deployments/{deployment}/embeddings", self._embeddings),
                web.get("/v1/models", self._models),
                web.post("/_fake/rules", self._add_rules),
                web.get("/_fake/rules", self._list_rules),
                web.get("/_fake/requests", self._list_requests),
                web.post("/_fake/reset", self._reset),
            ]
        )
        # handler_cancellation: a client that hangs up mid-stream must be visible immediately,
        # not only at the next write, so tests can assert that a cancel closed the stream.
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._url = f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._url is None:
            raise RuntimeError("the fake model server is not started")
        return self._url

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return f"{self.url}/v1"

    # ------------------------------------------------------------------ scripting

    def add_rule(self, rule: Rule | Mapping[str, Any]) -> None:
        self.add_rules([rule])

    def add_rules(self, rules: Sequence[Rule | Mapping[str, Any]]) -> None:
        """Append rules (Structs, or mappings in the script-file shape) after existing ones."""
        parsed = [r if isinstance(r, Rule) else parse_rules(r)[0] for r in rules]
        self._rules.add(parsed)

    def reset(self) -> None:
        """Forget recorded requests and test-added rules; rewind the script's rules."""
        self._rules.reset()
        self._requests.clear()
        self._notify()

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """Recorded requests for ``chat``, ``responses`` or ``embeddings``."""
        return [r for r in self._requests if r.endpoint == endpoint]

    async def wait_until(
        self, predicate: Callable[[list[RecordedRequest]], bool]
    ) -> list[RecordedRequest]:
        """Wait (event-driven) until ``predicate(requests)`` holds; bound it with
        ``asyncio.timeout`` at the call site."""
        while True:
            changed = self._changed
            if predicate(self.requests):
                return self.requests
            await changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ handlers

    async def _record(self, request: web.Request, endpoint: str) -> tuple[RecordedRequest, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        record = RecordedRequest(
            id=next(self._ids),
            method=request.method,
            path=request.path,
            endpoint=endpoint,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
        )
        self._requests.append(record)
        self._notify()
        return record, body

    def _finish(self, record: RecordedRequest, outcome: Outcome) -> None:
        record.outcome = outcome
        self._notify()

    async def _answer(
        self,
        request: web.Request,
        endpoint: Endpoint,
        respond: Callable[[RecordedRequest, Any, ModelRequest, Reply], Any],
    ) -> web.StreamResponse:
        record, body = await self._record(request, endpoint)
        try:
            if isinstance(body, dict) and "deployment" in request.match_info:
                body.setdefault("model", request.match_info["deployment"])
            model_request = parse_request(endpoint, body, request.headers)
        except BadRequestError as exc:
            self._finish(record, "error")
            return _error_response(400, str(exc), "invalid_request_error")
        picked = self._rules.pick(model_request)
        if picked is None:
            reply = default_reply(model_request)
        else:
            record.rule, reply = picked[0].name, picked[1]
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.error is not None:
                self._finish(record, "error")
                response = web.json_response(error_body(reply.error), status=reply.error.status)
                if reply.error.retry_after is not None:
                    response.headers["Retry-After"] = f"{reply.error.retry_after:g}"
                return response
            result: web.StreamResponse = await respond(record, body, model_request, reply)
        except _DropConnectionError as dropped:
            self._finish(record, "dropped")
            if request.transport is not None:
                request.transport.close()
            return dropped.response or web.Response(status=500)
        except (asyncio.CancelledError, ConnectionResetError):
            self._finish(record, "client_disconnected")
            raise
        self._finish(record, "completed")
        return result

    def _mint_call_id(self) -> str:
        return f"call_{next(self._ids):06d}"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        async def respond(
            record: RecordedRequest, body: Any, model_request: ModelRequest, reply: Reply
        ) -> web.StreamResponse:
            answer = answer_for(reply, model_request, self._mint_call_id)
            completion_id = f"chatcmpl-fake-{record.id:06d}"
            created = int(time.time())
            if not body.get("stream"):
                if reply.drop_after == 0:
                    raise _DropConnectionError
                return web.json_response(
                    chat_completion(
                        answer, model=model_request.model, id=completion_id, created=created
                    )
                )
            options = body.get("stream_options") or {}
            chunks = chat_chunks(
                answer,
                model=model_request.model,
                id=completion_id,
                created=created,
                include_usage=reply.stream_usage and bool(options.get("include_usage")),
            )
            return await _stream_sse(request, ((None, c) for c in chunks), reply, done=True)

        return await self._answer(request, "chat", respond)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        async def respond(
            record: RecordedRequest, body: Any, model_request: ModelRequest, reply: Reply
        ) -> web.StreamResponse:
            answer: Answer = answer_for(reply, model_request, self._mint_call_id)
            response_id = f"fake{record.id:06d}"
            created = int(time.time())
            if not body.get("stream"):
                if reply.drop_after == 0:
                    raise _DropConnectionError
                return web.json_response(
                    responses_object(
                        answer, model=model_request.model, id=response_id, created=created
                    )
                )
            events = responses_events(
                answer, model=model_request.model, id=response_id, created=created
            )
            return await _stream_sse(request, ((e["type"], e) for e in events), reply, done=False)

        return await self._answer(request, "responses", respond)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        async def respond(
            record: RecordedRequest, body: Any, model_request: ModelRequest, reply: Reply
        ) -> web.StreamResponse:
            dimensions = body.get("dimensions")
            return web.json_response(
                embeddings_response(
                    embedding_inputs(body),
                    model=model_request.model,
                    dimensions=dimensions if isinstance(dimensions, int) and dimensions > 0 else 16,
                    encoding_format=str(body.get("encoding_format") or "float"),
                    usage=reply.usage,
                )
            )

        return await self._answer(request, "embeddings", respond)

    async def _models(self, request: web.Request) -> web.Response:
        names = dict.fromkeys([*self.script.models, *DEFAULT_MODELS])
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        return web.json_response({"object": "list", "data": data})

    async def _add_rules(self, request: web.Request) -> web.Response:
        try:
            rules = parse_rules(await request.json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error_response(400, "body must be JSON", "invalid_request_error")
        except ScriptError as exc:
            return _error_response(400, str(exc), "invalid_request_error")
        self._rules.add(rules)
        return web.json_response({"added": len(rules)}, status=201)

    async def _list_rules(self, request: web.Request) -> web.Response:
        return web.json_response({"rules": msgspec.to_builtins(self._rules.rules)})

    async def _list_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": msgspec.to_builtins(self._requests)})

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


def _error_response(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


async def _stream_sse(
    request: web.Request,
    items: Iterable[tuple[str | None, dict[str, Any]]],
    reply: Reply,
    *,
    done: bool,
) -> web.StreamResponse:
    """Write SSE events, pacing them by ``chunk_delay`` and cutting after ``drop_after``."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    for index, (event, data) in enumerate(items):
        if reply.drop_after is not None and index >= reply.drop_after:
            raise _DropConnectionError(response)
        if index and reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        prefix = f"event: {event}\n" if event else ""
        await response.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
    if done:
        await response.write(b"data: [DONE]\n\n")
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
