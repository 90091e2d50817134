"""``status.phase`` and ``lastResolvedAddress`` of the kinds that are just an address: Memory and
ExecutionEngine.

The address ValueSource is resolved the way the resolver resolves it for every call (literal,
ConfigMap, Secret, or a Service's in-cluster URL), so what the status shows is the address queries
will use. Both kinds share one handler because Ark's two controllers do the same thing and differ
only in their wording; an Agent running on an ExecutionEngine waits for this ``phase: ready``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ark_mesh.contracts import ExecutionEngine, Memory, Resource, ValueSource
from ark_mesh.controller.resource_controllers.skeleton import Event, Observed, ReconcileContext
from ark_mesh.resolver import ResolutionError, ValueResolver

__all__ = ["AddressResolution", "engine_address", "memory_address"]


@dataclass
class AddressResolution:
    """Resolves ``spec.address`` of ``kind``; ``resolved`` is Ark's success message for it."""

    kind: type[Memory] | type[ExecutionEngine]
    resolved: str
    events: bool = False
    watches: tuple[type[Resource], ...] = ()

    async def reconcile(self, obj: Memory | ExecutionEngine, ctx: ReconcileContext) -> Observed:
        address_source: ValueSource | None = obj.spec.address
        values = ValueResolver(ctx.store, obj.metadata.namespace or "")
        try:
            if address_source is None:
                raise ResolutionError("spec.address is not set")
            address = await values.value(address_source, what="address")
        except ResolutionError as exc:
            message = f"Failed to resolve address: {exc}"
            return Observed(
                status={"phase": "error", "message": message},
                events=self._event("Warning", "AddressResolutionFailed", message),
            )
        if not address:
            return Observed(
                status={"phase": "error", "message": "Invalid address: address cannot be empty"}
            )
        return Observed(
            status={"lastResolvedAddress": address, "phase": "ready", "message": self.resolved},
            events=self._event("Normal", "AddressResolved", f"Address resolved: {address}"),
        )

    def _event(self, type_: str, reason: str, message: str) -> tuple[Event, ...]:
        if not self.events:
            return ()
        return (Event(reason, message, "Warning" if type_ == "Warning" else "Normal"),)

    async def aclose(self) -> None:
        return None


def memory_address() -> AddressResolution:
    return AddressResolution(Memory, "Memory address resolved and validated")


def engine_address() -> AddressResolution:
    return AddressResolution(
        ExecutionEngine, "ExecutionEngine address resolved successfully", events=True
    )
