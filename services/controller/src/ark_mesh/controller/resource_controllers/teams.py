"""Team ``Available``: every agent member exists and is Available (team members are not checked,
as in Ark). The first reconcile of a Team records Ark's ``TeamCreated`` event, and every change
of the verdict a ``StatusChanged`` event."""

from __future__ import annotations

from typing import Literal

from ark_mesh.contracts import Agent, Resource, Team
from ark_mesh.controller.resource_controllers.agents import AVAILABLE
from ark_mesh.controller.resource_controllers.skeleton import (
    Event,
    Observed,
    ReconcileContext,
    Ref,
    condition,
    condition_is_true,
    find_condition,
)

__all__ = ["TeamAvailability"]


class TeamAvailability:
    kind = Team
    watches: tuple[type[Resource], ...] = (Agent,)

    async def reconcile(self, team: Team, ctx: ReconcileContext) -> Observed:
        namespace = team.metadata.namespace or ""
        members = [
            Ref(Agent.KIND, namespace, member.name)
            for member in team.spec.members
            if member.type == "agent"
        ]
        available, reason, message = True, "Available", "All team members are available"
        if not team.spec.members:
            available, reason, message = False, "NoMembers", "Team has no members configured"
        for ref in members:
            agent, error = await ctx.lookup(Agent, ref)
            if error is not None:
                reason, message = (
                    "MemberCheckFailed",
                    f"Failed to check agent member {ref.name}: {error}",
                )
            elif agent is None:
                reason, message = "MemberNotFound", f"Agent member {ref.name} not found"
            elif not condition_is_true(agent, AVAILABLE):
                reason, message = "MemberNotAvailable", f"Agent member {ref.name} is not available"
            else:
                continue
            available = False
            break
        status: Literal["True", "False"] = "True" if available else "False"
        events = [Event("StatusChanged", f"Team availability: {status} - {reason}")]
        if find_condition(team, AVAILABLE) is None:
            events.insert(0, Event("TeamCreated", "Initialized team conditions"))
        return Observed(
            conditions=[condition(AVAILABLE, status, reason, message)],
            events=events,
            depends_on=members,
        )

    async def aclose(self) -> None:
        return None
