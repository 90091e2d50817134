"""Resource kinds the resolver reads that the shared contracts do not (yet) define.

Ark's ``MCPServer`` (``ark.mckinsey.com/v1alpha1``) is needed to call MCP tools: a Tool of type
``mcp`` only names its server, and the server holds the address, headers and timeouts. It is
declared here with the same conventions as the contracts' resources (camelCase on the wire,
REST coordinates as class attributes), so any :class:`~ark_mesh.resolver.ports.ResourceStore`
that handles contracts kinds generically handles it too.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from ark_mesh.contracts import KINDS, Condition, Header, Resource, ValueSource, ark

__all__ = ["ANNOTATIONS", "RESOLVER_KINDS", "MCPServer", "MCPServerSpec", "MCPServerStatus"]


class MCPServerSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    address: ValueSource
    headers: list[Header] | None = None
    transport: Literal["http", "sse"] = "http"
    timeout: str | None = None
    tool_call_timeout: str | None = None
    description: str | None = None


class MCPServerStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    resolved_address: str | None = None
    tool_count: int | None = None
    conditions: list[Condition] | None = None


class MCPServer(Resource):
    KIND: ClassVar[str] = "MCPServer"
    PLURAL: ClassVar[str] = "mcpservers"

    spec: MCPServerSpec
    status: MCPServerStatus | None = None


RESOLVER_KINDS: dict[str, type[Resource]] = {**KINDS, MCPServer.KIND: MCPServer}
"""Every kind the resolver reads, by ``kind`` name."""


class ANNOTATIONS:
    """Annotation keys the resolver reads (it never writes metadata)."""

    A2A_CONTEXT_ID = ark.A2A_CONTEXT_ID_ANNOTATION
    A2A_SERVER_ADDRESS = ark.A2A_SERVER_ADDRESS_ANNOTATION
    # Set by Ark's A2AServer discovery on the Agents it creates; not (yet) in the contracts.
    A2A_SERVER_NAME = "ark.mckinsey.com/a2a-server-name"
