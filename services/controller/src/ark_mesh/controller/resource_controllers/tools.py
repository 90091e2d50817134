"""Tool ``status.state``: a Tool that decodes (the API server has validated its schema) is
``Ready``, which is all Ark's tool controller checks for the types ark-mesh serves."""

from __future__ import annotations

from ark_mesh.contracts import Resource, Tool
from ark_mesh.controller.resource_controllers.skeleton import Observed, ReconcileContext

__all__ = ["ToolReadiness"]

READY = {"state": "Ready", "message": "Tool configuration is valid"}


class ToolReadiness:
    kind = Tool
    watches: tuple[type[Resource], ...] = ()

    async def reconcile(self, tool: Tool, ctx: ReconcileContext) -> Observed:
        return Observed(status=READY)

    async def aclose(self) -> None:
        return None
