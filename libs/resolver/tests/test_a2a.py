"""A2A-backed agents: message/send, context ids in status (never annotations), tasks, errors;
and the A2A ids of an agent ark-mesh runs itself (the query is its task)."""

from __future__ import annotations

import pytest

from ark_mesh.contracts import (
    A2AMetadata,
    A2AServer,
    A2AServerSpec,
    A2AServerStatus,
    AgentTool,
    EngineRef,
    Header,
    NamedRef,
    QueryTarget,
    Team,
    TeamMember,
    TeamSpec,
    Tool,
    ToolSpec,
    ValueSource,
)
from ark_mesh.resolver.a2a import parse_result
from ark_mesh.resolver.errors import A2AError
from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

from .conftest import World, meta


def a2a_agent(world: World, name: str, **annotations: str) -> None:
    agent = world.agent(name, prompt=None, execution_engine=EngineRef(name="a2a"))
    agent.metadata.annotations = annotations


async def test_a2a_context_id_lands_in_status_response_a2a(
    world: World, a2a_server: A2ATestServer
) -> None:
    a2a_agent(world, "counter", **{"ark.mckinsey.com/a2a-server-address": a2a_server.url})
    request = world.request(input="hello", target=QueryTarget(type="agent", name="counter"))
    status, sink = await world.resolve(request)
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "Message 1 in this conversation. You said: hello"
    assert status.response.a2a is not None
    context_id = status.response.a2a.context_id
    assert context_id in a2a_server.contexts
    assert status.a2a == status.response.a2a
    final = sink.chunks[-1]
    assert final.ark.completed_query is not None
    assert final.ark.completed_query.status is not None
    assert final.ark.completed_query.status.response is not None
    assert final.ark.completed_query.status.response.a2a == status.response.a2a
    assert request.annotations is None
    assert sink.content() == "Message 1 in this conversation. You said: hello"
    assert world.fake.requests == []


async def test_a2a_context_id_annotation_is_read_as_input(
    world: World, a2a_server: A2ATestServer
) -> None:
    a2a_agent(world, "counter", **{"ark.mckinsey.com/a2a-server-address": a2a_server.url})
    first, _ = await world.resolve(
        world.request(input="one", target=QueryTarget(type="agent", name="counter"))
    )
    assert first.response is not None
    assert first.response.a2a is not None
    context_id = first.response.a2a.context_id
    assert context_id is not None
    follow_up = world.request(
        input="two",
        target=QueryTarget(type="agent", name="counter"),
        annotations={"ark.mckinsey.com/a2a-context-id": context_id},
    )
    second, _ = await world.resolve(follow_up)
    assert second.response is not None
    assert second.response.content == "Message 2 in this conversation. You said: two"
    assert second.response.a2a is not None
    assert second.response.a2a.context_id == context_id
    assert follow_up.annotations == {"ark.mckinsey.com/a2a-context-id": context_id}


async def test_a2a_server_resource_supplies_address_headers_and_task_ids(world: World) -> None:
    async with A2ATestServer(mode="task") as server:
        world.add(
            A2AServer(
                metadata=meta("remote"),
                spec=A2AServerSpec(
                    address=ValueSource(value="http://not-used.invalid"),
                    headers=[Header(name="X-Tenant", value=ValueSource(value="a"))],
                    timeout="30s",
                ),
                status=A2AServerStatus(last_resolved_address=server.url),
            )
        )
        a2a_agent(world, "tasker", **{"ark.mckinsey.com/a2a-server-name": "remote"})
        status, _ = await world.resolve(
            world.request(input="do it", target=QueryTarget(type="agent", name="tasker"))
        )
        assert status.phase == "done"
        assert status.response is not None
        assert status.response.content.startswith("Message 1")
        assert status.response.a2a is not None
        assert status.response.a2a.task_id is not None
        assert status.response.a2a.context_id is not None
        assert server.received[0].headers["X-Tenant"] == "a"


async def test_a2a_error_fails_the_query(world: World) -> None:
    async with A2ATestServer(error="remote agent exploded") as server:
        a2a_agent(world, "fragile", **{"ark.mckinsey.com/a2a-server-address": server.url})
        status, _ = await world.resolve(
            world.request(target=QueryTarget(type="agent", name="fragile"))
        )
    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content == "A2A agent 'fragile' returned an error: remote agent exploded"


async def test_a2a_agent_without_a_server_is_a_configuration_error(world: World) -> None:
    a2a_agent(world, "lost")
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="lost")))
    assert status.phase == "error"
    assert status.response is not None
    assert "names no A2A server" in status.response.content


# --------------------------------------------------------------------------- parsing replies


def test_a_message_reply_names_its_task_when_it_has_one() -> None:
    reply = parse_result(
        {"kind": "message", "parts": [{"kind": "text", "text": "hi"}], "taskId": "t-1"}, "a"
    )
    assert (reply.text, reply.context_id, reply.task_id) == ("hi", None, "t-1")
    assert reply.metadata() == A2AMetadata(task_id="t-1")


def test_ids_that_are_not_strings_are_dropped_not_written_to_status() -> None:
    reply = parse_result(
        {"kind": "message", "parts": [], "contextId": 7, "taskId": ""},
        "a",
    )
    assert reply.metadata() is None


def test_a_failed_task_is_an_error_naming_the_task() -> None:
    failed = {
        "kind": "task",
        "id": "t-9",
        "status": {"state": "failed", "message": {"parts": [{"kind": "text", "text": "boom"}]}},
    }
    with pytest.raises(A2AError, match="task t-9 failed: boom"):
        parse_result(failed, "a")


async def test_a2a_message_within_a_task_reports_that_task(world: World) -> None:
    async with A2ATestServer(message_in_task=True) as server:
        a2a_agent(world, "counter", **{"ark.mckinsey.com/a2a-server-address": server.url})
        status, _ = await world.resolve(
            world.request(input="hi", target=QueryTarget(type="agent", name="counter"))
        )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.a2a is not None
    assert server.task_ids != []
    assert status.response.a2a.task_id == server.task_ids[0]
    assert status.response.a2a.context_id in server.contexts


# --------------------------------------------------------------------------- agents run here


def delegation(world: World) -> None:
    """Ark's ``agent-tool-delegation-native`` in small: a coordinator that always delegates
    through an ``agent`` Tool, and the delegate's answer in its final reply."""
    world.model()
    world.agent("delegate-agent", prompt="Delegate Agent")
    world.add(
        Tool(
            metadata=meta("delegate-agent-tool"),
            spec=ToolSpec(type="agent", agent=NamedRef(name="delegate-agent")),
        )
    )
    world.agent(
        "coordinator-agent",
        prompt="Coordinator Agent",
        tools=[AgentTool(type="agent", name="delegate-agent-tool")],
    )
    world.fake.add_rule(
        Rule(match=Match(system="Delegate Agent"), reply=Reply(content="DELEGATE RESPONSE"))
    )
    world.fake.add_rule(
        Rule(
            match=Match(system="Coordinator Agent"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(
                            name="delegate-agent-tool", arguments={"input": "delegate this task"}
                        )
                    ]
                ),
                Reply(content="COORDINATOR FINAL {{tool}}"),
            ],
        )
    )


async def test_native_delegation_answers_with_the_query_as_its_a2a_task(world: World) -> None:
    delegation(world)
    request = world.request(
        input="Please delegate this task.",
        target=QueryTarget(type="agent", name="coordinator-agent"),
    )
    status, sink = await world.resolve(request)
    assert status.response is not None
    assert status.phase == "done", status.response.content
    assert status.response.content == "COORDINATOR FINAL DELEGATE RESPONSE"
    assert status.response.a2a == A2AMetadata(task_id=request.query_id)
    assert status.a2a == status.response.a2a
    completed = sink.chunks[-1].ark.completed_query
    assert completed is not None
    assert completed.status is not None
    assert completed.status.response is not None
    assert completed.status.response.a2a == status.response.a2a


async def test_native_answer_carries_the_callers_context_id(world: World) -> None:
    world.model()
    world.agent("plain")
    request = world.request(
        target=QueryTarget(type="agent", name="plain"),
        annotations={"ark.mckinsey.com/a2a-context-id": "ctx-from-caller"},
    )
    status, _ = await world.resolve(request)
    assert status.response is not None
    assert status.response.a2a == A2AMetadata(
        context_id="ctx-from-caller", task_id=request.query_id
    )


async def test_model_and_tool_targets_carry_no_a2a_ids(world: World) -> None:
    """Only an agent answers as an A2A agent: a model call has no task, and an agent a Tool
    target delegates to runs silently, so its ids are not the query's."""
    delegation(world)
    model_status, _ = await world.resolve(
        world.request(target=QueryTarget(type="model", name="default"))
    )
    assert model_status.phase == "done"
    assert model_status.response is not None
    assert model_status.response.a2a is None
    tool_status, _ = await world.resolve(
        world.request(
            input="delegate this task", target=QueryTarget(type="tool", name="delegate-agent-tool")
        )
    )
    assert tool_status.phase == "done"
    assert tool_status.response is not None
    assert tool_status.response.content == "DELEGATE RESPONSE"
    assert tool_status.response.a2a is None


async def test_the_last_speaker_of_a_team_decides_the_a2a_ids(
    world: World, a2a_server: A2ATestServer
) -> None:
    """The status describes the final message: a team ending on its A2A member reports that
    agent's conversation; one ending on a member run here reports the query as the task."""
    world.model()
    world.agent("drafter", prompt="You draft.")
    a2a_agent(world, "counter", **{"ark.mckinsey.com/a2a-server-address": a2a_server.url})
    for name, members in (
        ("ends-remote", ["drafter", "counter"]),
        ("ends-here", ["counter", "drafter"]),
    ):
        world.add(
            Team(
                metadata=meta(name),
                spec=TeamSpec(
                    members=[TeamMember(type="agent", name=m) for m in members],
                    strategy="sequential",
                ),
            )
        )
    remote = world.request(target=QueryTarget(type="team", name="ends-remote"))
    status, _ = await world.resolve(remote)
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.a2a is not None
    assert status.response.a2a.task_id is None
    assert status.response.a2a.context_id in a2a_server.contexts
    here = world.request(target=QueryTarget(type="team", name="ends-here"))
    status, _ = await world.resolve(here)
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.a2a == A2AMetadata(task_id=here.query_id)
