"""Runs the members of a query: agents and teams by name, nested teams, agents as tools.

The :class:`MemberRunner` is what agents and teams call back into: a team runs its members
through :meth:`MemberRunner.run_member` (it knows it only as the
:class:`~ark_mesh.resolver.team.Members` protocol, so ``team`` does not import this module), and
an agent's ``agent``/``team`` tools run through :meth:`MemberRunner.run_member_for_tool` (the
:class:`~ark_mesh.resolver.tools.Delegate` protocol). (Not to be confused with Ark's
``spec.executionEngine``, which names where an agent runs.) It also refuses team cycles (a team that contains
itself, directly or through nested teams) instead of recursing until the timeout.
"""

from __future__ import annotations

from typing import Literal

from ark_mesh.contracts import Agent, Team, TeamMember
from ark_mesh.resolver.agent import AgentRunner
from ark_mesh.resolver.context import QueryRun, Scope
from ark_mesh.resolver.errors import InvalidSpecError, ResourceNotFoundError
from ark_mesh.resolver.outcome import Outcome, last_assistant_text
from ark_mesh.resolver.ports import ChatMessage
from ark_mesh.resolver.team import TeamRunner
from ark_mesh.resolver.tools.registry import ToolSet

__all__ = ["MemberRunner"]


class MemberRunner:
    """Runs agents and teams of one query run; remembers the teams on the way to refuse cycles."""

    def __init__(self, run: QueryRun) -> None:
        self.run = run
        self._teams: list[str] = []

    async def run_agent(
        self,
        scope: Scope,
        agent: Agent,
        user_input: str,
        history: list[ChatMessage],
        *,
        tools: ToolSet | None = None,
        tool_choice: str | None = None,
    ) -> Outcome:
        runner = AgentRunner(self.run, agent, self)
        return await runner.execute(
            scope, user_input, history, tools=tools, tool_choice=tool_choice
        )

    async def run_team(
        self, scope: Scope, team: Team, user_input: str, history: list[ChatMessage]
    ) -> Outcome:
        name = team.metadata.name
        if name in self._teams:
            cycle = " -> ".join([*self._teams, name])
            raise InvalidSpecError(f"team cycle: {cycle}")
        self._teams.append(name)
        try:
            return await TeamRunner(self.run, team, self).execute(scope, user_input, history)
        finally:
            self._teams.pop()

    async def _load(
        self, kind: Literal["agent", "team"], name: str, referenced_by: str
    ) -> Agent | Team:
        found: Agent | Team | None
        if kind == "agent":
            found = await self.run.store.get(Agent, self.run.namespace, name)
        else:
            found = await self.run.store.get(Team, self.run.namespace, name)
        if found is None:
            raise ResourceNotFoundError(
                "Agent" if kind == "agent" else "Team",
                self.run.namespace,
                name,
                referenced_by=referenced_by,
            )
        return found

    async def run_member(
        self,
        scope: Scope,
        member: TeamMember,
        user_input: str,
        history: list[ChatMessage],
        *,
        referenced_by: str,
    ) -> Outcome:
        resource = await self._load(member.type, member.name, referenced_by)
        if isinstance(resource, Agent):
            return await self.run_agent(scope, resource, user_input, history)
        return await self.run_team(scope, resource, user_input, history)

    async def run_member_for_tool(
        self, run: QueryRun, scope: Scope, kind: Literal["agent", "team"], name: str, text: str
    ) -> str:
        resource = await self._load(kind, name, f"agent '{scope.agent}' tool")
        silent = Scope(team=scope.team, stream=False)
        if isinstance(resource, Agent):
            outcome = await self.run_agent(silent, resource, text, [])
        else:
            outcome = await self.run_team(silent, resource, text, [])
        return last_assistant_text(outcome.messages)
