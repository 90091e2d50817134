"""Ark's resource controllers: status (and discovered children) of Models, Agents, Teams, Tools,
Memories, ExecutionEngines, MCP servers, A2A servers and approval A2ATasks, on one shared reconcile skeleton.

:class:`ResourceControllers` is the skeleton (:mod:`.skeleton`); each kind contributes one
handler that computes what the status should be. :func:`ark_handlers` is the set Ark runs.
"""

from __future__ import annotations

from typing import Any

from ark_mesh.controller.resource_controllers.a2aservers import A2AServerDiscovery
from ark_mesh.controller.resource_controllers.a2atasks import ApprovalTasks
from ark_mesh.controller.resource_controllers.addresses import (
    AddressResolution,
    engine_address,
    memory_address,
)
from ark_mesh.controller.resource_controllers.agents import AgentAvailability
from ark_mesh.controller.resource_controllers.mcpservers import MCPServerDiscovery
from ark_mesh.controller.resource_controllers.models import ModelAvailability
from ark_mesh.controller.resource_controllers.skeleton import (
    BackgroundChecks,
    Event,
    KindHandler,
    Observed,
    ReconcileContext,
    Ref,
    ResourceControllers,
)
from ark_mesh.controller.resource_controllers.teams import TeamAvailability
from ark_mesh.controller.resource_controllers.tools import ToolReadiness
from ark_mesh.resolver import OpenAIModelClient

__all__ = [
    "A2AServerDiscovery",
    "AddressResolution",
    "AgentAvailability",
    "ApprovalTasks",
    "BackgroundChecks",
    "Event",
    "KindHandler",
    "MCPServerDiscovery",
    "ModelAvailability",
    "Observed",
    "ReconcileContext",
    "Ref",
    "ResourceControllers",
    "TeamAvailability",
    "ToolReadiness",
    "ark_handlers",
]


def ark_handlers(*, probe_timeout: float) -> list[KindHandler[Any]]:
    """One handler per kind Ark's controller manager reconciles (besides Queries). Model probes
    get their own client without retries: a probe reports the provider as it is right now."""
    return [
        ModelAvailability(OpenAIModelClient(max_retries=0, timeout=probe_timeout)),
        AgentAvailability(),
        TeamAvailability(),
        ToolReadiness(),
        memory_address(),
        engine_address(),
        MCPServerDiscovery(),
        A2AServerDiscovery(),
        ApprovalTasks(),
    ]
