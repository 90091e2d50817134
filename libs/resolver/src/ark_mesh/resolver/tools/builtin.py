"""Built-in tools: ``noop``, ``terminate`` and the selector's ``select-next-speaker``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ark_mesh.resolver.errors import ConfigurationError
from ark_mesh.resolver.outcome import Signal
from ark_mesh.resolver.tools.base import ToolExecutor, ToolResult, function_definition

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = [
    "NOOP",
    "SELECT_NEXT_SPEAKER",
    "TERMINATE",
    "NoopTool",
    "SelectNextSpeakerTool",
    "TerminateTool",
    "builtin_tool",
]

NOOP = "noop"
TERMINATE = "terminate"
SELECT_NEXT_SPEAKER = "select-next-speaker"


class NoopTool:
    """Does nothing and says so: its result is the arguments it was given."""

    name = NOOP
    kind = "builtin"

    def definition(self) -> dict[str, Any]:
        return function_definition(
            NOOP,
            "Does nothing; returns the message it was given.",
            {"type": "object", "properties": {"message": {"type": "string"}}},
        )

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        message = arguments.get("message")
        return ToolResult(message if isinstance(message, str) else json.dumps(dict(arguments)))


class TerminateTool:
    """Ends the conversation (a team stops; its closing words are ``response``)."""

    name = TERMINATE
    kind = "builtin"

    def definition(self) -> dict[str, Any]:
        return function_definition(
            TERMINATE,
            "End the conversation. Give the final response to the user in 'response'.",
            {
                "type": "object",
                "properties": {"response": {"type": "string"}},
                "required": ["response"],
            },
        )

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        response = arguments.get("response")
        text = response if isinstance(response, str) else ""
        return ToolResult(text, signal=Signal("terminate", text))


class SelectNextSpeakerTool:
    """The selector's choice: ``name`` is an enum of the members allowed to speak next."""

    name = SELECT_NEXT_SPEAKER
    kind = "builtin"

    def __init__(self, candidates: Sequence[str]) -> None:
        self.candidates = list(candidates)

    def definition(self) -> dict[str, Any]:
        return function_definition(
            SELECT_NEXT_SPEAKER,
            "Select the team member who speaks next.",
            {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": self.candidates}},
                "required": ["name"],
            },
        )

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        chosen = arguments.get("name")
        text = chosen if isinstance(chosen, str) else ""
        return ToolResult(text, signal=Signal("selection", text))


def builtin_tool(name: str) -> ToolExecutor:
    if name == NOOP:
        return NoopTool()
    if name == TERMINATE:
        return TerminateTool()
    raise ConfigurationError(f"unknown built-in tool '{name}' (known: {NOOP}, {TERMINATE})")
