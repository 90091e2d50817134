"""What every tool kind provides, and what tools may ask of the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ark_mesh.resolver.outcome import Signal

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["Delegate", "ToolExecutor", "ToolResult", "function_definition"]


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer. ``error`` is text fed back to the model (not a failure of the query);
    ``signal`` ends the agent's turn (terminate, select-next-speaker)."""

    content: str
    error: str | None = None
    signal: Signal | None = None

    @property
    def text(self) -> str:
        """What the model sees in the ``tool`` message."""
        return self.error if self.error is not None else self.content


class ToolExecutor(Protocol):
    """One callable tool. Failures that must fail the query raise ToolExecutionError."""

    @property
    def name(self) -> str:
        """The function name the model calls."""
        ...

    @property
    def kind(self) -> str:
        """``http``, ``mcp``, ``agent``, ``team``, ``builtin`` — the event's ``toolType``."""
        ...

    def definition(self) -> dict[str, Any]:
        """The OpenAI ``{"type": "function", "function": {...}}`` definition."""
        ...

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult: ...


class Delegate(Protocol):
    """Runs another agent or team for a tool (agent-as-tool), returning its final text."""

    async def run_member_for_tool(
        self, run: QueryRun, scope: Scope, kind: Literal["agent", "team"], name: str, text: str
    ) -> str: ...


def function_definition(
    name: str, description: str | None, parameters: Mapping[str, Any] | None
) -> dict[str, Any]:
    schema = dict(parameters) if parameters else {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": name, "parameters": schema}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}
