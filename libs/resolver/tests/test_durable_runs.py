"""Durable runs: a pause for approval, resuming with the decision, replaying the step log.

The tool here is a real HTTP service that records each call (an action with a side effect:
``POST /submit``); the model is the fake model server over HTTP. "Exactly once" is checked on
the service's own record, "not asked again" on the model server's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from ark_mesh.contracts import AgentTool, QueryRequest, QueryTarget, ToolApproval
from ark_mesh.contracts.approvals import (
    REJECTED_BY_USER_RESULT,
    ApprovalDecision,
    Decision,
    ModelStep,
    RunLog,
    ToolStep,
)
from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

from .conftest import ToolBackend, World, http_tool

SUBMIT_SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}},
    "required": ["ticket"],
}


class RecordingJournal:
    """The Journal port, keeping every log handed to it."""

    def __init__(self) -> None:
        self.logs: list[RunLog] = []

    async def record(self, log: RunLog) -> None:
        # Round-trip through JSON: what a real journal stores is what a resumed run gets.
        self.logs.append(msgspec.json.decode(msgspec.json.encode(log), type=RunLog))

    @property
    def last(self) -> RunLog:
        return self.logs[-1]


def submit_tool(world: World, backend: ToolBackend, **annotations: Any) -> None:
    tool = http_tool(
        "submit",
        f"{backend.url}/submit",
        method="POST",
        input_schema=SUBMIT_SCHEMA,
        body='{"ticket": "{{.input.ticket}}"}',
    )
    if annotations:
        tool = msgspec.structs.replace(
            tool, spec=msgspec.structs.replace(tool.spec, annotations=annotations)
        )
    world.add(tool)


def gated_agent(world: World, *, gated: bool = True) -> None:
    world.model()
    approval = ToolApproval(required=True, timeout="5m", on_timeout="reject") if gated else None
    world.agent("clerk", tools=[AgentTool(type="http", name="submit", approval=approval)])


def script(world: World, *replies: Reply) -> None:
    world.fake.add_rule(Rule(match=Match(user="file"), replies=list(replies)))


def call(ticket: str, call_id: str) -> Reply:
    return Reply(
        tool_calls=[ScriptedToolCall(name="submit", arguments={"ticket": ticket}, id=call_id)]
    )


def resumed(request: QueryRequest, task_id: str, decision: Decision) -> QueryRequest:
    answer = ApprovalDecision(
        task_id=task_id, decision=decision, decided_at=datetime.now(UTC).isoformat()
    )
    return msgspec.structs.replace(request, resume=answer, deadline=None)


def request_for(world: World) -> QueryRequest:
    return world.request(input="please file it", target=QueryTarget(type="agent", name="clerk"))


def cut_off_during_submit(request: QueryRequest) -> RunLog:
    """The log of a run that died while its first ``submit`` call was running."""
    turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "submit", "arguments": '{"ticket": "A"}'},
            }
        ],
    }
    return RunLog(
        query_id=request.query_id,
        generation=request.generation,
        steps=[ModelStep(speaker="clerk", message=turn)],
        in_flight="call_a",
    )


async def test_a_gated_call_pauses_the_query_before_the_tool_runs(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world)
    script(world, call("T-1", "call_1"), Reply(content="Filed: {{tool}}"))
    journal = RecordingJournal()

    status, sink = await world.resolve(request_for(world), journal=journal)

    assert status.phase == "input-required"
    assert status.response is not None
    assert status.response.a2a is not None
    task_id = status.response.a2a.task_id
    assert task_id
    assert status.response.phase == "input-required"
    assert backend.received == []
    pause = sink.statuses[-1]
    assert pause.phase == "input-required"
    assert pause.round == 0
    assert pause.approval is not None
    assert pause.approval.task_id == task_id
    assert pause.approval.timeout == "5m"
    assert pause.approval.on_timeout == "reject"
    assert [c["function"]["name"] for c in pause.approval.tool_calls] == ["submit"]
    [line] = [c.ark.tool_approval for c in sink.chunks if c.ark.tool_approval is not None]
    assert line.type == "tool_approval_request"
    assert line.task_id == task_id
    assert line.agent_name == "clerk"
    assert journal.last.pending is not None
    assert journal.last.pending.task_id == task_id
    assert "ToolApprovalRequested" in sink.reasons()
    assert not any(
        r.startswith("QueryExecution") and r != "QueryExecutionStart" for r in sink.reasons()
    )
    assert all(c.id != "chatcmpl-final" for c in sink.chunks)


async def test_approved_calls_run_once_and_the_first_turn_is_not_asked_again(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world)
    script(world, call("T-1", "call_1"), Reply(content="Filed: {{tool}}"))
    journal = RecordingJournal()
    request = request_for(world)
    paused, _ = await world.resolve(request, journal=journal)
    assert paused.response is not None
    assert paused.response.a2a is not None
    task_id = paused.response.a2a.task_id or ""

    status, sink = await world.resolve(
        resumed(request, task_id, "approved"), log=journal.last, journal=journal
    )

    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == 'Filed: stored {"ticket": "T-1"}'
    assert [r["body"] for r in backend.received] == ['{"ticket": "T-1"}']
    assert len(world.fake.requests_to("chat")) == 2
    assert {s.round for s in sink.statuses} == {1}
    [line] = [c.ark.tool_approval for c in sink.chunks if c.ark.tool_approval is not None]
    assert line.type == "tool_approval_response"
    assert line.action == "approved"
    assert journal.last.pending is None
    raw = msgspec.json.decode(status.response.raw or "[]")
    assert [m["role"] for m in raw] == ["assistant", "tool", "assistant"]


async def test_a_rejected_call_is_answered_with_arks_text_and_never_runs(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world)
    script(world, call("T-1", "call_1"), Reply(content="Understood, not filed."))
    journal = RecordingJournal()
    request = request_for(world)
    paused, _ = await world.resolve(request, journal=journal)
    assert paused.response is not None
    assert paused.response.a2a is not None

    status, _ = await world.resolve(
        resumed(request, paused.response.a2a.task_id or "", "rejected"),
        log=journal.last,
        journal=journal,
    )

    assert status.phase == "done"
    assert backend.received == []
    last_request = world.fake.requests_to("chat")[-1].body["messages"]
    assert last_request[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": REJECTED_BY_USER_RESULT,
    }


async def test_an_agent_that_asks_again_pauses_again_in_the_next_round(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world)
    script(world, call("T-1", "call_1"), call("T-1", "call_2"), Reply(content="gave up"))
    journal = RecordingJournal()
    request = request_for(world)
    first, _ = await world.resolve(request, journal=journal)
    assert first.response is not None
    assert first.response.a2a is not None
    first_task = first.response.a2a.task_id or ""

    second, sink = await world.resolve(
        resumed(request, first_task, "rejected"), log=journal.last, journal=journal
    )

    assert second.phase == "input-required"
    assert second.response is not None
    assert second.response.a2a is not None
    assert second.response.a2a.task_id not in (None, first_task)
    assert sink.statuses[-1].round == 1
    assert sink.statuses[-1].approval is not None
    assert sink.statuses[-1].approval.round == 1
    assert backend.received == []


async def test_a_redelivered_run_replays_recorded_steps_instead_of_repeating_them(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world, gated=False)
    world.fake.add_rule(
        Rule(
            match=Match(user="file"),
            replies=[call("A", "call_a"), call("B", "call_b"), Reply(content="both filed")],
            then="exhaust",
        )
    )
    journal = RecordingJournal()
    request = request_for(world)
    done, _ = await world.resolve(request, journal=journal)
    assert done.phase == "done"
    # The log as it stood right after the first call completed: model turn, tool result.
    after_first = next(
        log for log in journal.logs if [type(s) for s in log.steps] == [ModelStep, ToolStep]
    )
    backend.received.clear()
    asked_before = len(world.fake.requests_to("chat"))
    world.fake.add_rule(
        Rule(match=Match(user="file"), replies=[call("B", "call_b"), Reply(content="both filed")])
    )

    again, sink = await world.resolve(request, log=after_first, journal=RecordingJournal())

    assert again.phase == "done"
    assert [r["body"] for r in backend.received] == ['{"ticket": "B"}']
    assert len(world.fake.requests_to("chat")) - asked_before == 2
    assert again.token_usage == done.token_usage
    assert sum(1 for r in sink.reasons() if r == "ToolCallStart") == 1


async def test_a_call_cut_off_by_a_crash_is_not_repeated_unless_idempotent(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world, gated=False)
    request = request_for(world)
    crashed = cut_off_during_submit(request)

    status, _ = await world.resolve(request, log=crashed)

    assert status.phase == "error"
    assert status.response is not None
    assert "'submit' was running when the previous attempt" in status.response.content
    assert backend.received == []
    assert world.fake.requests_to("chat") == []


async def test_an_idempotent_tool_cut_off_by_a_crash_runs_again(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend, idempotentHint=True)
    gated_agent(world, gated=False)
    script(world, Reply(content="filed"))
    request = request_for(world)
    crashed = cut_off_during_submit(request)

    status, _ = await world.resolve(request, log=crashed)

    assert status.phase == "done"
    assert [r["body"] for r in backend.received] == ['{"ticket": "A"}']


async def test_a_log_that_no_longer_fits_the_run_stops_it_instead_of_guessing(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world, gated=False)
    request = request_for(world)
    foreign = RunLog(
        query_id=request.query_id,
        steps=[ModelStep(speaker="someone-else", message={"role": "assistant", "content": "x"})],
    )

    status, _ = await world.resolve(request, log=foreign)

    assert status.phase == "error"
    assert status.response is not None
    assert "cannot resume the query" in status.response.content
    assert world.fake.requests_to("chat") == []


async def test_a_log_of_another_generation_is_never_replayed(
    world: World, backend: ToolBackend
) -> None:
    submit_tool(world, backend)
    gated_agent(world, gated=False)
    script(world, Reply(content="fresh answer"))
    request = request_for(world)
    stale = RunLog(
        query_id=request.query_id,
        generation=request.generation + 1,
        steps=[ModelStep(speaker="clerk", message={"role": "assistant", "content": "old"})],
    )

    status, _ = await world.resolve(request, log=stale)

    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "fresh answer"


async def test_a_team_member_waiting_for_approval_resumes_inside_the_team(
    world: World, backend: ToolBackend
) -> None:
    """The pause can be anywhere in the run: replay re-enters the team, the first member's turn
    comes from the log, the approved call runs, and the team goes on to its next member."""
    from ark_mesh.contracts import Team, TeamMember, TeamSpec

    from .conftest import meta

    submit_tool(world, backend)
    gated_agent(world)
    world.agent("reviewer")
    world.add(
        Team(
            metadata=meta("desk"),
            spec=TeamSpec(
                strategy="sequential",
                members=[
                    TeamMember(name="clerk", type="agent"),
                    TeamMember(name="reviewer", type="agent"),
                ],
            ),
        )
    )
    world.fake.add_rule(
        Rule(
            match=Match(system="You are helpful.", last_role="user"),
            replies=[call("T-9", "call_9")],
            then="exhaust",
        )
    )
    world.fake.add_rule(
        Rule(match=Match(last_role="tool"), reply=Reply(content="clerk: filed"), then="exhaust")
    )
    world.fake.add_rule(Rule(reply=Reply(content="reviewer: looks good")))
    journal = RecordingJournal()
    request = world.request(input="please file it", target=QueryTarget(type="team", name="desk"))
    paused, _ = await world.resolve(request, journal=journal)
    assert paused.phase == "input-required"
    assert paused.response is not None
    assert paused.response.a2a is not None
    assert journal.last.pending is not None
    assert journal.last.pending.agent == "clerk"

    status, _sink = await world.resolve(
        resumed(request, paused.response.a2a.task_id or "", "approved"),
        log=journal.last,
        journal=journal,
    )

    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "reviewer: looks good"
    assert [r["body"] for r in backend.received] == ['{"ticket": "T-9"}']
    assert len(world.fake.requests_to("chat")) == 3


async def test_an_a2a_agents_reply_is_replayed_not_asked_for_again(
    world: World, backend: ToolBackend, a2a_server: A2ATestServer
) -> None:
    """A message to a remote A2A agent is a step too: resuming the team after the approval
    does not send the remote agent the same message again."""
    from ark_mesh.contracts import EngineRef, Team, TeamMember, TeamSpec

    from .conftest import meta

    submit_tool(world, backend)
    gated_agent(world)
    remote = world.agent("remote", prompt=None, execution_engine=EngineRef(name="a2a"))
    remote.metadata.annotations = {"ark.mckinsey.com/a2a-server-address": a2a_server.url}
    world.add(
        Team(
            metadata=meta("relay"),
            spec=TeamSpec(
                strategy="sequential",
                members=[
                    TeamMember(name="remote", type="agent"),
                    TeamMember(name="clerk", type="agent"),
                ],
            ),
        )
    )
    world.fake.add_rule(
        Rule(match=Match(last_role="tool"), reply=Reply(content="clerk: filed"), then="exhaust")
    )
    world.fake.add_rule(Rule(reply=call("T-2", "call_2")))
    journal = RecordingJournal()
    request = world.request(input="please file it", target=QueryTarget(type="team", name="relay"))
    paused, _ = await world.resolve(request, journal=journal)
    assert paused.phase == "input-required"
    assert paused.response is not None
    assert paused.response.a2a is not None
    assert len(a2a_server.received) == 1

    status, _ = await world.resolve(
        resumed(request, paused.response.a2a.task_id or "", "approved"),
        log=journal.last,
        journal=journal,
    )

    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "clerk: filed"
    assert len(a2a_server.received) == 1
    assert [r["body"] for r in backend.received] == ['{"ticket": "T-2"}']


async def test_a_failed_approval_ends_the_query_with_the_deciders_message(
    world: World, backend: ToolBackend
) -> None:
    from ark_mesh.contracts.approvals import cascade_limit_message

    submit_tool(world, backend)
    gated_agent(world)
    script(world, call("T-1", "call_1"))
    journal = RecordingJournal()
    request = request_for(world)
    paused, _ = await world.resolve(request, journal=journal)
    assert paused.response is not None
    assert paused.response.a2a is not None
    failed = msgspec.structs.replace(
        resumed(request, paused.response.a2a.task_id or "", "failed"),
        resume=ApprovalDecision(
            task_id=paused.response.a2a.task_id or "",
            decision="failed",
            message=cascade_limit_message(),
            decided_at=datetime.now(UTC).isoformat(),
        ),
    )

    status, sink = await world.resolve(failed, log=journal.last, journal=journal)

    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content == cascade_limit_message()
    assert sink.chunks[-1].ark.completed_query is not None
    assert backend.received == []
    assert len(world.fake.requests_to("chat")) == 1
