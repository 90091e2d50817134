"""Kinds and annotation keys the resolver reads, as names local to the resolver.

Every kind now lives in the contracts (``ark_mesh.contracts.KINDS``, including ``MCPServer``);
these names stay so code written against the resolver keeps working.
"""

from __future__ import annotations

from ark_mesh.contracts import KINDS, MCPServer, MCPServerSpec, MCPServerStatus, Resource, ark

__all__ = ["ANNOTATIONS", "RESOLVER_KINDS", "MCPServer", "MCPServerSpec", "MCPServerStatus"]

RESOLVER_KINDS: dict[str, type[Resource]] = KINDS
"""Every kind the resolver reads, by ``kind`` name."""


class ANNOTATIONS:
    """Annotation keys the resolver reads (it never writes metadata)."""

    A2A_CONTEXT_ID = ark.A2A_CONTEXT_ID_ANNOTATION
    A2A_SERVER_ADDRESS = ark.A2A_SERVER_ADDRESS_ANNOTATION
    A2A_SERVER_NAME = ark.A2A_SERVER_NAME_ANNOTATION
