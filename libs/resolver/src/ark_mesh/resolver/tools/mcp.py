"""MCP tools (Tool ``type: mcp``): a call to a tool of an MCP server over streamable HTTP.

Each call opens a client session (the ``mcp`` package's ``Client`` over
``streamable_http_client``), calls the tool and closes it, so no session outlives the query or
crosses a cancellation. A result flagged ``isError`` is *fed back* to the model (that is what the
flag is for); protocol and transport failures are tool errors and fail the query.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from ark_mesh.resolver.errors import ToolExecutionError
from ark_mesh.resolver.tools.base import ToolResult, function_definition

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "MCPTool"]

DEFAULT_CONNECT_TIMEOUT = 30.0


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
        timeout = httpx2.Timeout(self._connect_timeout, read=self._call_timeout)
        try:
            async with (
                httpx2.AsyncClient(headers=self.headers, timeout=timeout) as http,
                Client(
                    streamable_http_client(self.url, http_client=http),
                    read_timeout_seconds=self._call_timeout,
                    cache=None,
                ) as client,
            ):
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
