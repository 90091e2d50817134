"""A small MCP server over streamable HTTP, built with the ``mcp`` package, for MCP tool tests.

Tools: ``add(a, b)``, ``echo(text)``, ``fail(message)`` (always an ``isError`` result, the way a
broken tool looks to a client) and ``slow(seconds)`` (for timeouts and cancellation).

The ``mcp`` server is an ASGI (Starlette) application, so it is served by uvicorn — not aiohttp
like the project's other servers — in a thread with its own event loop: a test that blocks its
loop cannot stall the server, and uvicorn does not touch the test process's signal handlers
(it only installs them on the main thread). Every HTTP request's headers and every tool call are
recorded so tests can assert what the client sent (e.g. header overrides).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["MCPTestServer"]


@dataclass
class MCPTestServer:
    """An MCP server on a free loopback port; ``url`` is its streamable-HTTP endpoint."""

    name: str = "ark-mesh-test-tools"
    startup_timeout: float = 30.0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list, init=False)
    headers: list[dict[str, str]] = field(default_factory=list, init=False)
    _server: uvicorn.Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _url: str | None = field(default=None, init=False)

    def _build(self) -> MCPServer:
        mcp = MCPServer(self.name, log_level="WARNING")

        @mcp.tool(description="Add two integers.")
        def add(a: int, b: int) -> int:
            self.calls.append(("add", {"a": a, "b": b}))
            return a + b

        @mcp.tool(description="Return the text unchanged.")
        def echo(text: str) -> str:
            self.calls.append(("echo", {"text": text}))
            return text

        @mcp.tool(description="Always fails with the given message.")
        def fail(message: str = "tool failed") -> str:
            self.calls.append(("fail", {"message": message}))
            raise ToolError(message)

        @mcp.tool(description="Sleep for the given number of seconds, then answer.")
        async def slow(seconds: float) -> str:
            self.calls.append(("slow", {"seconds": seconds}))
            await asyncio.sleep(seconds)
            return f"slept {seconds}s"

        return mcp

    def _recording(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await app(scope, receive, send)

        return recorded

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = self._recording(self._build().streamable_http_app())
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"mcp-test-server-{port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        async with asyncio.timeout(self.startup_timeout):
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the MCP test server exited during start-up")
                await asyncio.sleep(0.01)
        self._url = f"http://127.0.0.1:{port}/mcp"

    async def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            await asyncio.to_thread(self._thread.join, 30)
            self._server = self._thread = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the MCP test server is not started")
        return self._url
