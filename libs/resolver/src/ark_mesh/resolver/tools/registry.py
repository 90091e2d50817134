"""Building an agent's tools from its spec, and calling them as the model asks.

``spec.tools`` entries name a built-in, or else a Tool resource, whatever their ``type`` (for a
partial tool, ``partial.name`` is the resource and the entry's ``name`` is what the model sees):
as in Ark, ``{type: agent, name: X}`` is the Tool ``X`` of type ``agent``, which names the Agent
to delegate to, not an Agent called ``X``. A Tool resource becomes an HTTP, MCP, agent, team or
built-in executor by its ``spec.type``.
Tools gated behind human approval are refused with a clear error rather than run unguarded:
ark-mesh does not implement the approval round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ark_mesh.contracts import Agent, AgentTool, Override, Tool
from ark_mesh.contracts.durations import parse_duration
from ark_mesh.contracts.errors import DurationError
from ark_mesh.resolver.errors import (
    ConfigurationError,
    InvalidSpecError,
    ResourceNotFoundError,
    ToolExecutionError,
)
from ark_mesh.resolver.overrides import override_headers
from ark_mesh.resolver.resources import MCPServer
from ark_mesh.resolver.tools.base import Delegate, ToolExecutor, ToolResult
from ark_mesh.resolver.tools.builtin import builtin_tool
from ark_mesh.resolver.tools.delegate import DelegateTool
from ark_mesh.resolver.tools.http import DEFAULT_TIMEOUT, HTTPTool
from ark_mesh.resolver.tools.mcp import DEFAULT_CONNECT_TIMEOUT, MCPTool
from ark_mesh.resolver.tools.partial import PartialTool
from ark_mesh.resolver.values import ValueResolver

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["ToolSet", "tool_from_resource", "tools_for_agent"]


def _seconds(text: str | None, default: float | None, what: str) -> float | None:
    if not text:
        return default
    try:
        return parse_duration(text).total_seconds()
    except DurationError as exc:
        raise InvalidSpecError(f"{what}: {exc}") from exc


async def _mcp_tool(
    run: QueryRun,
    tool: Tool,
    *,
    exposed_name: str,
    description: str | None,
    agent_overrides: Sequence[Override] | None,
) -> MCPTool:
    spec = tool.spec.mcp
    if spec is None:
        raise ConfigurationError(f"tool '{tool.metadata.name}' is of type mcp but has no spec.mcp")
    namespace = spec.mcp_server_ref.namespace or run.namespace
    server = await run.store.get(MCPServer, namespace, spec.mcp_server_ref.name)
    if server is None:
        raise ResourceNotFoundError(
            "MCPServer",
            namespace,
            spec.mcp_server_ref.name,
            referenced_by=f"tool '{tool.metadata.name}'",
        )
    values = (
        run.values
        if namespace == run.namespace
        else ValueResolver(run.store, namespace, run.values.query_parameters)
    )
    what = f"MCP server '{server.metadata.name}'"
    address = (server.status.resolved_address if server.status else None) or await values.required(
        server.spec.address, what=f"{what} address"
    )
    if (server.spec.transport or "http") != "http":
        raise ConfigurationError(
            f"{what}: transport '{server.spec.transport}' is not supported (use http)"
        )
    headers = await values.headers(server.spec.headers, what=what)
    headers.update(
        await override_headers(
            run.values,
            resource_type="mcpserver",
            labels=server.metadata.labels,
            agent_overrides=agent_overrides,
            query_overrides=run.request.spec.overrides,
        )
    )
    return MCPTool(
        name=exposed_name,
        description=description,
        input_schema=tool.spec.input_schema,
        url=address,
        tool_name=spec.tool_name,
        headers=headers,
        connect_timeout=_seconds(server.spec.timeout, DEFAULT_CONNECT_TIMEOUT, what)
        or DEFAULT_CONNECT_TIMEOUT,
        call_timeout=_seconds(server.spec.tool_call_timeout, None, what),
    )


async def tool_from_resource(
    run: QueryRun,
    tool: Tool,
    *,
    delegate: Delegate,
    exposed_name: str | None = None,
    description: str | None = None,
    agent_overrides: Sequence[Override] | None = None,
) -> ToolExecutor:
    """The executor for a Tool resource, exposed to the model as ``exposed_name``."""
    name = exposed_name or tool.metadata.name
    about = description or tool.spec.description
    what = f"tool '{tool.metadata.name}'"
    kind = tool.spec.type
    if kind == "http":
        spec = tool.spec.http
        if spec is None:
            raise ConfigurationError(f"{what} is of type http but has no spec.http")
        return HTTPTool(
            name=name,
            description=about,
            input_schema=tool.spec.input_schema,
            spec=spec,
            headers=await run.values.headers(spec.headers, what=what),
            body_values=await run.values.parameters(spec.body_parameters, what=what),
            timeout=_seconds(spec.timeout, DEFAULT_TIMEOUT, what) or DEFAULT_TIMEOUT,
        )
    if kind == "mcp":
        return await _mcp_tool(
            run, tool, exposed_name=name, description=about, agent_overrides=agent_overrides
        )
    if kind in ("agent", "team"):
        ref = tool.spec.agent if kind == "agent" else tool.spec.team
        if ref is None:
            raise ConfigurationError(f"{what} is of type {kind} but has no spec.{kind}")
        return DelegateTool(
            name=name, description=about, kind=kind, target=ref.name, delegate=delegate
        )
    return builtin_tool(tool.metadata.name)


async def _agent_tool(
    run: QueryRun, agent: Agent, entry: AgentTool, delegate: Delegate
) -> ToolExecutor:
    owner = f"agent '{agent.metadata.name}'"
    if entry.approval is not None and entry.approval.required:
        raise ConfigurationError(
            f"{owner}: tool '{entry.name}' requires human approval, which ark-mesh does not "
            "support yet; remove approval.required to run it"
        )
    if entry.type in ("built-in", "builtin"):
        return builtin_tool(entry.name)
    resource_name = entry.partial.name if entry.partial and entry.partial.name else entry.name
    tool = await run.store.get(Tool, run.namespace, resource_name)
    if tool is None:
        raise ResourceNotFoundError("Tool", run.namespace, resource_name, referenced_by=owner)
    executor = await tool_from_resource(
        run,
        tool,
        delegate=delegate,
        exposed_name=entry.name,
        description=entry.description,
        agent_overrides=agent.spec.overrides,
    )
    if entry.partial is not None and entry.partial.parameters:
        fixed = await run.values.parameters(
            entry.partial.parameters, what=f"{owner} partial tool '{entry.name}'"
        )
        return PartialTool(executor, fixed)
    return executor


async def tools_for_agent(run: QueryRun, agent: Agent, delegate: Delegate) -> ToolSet:
    tools = [await _agent_tool(run, agent, entry, delegate) for entry in agent.spec.tools or []]
    return ToolSet(tools)


class ToolSet:
    """An agent's callable tools, keyed by the name the model uses."""

    def __init__(self, tools: Sequence[ToolExecutor] = ()) -> None:
        self._tools: dict[str, ToolExecutor] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ConfigurationError(f"two tools are exposed under the name '{tool.name}'")
            self._tools[tool.name] = tool

    def __bool__(self) -> bool:
        return bool(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition() for tool in self._tools.values()]

    async def call(self, run: QueryRun, scope: Scope, call: dict[str, Any]) -> ToolResult:
        """Run one tool call of the model, reported as a ``ToolCall`` operation."""
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        raw_arguments = str(function.get("arguments") or "{}")
        tool = self._tools.get(name)
        data = {
            "toolName": name,
            "toolType": tool.kind if tool else "unknown",
            "toolId": str(call.get("id") or ""),
            "parameters": raw_arguments,
        }
        if scope.agent:
            data["agent"] = scope.agent
        async with run.report.operation("ToolCall", f"Calling tool {name}", data) as details:
            if tool is None:
                raise ToolExecutionError(
                    name, f"the model called tool '{name}', which the agent does not have"
                )
            try:
                arguments = json.loads(raw_arguments) if raw_arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ToolExecutionError(
                    name, f"tool '{name}': arguments are not valid JSON: {exc}"
                ) from exc
            if not isinstance(arguments, dict):
                raise ToolExecutionError(name, f"tool '{name}': arguments must be a JSON object")
            result = await tool.execute(run, scope, arguments)
            details["result"] = result.text[:1000]
            if result.error is not None:
                details["toolError"] = result.error
        return result
