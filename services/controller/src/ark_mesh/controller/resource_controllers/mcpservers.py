"""MCPServer discovery: list the server's tools over MCP and keep one ``Tool`` (type ``mcp``) per
tool, owned by the server, named and labelled as Ark names them (``<server>-<tool>``, label
``mcp/server``); ``toolCount`` and the ``Available`` / ``Discovering`` conditions with Ark's
reasons. The listing is a background check (it goes over the network); creating, updating and
deleting the Tools happens in the reconcile, against the cache, so it is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ark_mesh.contracts import DurationError, MCPServer, Resource, Tool, parse_duration
from ark_mesh.controller.resource_controllers.skeleton import (
    Event,
    Observed,
    ReconcileContext,
    Ref,
    condition,
    find_condition,
    inherited_annotations,
    owner_reference,
    poll_interval,
)
from ark_mesh.kube import KubeError
from ark_mesh.resolver import (
    MCPDiscoveryError,
    MCPToolInfo,
    ResolutionError,
    ValueResolver,
    list_mcp_tools,
)

__all__ = ["MCP_SERVER_LABEL", "MCPServerDiscovery", "mcp_tool_name"]

MCP_SERVER_LABEL = "mcp/server"
AVAILABLE = "Available"
DISCOVERING = "Discovering"
DEFAULT_TIMEOUT = 30.0


def mcp_tool_name(server: str, tool: str) -> str:
    """Ark's Tool name for a discovered tool: RFC 1123 friendly (``_`` → ``-``, lower case)."""
    return f"{server}-{tool.replace('_', '-').lower()}"


@dataclass(frozen=True, slots=True)
class Listing:
    tools: tuple[MCPToolInfo, ...] = ()
    error: MCPDiscoveryError | None = None


def _tool_body(server: MCPServer, info: MCPToolInfo) -> dict[str, Any]:
    namespace = server.metadata.namespace or ""
    spec: dict[str, Any] = {"type": "mcp"}
    if info.description:
        spec["description"] = info.description
    if info.input_schema is not None:
        spec["inputSchema"] = info.input_schema
    spec["mcp"] = {
        "mcpServerRef": {"name": server.metadata.name, "namespace": namespace},
        "toolName": info.name,
    }
    metadata: dict[str, Any] = {
        "name": mcp_tool_name(server.metadata.name, info.name),
        "namespace": namespace,
        "labels": {MCP_SERVER_LABEL: server.metadata.name},
        "ownerReferences": [owner_reference(server, controller=True)],
    }
    if annotations := inherited_annotations(server):
        metadata["annotations"] = annotations
    return {
        "apiVersion": Tool.api_version_string(),
        "kind": Tool.KIND,
        "metadata": metadata,
        "spec": spec,
    }


def _same_spec(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return bool(stored.get("spec") == desired["spec"])


def _replace_spec(stored: dict[str, Any], desired: Mapping[str, Any]) -> None:
    stored["spec"] = desired["spec"]


def _seconds(text: str | None) -> float:
    try:
        return parse_duration(text).total_seconds() if text else DEFAULT_TIMEOUT
    except DurationError:
        return DEFAULT_TIMEOUT


class MCPServerDiscovery:
    kind = MCPServer
    watches: tuple[type[Resource], ...] = (Tool,)

    async def reconcile(self, server: MCPServer, ctx: ReconcileContext) -> Observed:
        interval = poll_interval(server.spec.poll_interval)
        namespace = server.metadata.namespace or ""
        values = ValueResolver(ctx.store, namespace)
        what = f"MCP server '{server.metadata.name}'"
        try:
            address = await values.required(server.spec.address, what=f"{what} address")
            headers = await values.headers(server.spec.headers, what=what)
        except (ResolutionError, KubeError) as exc:
            return Observed(
                conditions=[
                    condition(
                        AVAILABLE,
                        "False",
                        "AddressResolutionFailed",
                        "Server not ready due to address resolution failure",
                    ),
                    condition(
                        DISCOVERING,
                        "False",
                        "AddressResolutionFailed",
                        "Cannot attempt discovery due to address resolution failure",
                    ),
                ],
                events=[
                    Event("AddressResolutionFailed", f"Failed to resolve address: {exc}", "Warning")
                ],
                requeue_after=interval,
            )
        transport = server.spec.transport or "http"
        timeout = _seconds(server.spec.timeout)

        async def listing() -> Listing:
            if transport != "http":
                return Listing(
                    error=MCPDiscoveryError(
                        "connect", f"transport '{transport}' is not supported (use http)"
                    )
                )
            try:
                return Listing(
                    tuple(await list_mcp_tools(address, headers, connect_timeout=timeout))
                )
            except MCPDiscoveryError as exc:
                return Listing(error=exc)

        fingerprint = (server.metadata.generation, address, tuple(sorted(headers.items())))
        result = ctx.checks.latest(
            ctx.ref,
            fingerprint,
            interval,
            listing,
            lambda seconds: Listing(
                error=MCPDiscoveryError("connect", f"no answer within {seconds:g}s")
            ),
        )
        status: dict[str, Any] = {"resolvedAddress": address}
        if result is None:
            if find_condition(server, AVAILABLE) is not None:
                return Observed(status=status, requeue_after=interval)
            return Observed(
                status=status,
                conditions=[
                    condition(
                        AVAILABLE, "Unknown", "Initializing", "MCPServer is being initialized"
                    ),
                    condition(DISCOVERING, "True", "Starting", "Starting tool discovery process"),
                ],
                requeue_after=interval,
            )
        if result.error is not None and result.error.stage == "connect":
            children = await self._sync(server, ctx, [])
            return Observed(
                status={**status, "toolCount": 0},
                conditions=[
                    condition(
                        AVAILABLE,
                        "False",
                        "ClientCreationFailed",
                        "Server not ready due to client creation failure",
                    ),
                    condition(
                        DISCOVERING,
                        "False",
                        "ClientCreationFailed",
                        "Cannot attempt discovery due to client creation failure",
                    ),
                ],
                events=[
                    Event(
                        "ClientCreationFailed",
                        f"Failed to create MCP client: {result.error}",
                        "Warning",
                    )
                ],
                depends_on=children,
                requeue_after=interval,
            )
        if result.error is not None:
            return Observed(
                status=status,
                conditions=[
                    condition(
                        DISCOVERING,
                        "True",
                        "ServerConnectedAndToolListingFailed",
                        str(result.error),
                    ),
                    condition(
                        AVAILABLE,
                        "False",
                        "ToolListingFailed",
                        "Server not ready due to tool listing failure",
                    ),
                ],
                events=[
                    Event("ToolListingFailed", f"Failed to list tools: {result.error}", "Warning")
                ],
                requeue_after=interval,
            )
        try:
            children = await self._sync(server, ctx, result.tools)
        except KubeError as exc:
            message = f"Failed to create tools: {exc}"
            return Observed(
                status=status,
                conditions=[condition(AVAILABLE, "False", "ToolCreationFailed", message)],
                events=[Event("ToolCreationFailed", message, "Warning")],
                requeue_after=interval,
            )
        count = len(result.tools)
        return Observed(
            status={**status, "toolCount": count},
            conditions=[
                condition(DISCOVERING, "False", "DiscoveryComplete", "Tool discovery completed"),
                condition(
                    AVAILABLE, "True", "ToolsDiscovered", f"Successfully discovered {count} tools"
                ),
            ],
            depends_on=children,
            requeue_after=interval,
        )

    @staticmethod
    async def _sync(
        server: MCPServer, ctx: ReconcileContext, tools: Sequence[MCPToolInfo]
    ) -> list[Ref]:
        return await ctx.sync_children(
            server,
            Tool,
            MCP_SERVER_LABEL,
            [_tool_body(server, info) for info in tools],
            same=_same_spec,
            update=_replace_spec,
        )

    async def aclose(self) -> None:
        return None
