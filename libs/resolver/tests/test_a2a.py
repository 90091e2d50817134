"""A2A-backed agents: message/send, context ids in status (never annotations), tasks, errors."""

from __future__ import annotations

from ark_mesh.contracts import (
    A2AServer,
    A2AServerSpec,
    A2AServerStatus,
    EngineRef,
    Header,
    QueryTarget,
    ValueSource,
)
from ark_mesh.testing.a2a_server import A2ATestServer

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
