"""Agents and teams called as tools: ``{"input": "..."}`` in, their final answer out.

The called agent gets the input as its only user message, no history and no memory, and its
tokens are not streamed (Ark's agents-as-tools are silent); its token usage still counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ark_mesh.resolver.errors import ToolExecutionError
from ark_mesh.resolver.tools.base import Delegate, ToolResult, function_definition

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["DelegateTool"]

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The request for the agent"}},
    "required": ["input"],
}


class DelegateTool:
    """Runs agent or team ``target`` through the engine when the model calls ``name``."""

    def __init__(
        self,
        *,
        name: str,
        description: str | None,
        kind: Literal["agent", "team"],
        target: str,
        delegate: Delegate,
    ) -> None:
        self.name = name
        self.kind = kind
        self.target = target
        self._description = description or f"Ask the {kind} '{target}'"
        self._delegate = delegate

    def definition(self) -> dict[str, Any]:
        return function_definition(self.name, self._description, INPUT_SCHEMA)

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        text = arguments.get("input")
        if not isinstance(text, str):
            raise ToolExecutionError(
                self.name, f"tool '{self.name}': the 'input' argument must be a string"
            )
        answer = await self._delegate.run_member_for_tool(run, scope, self.kind, self.target, text)
        if not answer:
            raise ToolExecutionError(
                self.name, f"{self.kind} '{self.target}' returned no assistant message content"
            )
        return ToolResult(answer)
