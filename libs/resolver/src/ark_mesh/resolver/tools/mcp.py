"""MCP tools (Tool ``type: mcp``): a call to a tool of an MCP server over streamable HTTP.

Each call opens a client session (the ``mcp`` package's ``Client`` over
``streamable_http_client``), calls the tool and closes it, so no session outlives the query or
crosses a cancellation. A result flagged ``isError`` is *fed back* to the model (that is what the
flag is for); protocol and transport failures are tool errors and fail the query.

:func:`list_mcp_tools` opens the same kind of session to list a server's tools, for the
MCPServer controller's discovery.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ark_mesh.resolver.errors import ToolExecutionError
from ark_mesh.resolver.tools.base import ToolResult, function_definition

if TYPE_CHECKING:
    # ``mcp`` (with pydantic, starlette and httpx) is imported when a session opens: a process
    # that never calls an MCP server does not carry its ~50 MiB (issue 14).
    from mcp import Client

    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "MCPDiscoveryError",
    "MCPTool",
    "MCPToolInfo",
    "list_mcp_tools",
]

DEFAULT_CONNECT_TIMEOUT = 30.0


@asynccontextmanager
async def _session(
    url: str, headers: Mapping[str, str], connect_timeout: float, call_timeout: float | None
) -> AsyncIterator[Client]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(connect_timeout, read=call_timeout)
    async with (
        httpx2.AsyncClient(headers=dict(headers), timeout=timeout) as http,
        Client(
            streamable_http_client(url, http_client=http),
            read_timeout_seconds=call_timeout,
            cache=None,
        ) as client,
    ):
        yield client


@dataclass(frozen=True, slots=True)
class MCPToolInfo:
    """One tool an MCP server lists: what a Tool resource of type ``mcp`` is built from."""

    name: str
    description: str | None
    input_schema: dict[str, Any] | None


class MCPDiscoveryError(Exception):
    """Listing failed. ``stage`` says where: ``connect`` (no session could be opened: address,
    transport, handshake) or ``list`` (connected, but ``tools/list`` failed), because Ark reports
    the two differently."""

    def __init__(self, stage: Literal["connect", "list"], message: str) -> None:
        self.stage = stage
        super().__init__(message)


async def list_mcp_tools(
    url: str, headers: Mapping[str, str], *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> list[MCPToolInfo]:
    """Every tool the MCP server at ``url`` lists (all pages), in the server's order."""
    stage: Literal["connect", "list"] = "connect"
    tools: list[MCPToolInfo] = []
    try:
        async with _session(url, headers, connect_timeout, connect_timeout) as client:
            stage = "list"
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += [
                    MCPToolInfo(tool.name, tool.description, dict(tool.input_schema or {}) or None)
                    for tool in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    return tools
    except Exception as exc:
        raise MCPDiscoveryError(stage, str(_innermost(exc))) from exc


class MCPTool:
    kind = "mcp"

    def __init__(
        self,
        *,
        name: str,
        description: str | None,
        input_schema: Mapping[str, Any] | None,
        url: str,
        tool_name: str,
        headers: Mapping[str, str],
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float | None = None,
    ) -> None:
        self.name = name
        self._description = description
        self._schema = input_schema
        self.url = url
        self.tool_name = tool_name
        self.headers = dict(headers)
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout

    def definition(self) -> dict[str, Any]:
        return function_definition(self.name, self._description, self._schema)

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        from mcp import MCPError
        from mcp.types import TextContent

        try:
            async with _session(
                self.url, self.headers, self._connect_timeout, self._call_timeout
            ) as client:
                result = await client.call_tool(self.tool_name, dict(arguments))
        except Exception as exc:
            # The client runs its transport in a task group: failures arrive wrapped.
            cause = _innermost(exc)
            verb = "refused the call" if isinstance(cause, MCPError) else "failed"
            raise ToolExecutionError(
                self.name, f"tool '{self.name}': MCP server {self.url} {verb}: {cause}"
            ) from exc
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content)
        if result.is_error:
            return ToolResult("", error=text or f"tool '{self.tool_name}' reported an error")
        return ToolResult(text)


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
