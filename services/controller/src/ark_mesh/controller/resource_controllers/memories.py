"""Memory ``status.phase`` and ``lastResolvedAddress``: the address ValueSource resolved the way
the resolver resolves it for every call (literal, ConfigMap, Secret, or a Service's in-cluster
URL), so what the status shows is the address queries will use."""

from __future__ import annotations

from ark_mesh.contracts import Memory, Resource
from ark_mesh.controller.resource_controllers.skeleton import Observed, ReconcileContext
from ark_mesh.resolver import ResolutionError, ValueResolver

__all__ = ["MemoryAddress"]


class MemoryAddress:
    kind = Memory
    watches: tuple[type[Resource], ...] = ()

    async def reconcile(self, memory: Memory, ctx: ReconcileContext) -> Observed:
        values = ValueResolver(ctx.store, memory.metadata.namespace or "")
        try:
            address = await values.value(memory.spec.address, what="address")
        except ResolutionError as exc:
            return Observed(
                status={"phase": "error", "message": f"Failed to resolve address: {exc}"}
            )
        if not address:
            return Observed(
                status={"phase": "error", "message": "Invalid address: address cannot be empty"}
            )
        return Observed(
            status={
                "lastResolvedAddress": address,
                "phase": "ready",
                "message": "Memory address resolved and validated",
            }
        )

    async def aclose(self) -> None:
        return None
