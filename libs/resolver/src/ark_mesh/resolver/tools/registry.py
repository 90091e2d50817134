"""Building an agent's tools from its spec, and calling them as the model asks.

``spec.tools`` entries name a built-in, or else a Tool resource, whatever their ``type`` (for a
partial tool, ``partial.name`` is the resource and the entry's ``name`` is what the model sees):
as in Ark, ``{type: agent, name: X}`` is the Tool ``X`` of type ``agent``, which names the Agent
to delegate to, not an Agent called ``X``. A Tool resource becomes an HTTP, MCP, agent, team or
built-in executor by its ``spec.type``.

Each tool also gets a :class:`ToolPolicy`: whether a human must approve its calls (the agent
entry's ``approval``), whether running it twice is harmless (``spec.annotations`` MCP hints
``idempotentHint`` / ``readOnlyHint``; built-ins are), and whether it is a *container* that
runs other steps (an agent or team used as a tool). :meth:`ToolSet.call` uses it with the run's
step log (:mod:`ark_mesh.resolver.journal`): a recorded call is replayed, a denied call gets
Ark's rejection text as its result, a call with side effects is bracketed so a crash in the
middle is known, and such a call cut off by a crash runs again only if it is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ark_mesh.contracts import Agent, AgentTool, Override, Tool, ToolApproval
from ark_mesh.contracts.approvals import ToolStep, decision_result
from ark_mesh.contracts.durations import parse_duration
from ark_mesh.contracts.errors import DurationError
from ark_mesh.resolver.errors import (
    ConfigurationError,
    InterruptedToolCallError,
    InvalidSpecError,
    ResourceNotFoundError,
    ToolExecutionError,
)
from ark_mesh.resolver.outcome import Signal
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

__all__ = ["ToolPolicy", "ToolSet", "policy_for", "tool_from_resource", "tools_for_agent"]

CONTAINER_KINDS = frozenset({"agent", "team"})
"""Tool kinds that run other steps (an agent or a team used as a tool)."""
HARMLESS_KINDS = frozenset({"builtin"})
"""Tool kinds without side effects (noop, terminate, select-next-speaker)."""


@dataclass(frozen=True)
class ToolPolicy:
    """How the engine treats calls of one tool (see the module docstring)."""

    approval: ToolApproval | None = None
    idempotent: bool = False
    container: bool = False

    @property
    def gated(self) -> bool:
        return bool(self.approval is not None and self.approval.required)


def policy_for(executor: ToolExecutor, tool: Tool | None, entry: AgentTool | None) -> ToolPolicy:
    """The policy of ``executor``, built from its Tool resource (if any) and agent entry."""
    hints = (tool.spec.annotations if tool is not None else None) or {}
    return ToolPolicy(
        approval=entry.approval if entry is not None else None,
        idempotent=executor.kind in HARMLESS_KINDS
        or hints.get("idempotentHint") is True
        or hints.get("readOnlyHint") is True,
        container=executor.kind in CONTAINER_KINDS,
    )


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
) -> tuple[ToolExecutor, ToolPolicy]:
    owner = f"agent '{agent.metadata.name}'"
    if entry.type in ("built-in", "builtin"):
        builtin = builtin_tool(entry.name)
        return builtin, policy_for(builtin, None, entry)
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
    policy = policy_for(executor, tool, entry)
    if entry.partial is not None and entry.partial.parameters:
        fixed = await run.values.parameters(
            entry.partial.parameters, what=f"{owner} partial tool '{entry.name}'"
        )
        return PartialTool(executor, fixed), policy
    return executor, policy


async def tools_for_agent(run: QueryRun, agent: Agent, delegate: Delegate) -> ToolSet:
    tools = [await _agent_tool(run, agent, entry, delegate) for entry in agent.spec.tools or []]
    return ToolSet([executor for executor, _ in tools], {e.name: p for e, p in tools})


class ToolSet:
    """An agent's callable tools, keyed by the name the model uses, with their policies."""

    def __init__(
        self,
        tools: Sequence[ToolExecutor] = (),
        policies: Mapping[str, ToolPolicy] | None = None,
    ) -> None:
        self._tools: dict[str, ToolExecutor] = {}
        self._policies: dict[str, ToolPolicy] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ConfigurationError(f"two tools are exposed under the name '{tool.name}'")
            self._tools[tool.name] = tool
            self._policies[tool.name] = (policies or {}).get(tool.name) or policy_for(
                tool, None, None
            )

    def __bool__(self) -> bool:
        return bool(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition() for tool in self._tools.values()]

    def approval_of(self, call: Mapping[str, Any]) -> ToolApproval | None:
        """The approval settings of a call's tool, when a human must approve it."""
        policy = self._policies.get(_name(call))
        return policy.approval if policy is not None and policy.gated else None

    def waits_for_approval(self, run: QueryRun, call: Mapping[str, Any]) -> bool:
        """Whether this call must stop the run: its tool is gated, the log does not already
        hold its result, and no decision about it was given."""
        call_id = str(call.get("id") or "")
        return (
            self.approval_of(call) is not None
            and not run.journal.recorded(call_id)
            and run.journal.decision_for_call(call_id) is None
        )

    async def call(self, run: QueryRun, scope: Scope, call: dict[str, Any]) -> ToolResult:
        """Run one tool call of the model, reported as a ``ToolCall`` operation.

        The run's step log decides first: a recorded result is returned as recorded, a denied
        approval answers with Ark's rejection text; only then is the tool executed (bracketed
        in the log when it has side effects) and its result recorded.
        """
        name = _name(call)
        call_id = str(call.get("id") or "")
        tool = self._tools.get(name)
        policy = self._policies.get(name, ToolPolicy())
        recorded = run.journal.replay_tool(call_id, name, container=policy.container)
        if recorded is not None:
            return _result(recorded)
        decision = run.journal.decision_for_call(call_id) if policy.gated else None
        denial = decision_result(decision) if decision is not None else None
        if denial is not None:
            result = ToolResult(content="", error=denial)
            await run.journal.tool_done(_step(call_id, name, result))
            return result
        if tool is not None and not policy.container and not policy.idempotent:
            if run.journal.interrupted_call == call_id:
                raise InterruptedToolCallError(name)
            await run.journal.tool_starting(call_id)
        result = await self._execute(run, scope, call, name, tool)
        await run.journal.tool_done(_step(call_id, name, result))
        return result

    async def _execute(
        self,
        run: QueryRun,
        scope: Scope,
        call: Mapping[str, Any],
        name: str,
        tool: ToolExecutor | None,
    ) -> ToolResult:
        raw_arguments = str((call.get("function") or {}).get("arguments") or "{}")
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


def _name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


def _step(call_id: str, name: str, result: ToolResult) -> ToolStep:
    signal = result.signal
    return ToolStep(
        call_id=call_id,
        name=name,
        text=signal.value if signal is not None else result.content,
        error=result.error,
        signal=signal.kind if signal is not None else None,
    )


def _result(step: ToolStep) -> ToolResult:
    if step.signal is not None:
        return ToolResult(content=step.text, signal=Signal(step.signal, step.text))
    if step.error is not None:
        return ToolResult(content="", error=step.error)
    return ToolResult(content=step.text)
