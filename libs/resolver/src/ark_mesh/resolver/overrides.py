"""Header overrides (``spec.overrides``) for calls to Models and MCP servers.

Agent-level overrides apply first and query-level overrides win on conflict, matching Ark. An
override without a ``labelSelector`` applies to every resource of its type; with one, only to
resources whose labels match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ark_mesh.contracts import Override
from ark_mesh.resolver.selectors import as_wire, matches
from ark_mesh.resolver.values import ValueResolver

__all__ = ["override_headers"]


async def override_headers(
    values: ValueResolver,
    *,
    resource_type: Literal["model", "mcpserver"],
    labels: Mapping[str, str] | None,
    agent_overrides: Sequence[Override] | None,
    query_overrides: Sequence[Override] | None,
) -> dict[str, str]:
    """Headers for one Model or MCP server: agent-level first, then query-level on top."""
    headers: dict[str, str] = {}
    for level, overrides in (("agent", agent_overrides), ("query", query_overrides)):
        for override in overrides or []:
            if override.resource_type != resource_type:
                continue
            if not matches(as_wire(override.label_selector), labels):
                continue
            headers.update(
                await values.headers(
                    override.headers, what=f"{level}-level {resource_type} override"
                )
            )
    return headers
