"""Partial tools: a Tool exposed with some parameters hidden and filled in at call time.

The model sees the tool's schema without the partial's parameters; each call gets their values
(literal, ConfigMap, Secret or query parameter) injected into its arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ark_mesh.resolver.tools.base import ToolExecutor, ToolResult

if TYPE_CHECKING:
    from ark_mesh.resolver.context import QueryRun, Scope

__all__ = ["PartialTool"]


class PartialTool:
    def __init__(self, base: ToolExecutor, fixed: Mapping[str, str]) -> None:
        self._base = base
        self.fixed = dict(fixed)

    @property
    def name(self) -> str:
        return self._base.name

    @property
    def kind(self) -> str:
        return self._base.kind

    def definition(self) -> dict[str, Any]:
        definition = copy.deepcopy(self._base.definition())
        schema = definition["function"].get("parameters") or {}
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for hidden in self.fixed:
                properties.pop(hidden, None)
        if isinstance(schema.get("required"), list):
            schema["required"] = [r for r in schema["required"] if r not in self.fixed]
        return definition

    async def execute(
        self, run: QueryRun, scope: Scope, arguments: Mapping[str, Any]
    ) -> ToolResult:
        return await self._base.execute(run, scope, {**arguments, **self.fixed})
