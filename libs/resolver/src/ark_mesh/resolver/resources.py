"""Kinds and annotation keys the resolver reads, as names local to the resolver.

Every kind lives in the contracts (``ark_mesh.contracts.KINDS``); the resolver reads a subset.
"""

from __future__ import annotations

from ark_mesh.contracts import KINDS, MCPServer, MCPServerSpec, MCPServerStatus, Resource, ark

__all__ = ["ANNOTATIONS", "RESOLVER_KINDS", "MCPServer", "MCPServerSpec", "MCPServerStatus"]

_READ = ("Query", "Agent", "Model", "Team", "Tool", "Memory", "A2AServer", "MCPServer")
RESOLVER_KINDS: dict[str, type[Resource]] = {
    name: KINDS[name] for name in (*_READ, "ConfigMap", "Secret")
}
"""Every kind the resolver reads, by ``kind`` name: what a query's resolution can reach (the
kinds Ark serves beyond these, such as Evaluators or ArkConfig, are never read while resolving,
so no service that resolves needs permission to read them)."""


class ANNOTATIONS:
    """Annotation keys the resolver reads (it never writes metadata)."""

    A2A_CONTEXT_ID = ark.A2A_CONTEXT_ID_ANNOTATION
    A2A_SERVER_ADDRESS = ark.A2A_SERVER_ADDRESS_ANNOTATION
    A2A_SERVER_NAME = ark.A2A_SERVER_NAME_ANNOTATION
