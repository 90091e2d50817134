"""Running a Team: members take turns on a shared transcript.

Every member sees the history plus everything said so far in this run, then the user's input,
and its assistant messages are stamped with ``name`` = the member's name so the transcript says
who spoke. Strategies:

* ``sequential`` — each member once, in order; with ``loops``, round after round until
  ``maxTurns`` (then the system message "Team conversation reached maximum turns limit (N)" is
  added and the query still ends ``done``) or a member calls ``terminate``;
* ``selector`` — before each turn a selector agent chooses the next speaker through the
  ``select-next-speaker`` tool, whose ``name`` enum lists the candidates (with ``graph.edges``
  only the current member's successors; a single successor is taken without asking). An invalid
  or missing choice ends the team with a warning message, as in Ark. Older Teams name a Model
  instead of an agent (``selector.model``): the selector prompt then runs on that Model, and
  besides the tool call a plain answer that is exactly a candidate's name is accepted, which is
  what those Teams' prompts ask for ("Return only the exact name of the selected participant").

Legacy strategies are migrated the way Ark's webhook does: ``round-robin`` becomes sequential
(looping when ``maxTurns`` is set), ``graph`` becomes sequential and its edges are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ark_mesh.contracts import (
    Agent,
    AgentSpec,
    ModelRef,
    ObjectMeta,
    Team,
    TeamMember,
    TeamSelector,
    TokenUsage,
)
from ark_mesh.resolver.context import QueryRun, Scope
from ark_mesh.resolver.errors import InvalidSpecError, ResourceNotFoundError
from ark_mesh.resolver.outcome import Outcome, last_assistant_text
from ark_mesh.resolver.ports import ChatMessage
from ark_mesh.resolver.templates import render
from ark_mesh.resolver.tools.builtin import SelectNextSpeakerTool, TerminateTool
from ark_mesh.resolver.tools.registry import ToolSet

__all__ = ["DEFAULT_SELECTOR_PROMPT", "Members", "TeamRunner", "max_turns_message"]


class Members(Protocol):
    """What a team asks of whoever runs it: run a member (agent or nested team) and run a
    selector agent with its own tools. :class:`~ark_mesh.resolver.members.MemberRunner`
    provides it; naming the protocol here keeps this module from importing that one, which
    imports this one to run teams."""

    async def run_member(
        self,
        scope: Scope,
        member: TeamMember,
        user_input: str,
        history: list[ChatMessage],
        *,
        referenced_by: str,
    ) -> Outcome: ...

    async def run_agent(
        self,
        scope: Scope,
        agent: Agent,
        user_input: str,
        history: list[ChatMessage],
        *,
        tools: ToolSet | None = None,
        tool_choice: str | None = None,
    ) -> Outcome: ...


DEFAULT_SELECTOR_PROMPT = """You coordinate a conversation between these team members:
{{.Roles}}

Conversation so far:
{{.History}}

Decide which member should speak next. Choose one of: {{.Participants}}."""

_SELECT_INSTRUCTION = "Use the select-next-speaker tool to name the next speaker."
_TERMINATE_INSTRUCTION = (
    "If the user's request has been fully answered, call the terminate tool instead of "
    "choosing a speaker."
)


def max_turns_message(limit: int) -> str:
    return f"Team conversation reached maximum turns limit ({limit})"


def selector_model(selector: TeamSelector | None) -> str | None:
    """The Model an older Team's selector names (``selector.model``), if any."""
    return (selector.model or None) if selector is not None else None


@dataclass(frozen=True)
class _Plan:
    strategy: str
    loops: bool
    edges: dict[str, list[str]]


def _plan(team: Team) -> _Plan:
    spec = team.spec
    name = team.metadata.name
    strategy: str = spec.strategy or "sequential"
    loops = bool(spec.loops)
    edges: dict[str, list[str]] = {}
    if strategy == "round-robin":
        strategy, loops = "sequential", spec.max_turns is not None
    elif strategy == "graph":
        strategy = "sequential"
    elif strategy == "selector":
        for edge in (spec.graph.edges if spec.graph else None) or []:
            edges.setdefault(edge.from_, []).append(edge.to)
        if spec.selector is None or not (spec.selector.agent or selector_model(spec.selector)):
            raise InvalidSpecError(
                f"team '{name}': the selector strategy needs selector.agent (or, in older "
                "Teams, selector.model)"
            )
    if (loops or strategy == "selector") and not spec.max_turns:
        needs = "the selector strategy" if strategy == "selector" else "a looping sequential team"
        raise InvalidSpecError(f"team '{name}': maxTurns is required for {needs}")
    return _Plan(strategy, loops, edges)


def _usage_since(before: TokenUsage, after: TokenUsage) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=after.prompt_tokens - before.prompt_tokens,
        completion_tokens=after.completion_tokens - before.completion_tokens,
        total_tokens=after.total_tokens - before.total_tokens,
        cached_tokens=after.cached_tokens - before.cached_tokens,
    )


def _stamped(messages: list[ChatMessage], member: str) -> list[ChatMessage]:
    return [
        {**message, "name": member} if message.get("role") == "assistant" else message
        for message in messages
    ]


class TeamRunner:
    """Executes one Team resource within a query run."""

    def __init__(self, run: QueryRun, team: Team, members: Members) -> None:
        self.run = run
        self.team = team
        self.members = members
        self.name = team.metadata.name
        self.plan = _plan(team)

    async def execute(self, scope: Scope, user_input: str, history: list[ChatMessage]) -> Outcome:
        if not self.team.spec.members:
            raise InvalidSpecError(f"team '{self.name}' has no members")
        scope = scope.with_(team=self.name)
        data = {
            "teamName": self.name,
            "strategy": self.plan.strategy,
            "memberCount": str(len(self.team.spec.members)),
        }
        before = self.run.usage
        async with self.run.report.operation(
            "TeamExecution", f"Executing team {self.name}", data
        ) as op:
            if self.plan.strategy == "selector":
                outcome = await self._selector(scope, user_input, history)
            else:
                outcome = await self._sequential(scope, user_input, history)
            spent = _usage_since(before, self.run.usage)
            op.update(
                promptTokens=str(spent.prompt_tokens),
                completionTokens=str(spent.completion_tokens),
                totalTokens=str(spent.total_tokens),
            )
        return Outcome(outcome.messages)

    async def _turn(
        self,
        scope: Scope,
        member: TeamMember,
        turn: int,
        user_input: str,
        transcript: list[ChatMessage],
    ) -> Outcome:
        common = {"teamName": self.name, "strategy": self.plan.strategy, "turn": str(turn)}
        async with (
            self.run.report.operation(
                "TeamTurn", f"Executing turn {turn} for team {self.name}", common
            ),
            self.run.report.operation(
                "TeamMember",
                f"Executing member {member.name} in team {self.name}",
                {**common, "memberName": member.name, "memberType": member.type},
            ),
        ):
            outcome = await self.members.run_member(
                scope, member, user_input, transcript, referenced_by=f"team '{self.name}'"
            )
        return Outcome(_stamped(outcome.messages, member.name), outcome.signal)

    async def _stop(self, scope: Scope, produced: list[ChatMessage], text: str) -> None:
        produced.append({"role": "system", "content": text})
        await self.run.report.system_message(text, scope)

    async def _sequential(
        self, scope: Scope, user_input: str, history: list[ChatMessage]
    ) -> Outcome:
        members = self.team.spec.members
        limit = self.team.spec.max_turns
        transcript, produced = list(history), list[ChatMessage]()
        turn = 0
        while True:
            if self.plan.loops and limit is not None and turn >= limit:
                await self._stop(scope, produced, max_turns_message(limit))
                break
            if not self.plan.loops and turn >= len(members):
                break
            outcome = await self._turn(
                scope, members[turn % len(members)], turn, user_input, transcript
            )
            transcript += outcome.messages
            produced += outcome.messages
            if outcome.signal is not None and outcome.signal.kind == "terminate":
                break
            turn += 1
        return Outcome(produced)

    async def _selector(self, scope: Scope, user_input: str, history: list[ChatMessage]) -> Outcome:
        members = {member.name: member for member in self.team.spec.members}
        limit = self.team.spec.max_turns or 0
        transcript, produced = list(history), list[ChatMessage]()
        previous: str | None = None
        turn = 0
        while True:
            if turn >= limit:
                await self._stop(scope, produced, max_turns_message(limit))
                break
            candidates = list(members)
            if self.plan.edges and previous is not None:
                candidates = [n for n in self.plan.edges.get(previous, []) if n in members]
                if not candidates:
                    break
            if len(candidates) == 1 and self.plan.edges and previous is not None:
                chosen: str | None = candidates[0]
            else:
                chosen = await self._choose(scope, user_input, transcript, candidates, produced)
            if chosen is None:
                break
            outcome = await self._turn(scope, members[chosen], turn, user_input, transcript)
            transcript += outcome.messages
            produced += outcome.messages
            if outcome.signal is not None and outcome.signal.kind == "terminate":
                break
            previous = chosen
            turn += 1
        return Outcome(produced)

    async def _description(self, member: TeamMember) -> str:
        if member.type == "agent":
            agent = await self.run.store.get(Agent, self.run.namespace, member.name)
            return (agent.spec.description or "") if agent else ""
        nested = await self.run.store.get(Team, self.run.namespace, member.name)
        return (nested.spec.description or "") if nested else ""

    async def _choose(
        self,
        scope: Scope,
        user_input: str,
        transcript: list[ChatMessage],
        candidates: list[str],
        produced: list[ChatMessage],
    ) -> str | None:
        """Ask the selector agent; None (after noting why in ``produced``) ends the team."""
        selector = self.team.spec.selector
        assert selector is not None
        agent = await self._selector_agent(selector)
        selector_name = agent.metadata.name
        members = {member.name: member for member in self.team.spec.members}
        roles = []
        for name in candidates:
            description = await self._description(members[name])
            roles.append(f"{name}: {description}" if description else name)
        history_lines = [f"# user:\n{user_input}"]
        for message in transcript:
            if message.get("role") in ("user", "assistant") and message.get("content"):
                speaker = message.get("name") or message["role"]
                history_lines.append(f"# {speaker}:\n{message['content']}")
        prompt = render(
            selector.selector_prompt or DEFAULT_SELECTOR_PROMPT,
            {
                "Roles": "\n".join(roles),
                "Participants": ", ".join(candidates),
                "History": "\n\n".join(history_lines),
            },
            where=f"team '{self.name}' selector prompt",
        )
        terminate = bool(selector.enable_terminate_tool)
        instructions = [prompt, _SELECT_INSTRUCTION]
        if terminate:
            instructions.append(selector.terminate_prompt or _TERMINATE_INSTRUCTION)
        tools = ToolSet(
            [SelectNextSpeakerTool(candidates), *([TerminateTool()] if terminate else [])]
        )
        outcome = await self.members.run_agent(
            scope.with_(stream=False),
            agent,
            "Select the next speaker.",
            [{"role": "system", "content": "\n\n".join(instructions)}],
            tools=tools,
            tool_choice="required",
        )
        signal = outcome.signal
        if signal is None and not selector.agent:
            named = last_assistant_text(outcome.messages).strip()
            if named in candidates:
                return named
        if signal is None:
            await self._stop(
                scope, produced, "Selector agent did not use the select-next-speaker tool"
            )
            return None
        if signal.kind == "terminate":
            if signal.value:
                produced.append(
                    {"role": "assistant", "content": signal.value, "name": selector_name}
                )
                await self.run.report.announce(signal.value, scope.with_(agent=selector_name))
            return None
        if signal.value not in candidates:
            await self._stop(
                scope, produced, f"Selector returned invalid agent name: {signal.value}"
            )
            return None
        return signal.value

    async def _selector_agent(self, selector: TeamSelector) -> Agent:
        """The named selector Agent, or (older Teams) an agent without a prompt or tools of its
        own on the Model ``selector.model`` names, so both run through the same agent loop."""
        if selector.agent:
            agent = await self.run.store.get(Agent, self.run.namespace, selector.agent)
            if agent is None:
                raise ResourceNotFoundError(
                    "Agent",
                    self.run.namespace,
                    selector.agent,
                    referenced_by=f"team '{self.name}'",
                )
            return agent
        model = selector_model(selector)
        assert model is not None  # _plan refuses a selector team naming neither
        return Agent(
            metadata=ObjectMeta(name=f"{self.name}-selector", namespace=self.run.namespace),
            spec=AgentSpec(model_ref=ModelRef(name=model)),
        )
