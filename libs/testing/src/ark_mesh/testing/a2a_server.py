"""A small A2A agent over HTTP (aiohttp) for tests of A2A-backed agents.

It speaks the part of A2A (protocol 0.3) the resolver uses: JSON-RPC 2.0 ``message/send`` on
``POST /`` and the agent card at ``/.well-known/agent.json`` and ``/.well-known/agent-card.json``.
By default it is a *message counter*, like the agent of Ark's ``a2a-message-context`` test: it
counts messages per ``contextId`` (echoing the caller's, or minting one), so a test can prove a
conversation continued ("Message 2 ...") or started afresh ("Message 1 ..."). ``mode="task"``
answers with a Task (with an artifact) instead of a Message; ``message_in_task`` makes a Message
reply name the task it belongs to (A2A 0.3 ``Message.taskId``, one fresh task per request, as an
agent that opens a task for each request and answers within it); ``error`` answers with a JSON-RPC
error; ``delay`` holds the answer back (timeouts, cancellation). ``task_ids`` lists the task ids
handed out, in order, so a test can tell which one reached the caller's status.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

from aiohttp import web

__all__ = ["A2ATestServer", "ReceivedA2ARequest"]

JSONRPC_PARSE_ERROR = -32700
JSONRPC_INVALID_REQUEST = -32600
JSONRPC_METHOD_NOT_FOUND = -32601
JSONRPC_INVALID_PARAMS = -32602
JSONRPC_SERVER_ERROR = -32000


@dataclass(frozen=True)
class ReceivedA2ARequest:
    """A JSON-RPC request as received, with its HTTP headers."""

    headers: dict[str, str]
    body: Any


def _counting_reply(text: str, context_id: str, count: int) -> str:
    return f"Message {count} in this conversation. You said: {text}"


@dataclass
class A2ATestServer:
    """An A2A agent on a free loopback port; ``url`` is the JSON-RPC endpoint."""

    name: str = "counter-agent"
    description: str = "Counts the messages of each conversation"
    mode: Literal["message", "task"] = "message"
    task_state: str = "completed"
    message_in_task: bool = False
    reply: Callable[[str, str, int], str] = _counting_reply
    error: str | None = None
    delay: float = 0.0
    received: list[ReceivedA2ARequest] = field(default_factory=list, init=False)
    contexts: dict[str, int] = field(default_factory=dict, init=False)
    task_ids: list[str] = field(default_factory=list, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _url: str | None = field(default=None, init=False)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.post("/", self._rpc),
                web.get("/.well-known/agent.json", self._card),
                web.get("/.well-known/agent-card.json", self._card),
            ]
        )
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
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
        if self._url is None:
            raise RuntimeError("the A2A test server is not started")
        return self._url

    def agent_card(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "url": f"{self.url}/",
            "version": "1.0.0",
            "protocolVersion": "0.3.0",
            "preferredTransport": "JSONRPC",
            "capabilities": {"streaming": False, "pushNotifications": False},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [
                {
                    "id": "count",
                    "name": "count messages",
                    "description": self.description,
                    "tags": ["test"],
                }
            ],
        }

    async def _card(self, request: web.Request) -> web.Response:
        return web.json_response(self.agent_card())

    async def _rpc(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _rpc_error(None, JSONRPC_PARSE_ERROR, "request body is not JSON")
        self.received.append(ReceivedA2ARequest(dict(request.headers), body))
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
            return _rpc_error(None, JSONRPC_INVALID_REQUEST, "not a JSON-RPC 2.0 request")
        rpc_id = body.get("id")
        if body.get("method") != "message/send":
            return _rpc_error(
                rpc_id, JSONRPC_METHOD_NOT_FOUND, f"unknown method {body.get('method')!r}"
            )
        message = (body.get("params") or {}).get("message")
        if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
            return _rpc_error(rpc_id, JSONRPC_INVALID_PARAMS, "params.message.parts is required")
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            return _rpc_error(rpc_id, JSONRPC_SERVER_ERROR, self.error)
        text = "".join(
            part.get("text", "")
            for part in message["parts"]
            if isinstance(part, dict) and part.get("kind", "text") == "text"
        )
        context_id = message.get("contextId") or str(uuid.uuid4())
        self.contexts[context_id] = self.contexts.get(context_id, 0) + 1
        answer = self.reply(text, context_id, self.contexts[context_id])
        reply_message = {
            "kind": "message",
            "messageId": str(uuid.uuid4()),
            "role": "agent",
            "parts": [{"kind": "text", "text": answer}],
            "contextId": context_id,
        }
        if self.mode == "message" and not self.message_in_task:
            return web.json_response({"jsonrpc": "2.0", "id": rpc_id, "result": reply_message})
        task_id = str(uuid.uuid4())
        self.task_ids.append(task_id)
        if self.mode == "message":
            reply_message["taskId"] = task_id
            return web.json_response({"jsonrpc": "2.0", "id": rpc_id, "result": reply_message})
        task = {
            "kind": "task",
            "id": task_id,
            "contextId": context_id,
            "status": {
                "state": self.task_state,
                "timestamp": datetime.now(UTC).isoformat(),
                "message": {**reply_message, "taskId": task_id},
            },
            "artifacts": [
                {"artifactId": str(uuid.uuid4()), "parts": [{"kind": "text", "text": answer}]}
            ],
            "history": [message],
        }
        return web.json_response({"jsonrpc": "2.0", "id": rpc_id, "result": task})


def _rpc_error(rpc_id: Any, code: int, message: str) -> web.Response:
    return web.json_response(
        {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}
    )
