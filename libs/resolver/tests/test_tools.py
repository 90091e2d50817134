"""Tools: HTTP tools against a real local server, MCP tools, agents as tools, built-ins."""

from __future__ import annotations

import json

from ark_mesh.contracts import (
    AgentTool,
    Header,
    MCPServerRef,
    MCPToolSpec,
    NamedRef,
    Override,
    Parameter,
    PartialTool,
    QueryTarget,
    Tool,
    ToolSpec,
    ValueSource,
)
from ark_mesh.resolver import MCPServer
from ark_mesh.resolver.resources import MCPServerSpec
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall
from ark_mesh.testing.mcp_server import MCPTestServer

from .conftest import CITY_SCHEMA, ToolBackend, World, http_tool, meta


async def test_tool_target_calls_the_http_tool_directly(world: World, backend: ToolBackend) -> None:
    world.add(http_tool("weather", f"{backend.url}/weather/{{city}}?units={{units}}"))
    status, sink = await world.resolve(
        world.request(
            input='{"city": "São Paulo", "units": "metric"}',
            target=QueryTarget(type="tool", name="weather"),
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert json.loads(status.response.content) == {
        "city": "São Paulo",
        "forecast": "sunny",
        "units": "metric",
    }
    assert backend.received[0]["path"] == "/weather/São Paulo"
    assert world.fake.requests == []
    assert "ToolCallComplete" in sink.reasons()


async def test_agent_loop_runs_the_tool_and_feeds_the_result_back(
    world: World, backend: ToolBackend
) -> None:
    world.model()
    world.add(
        http_tool(
            "weather",
            f"{backend.url}/weather/{{city}}?units={{units}}",
            headers=[Header(name="X-Api-Key", value=ValueSource(value="k1"))],
        )
    )
    world.agent("forecaster", tools=[AgentTool(type="http", name="weather")])
    world.fake.add_rule(
        Rule(
            match=Match(user="weather"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(
                            name="weather", arguments={"city": "Oslo", "units": "metric"}
                        )
                    ]
                ),
                Reply(content="Tool said: {{tool}}"),
            ],
        )
    )
    status, sink = await world.resolve(
        world.request(
            input="What's the weather in Oslo?", target=QueryTarget(type="agent", name="forecaster")
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content.startswith("Tool said: ")
    assert json.loads(status.response.content.removeprefix("Tool said: "))["city"] == "Oslo"
    first, second = world.fake.requests_to("chat")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["weather"]
    assert first.body["tools"][0]["function"]["parameters"] == CITY_SCHEMA
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == second.body["messages"][-2]["tool_calls"][0]["id"]
    assert backend.received[0]["headers"]["X-Api-Key"] == "k1"
    raw = json.loads(status.response.raw or "")
    assert [m["role"] for m in raw] == ["assistant", "tool", "assistant"]
    tool_events = [e for e in sink.events if e.reason.startswith("ToolCall")]
    assert [e.reason for e in tool_events] == ["ToolCallStart", "ToolCallComplete"]
    assert tool_events[0].data["toolName"] == "weather"
    assert tool_events[0].data["toolType"] == "http"
    assert json.loads(tool_events[0].data["parameters"]) == {"city": "Oslo", "units": "metric"}
    streamed_calls = [
        tc for c in sink.chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])
    ]
    assert streamed_calls[0].function is not None
    assert streamed_calls[0].function.name == "weather"


async def test_http_tool_body_is_a_template_over_input_and_body_parameters(
    world: World, backend: ToolBackend
) -> None:
    world.model()
    world.add(
        http_tool(
            "submit",
            f"{backend.url}/submit",
            method="POST",
            body='{"text": "{{.input.text}}", "team": "{{.team}}"}',
            body_parameters=[Parameter(name="team", value="blue")],
            input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        )
    )
    world.agent("writer", tools=[AgentTool(type="http", name="submit")])
    world.fake.add_rule(
        Rule(
            replies=[
                Reply(tool_calls=[ScriptedToolCall(name="submit", arguments={"text": "hello"})]),
                Reply(content="saved"),
            ]
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="writer")))
    assert status.phase == "done"
    assert json.loads(backend.received[0]["body"]) == {"text": "hello", "team": "blue"}
    assert backend.received[0]["headers"]["Content-Type"] == "application/json"


async def test_failing_tool_fails_the_query_with_its_message(
    world: World, backend: ToolBackend
) -> None:
    world.model()
    world.add(http_tool("broken", f"{backend.url}/broken", input_schema=None))
    world.agent("unlucky", tools=[AgentTool(type="http", name="broken")])
    world.fake.add_rule(Rule(reply=Reply(tool_calls=[ScriptedToolCall(name="broken")])))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="unlucky"))
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "returned HTTP 500: upstream exploded" in status.response.content
    assert json.loads(status.response.raw or "")[0]["error"] == "target_execution_error"
    assert "ToolCallError" in sink.reasons()
    assert sink.reasons()[-1] == "QueryExecutionError"
    assert len(world.fake.requests_to("chat")) == 1


async def test_unreachable_tool_and_missing_tool_resource_are_errors(world: World) -> None:
    world.model()
    world.add(http_tool("nowhere", "http://127.0.0.1:9/x", input_schema=None))
    world.agent("a", tools=[AgentTool(type="http", name="nowhere")])
    world.agent("b", tools=[AgentTool(type="http", name="missing")])
    world.fake.add_rule(Rule(reply=Reply(tool_calls=[ScriptedToolCall(name="nowhere")])))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="a")))
    assert status.phase == "error"
    assert status.response is not None
    assert "tool 'nowhere': GET http://127.0.0.1:9/x failed" in status.response.content
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="b")))
    assert status.response is not None
    assert status.response.content == (
        "Tool 'missing' not found in namespace 'team-a' (referenced by agent 'b')"
    )


async def test_agent_as_tool_runs_the_other_agent_silently(world: World) -> None:
    world.model()
    world.agent("researcher", prompt="You research.")
    world.add(
        Tool(
            metadata=meta("researcher"),
            spec=ToolSpec(type="agent", agent=NamedRef(name="researcher")),
        )
    )
    world.agent("lead", prompt="You lead.", tools=[AgentTool(type="agent", name="researcher")])
    world.fake.add_rule(
        Rule(match=Match(system="You research."), reply=Reply(content="Facts: water is wet"))
    )
    world.fake.add_rule(
        Rule(
            match=Match(system="You lead."),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="researcher", arguments={"input": "is water wet?"})
                    ]
                ),
                Reply(content="Summary of {{tool}}"),
            ],
        )
    )
    status, sink = await world.resolve(world.request(target=QueryTarget(type="agent", name="lead")))
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "Summary of Facts: water is wet"
    researcher_call = [
        r
        for r in world.fake.requests_to("chat")
        if r.body["messages"][0]["content"] == "You research."
    ]
    assert researcher_call[0].body["messages"][1:] == [{"role": "user", "content": "is water wet?"}]
    assert not [c for c in sink.chunks if c.ark.agent == "researcher"]
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 450


async def test_an_agent_tool_entry_names_a_tool_resource_not_an_agent(world: World) -> None:
    """Ark reads ``{type: agent, name: X}`` as the Tool ``X``: an Agent called ``X`` alone is not
    enough, and the query says which Tool is missing."""
    world.model()
    world.agent("researcher", prompt="You research.")
    world.agent("lead", prompt="You lead.", tools=[AgentTool(type="agent", name="researcher")])
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="lead")))
    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content == (
        "Tool 'researcher' not found in namespace 'team-a' (referenced by agent 'lead')"
    )
    assert world.fake.requests == []


async def test_agent_as_tool_through_a_tool_resource(world: World) -> None:
    world.model()
    world.agent("helper", prompt="helper")
    world.add(
        Tool(
            metadata=meta("ask-helper"), spec=ToolSpec(type="agent", agent=NamedRef(name="helper"))
        )
    )
    world.agent("lead", prompt="lead", tools=[AgentTool(type="custom", name="ask-helper")])
    world.fake.add_rule(
        Rule(
            match=Match(system="lead"),
            replies=[
                Reply(tool_calls=[ScriptedToolCall(name="ask-helper", arguments={"input": "hi"})]),
                Reply(content="final"),
            ],
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="lead")))
    assert status.phase == "done"
    second_lead_call = world.fake.requests_to("chat")[-1]
    assert second_lead_call.body["messages"][-1]["content"] == "Echo: hi"


async def test_mcp_tool_call_over_streamable_http(world: World, mcp_server: MCPTestServer) -> None:
    world.model()
    world.add(
        MCPServer(
            metadata=meta("calc", family="tools"),
            spec=MCPServerSpec(
                address=ValueSource(value=mcp_server.url),
                headers=[Header(name="X-Server", value=ValueSource(value="base"))],
            ),
        ),
        Tool(
            metadata=meta("calc-add"),
            spec=ToolSpec(
                type="mcp",
                input_schema={
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                },
                mcp=MCPToolSpec(mcp_server_ref=MCPServerRef(name="calc"), tool_name="add"),
            ),
        ),
    )
    world.agent("mathematician", tools=[AgentTool(type="mcp", name="calc-add")])
    world.fake.add_rule(
        Rule(
            replies=[
                Reply(tool_calls=[ScriptedToolCall(name="calc-add", arguments={"a": 20, "b": 22})]),
                Reply(content="The sum is {{tool}}"),
            ]
        )
    )
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="mathematician"),
            overrides=[
                Override(
                    resource_type="mcpserver",
                    headers=[Header(name="X-Query", value=ValueSource(value="q"))],
                )
            ],
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "The sum is 42"
    assert ("add", {"a": 20, "b": 22}) in mcp_server.calls
    assert any(h.get("x-server") == "base" and h.get("x-query") == "q" for h in mcp_server.headers)


async def test_mcp_error_result_is_fed_back_to_the_model(
    world: World, mcp_server: MCPTestServer
) -> None:
    world.model()
    world.add(
        MCPServer(
            metadata=meta("calc"), spec=MCPServerSpec(address=ValueSource(value=mcp_server.url))
        ),
        Tool(
            metadata=meta("explode"),
            spec=ToolSpec(
                type="mcp",
                mcp=MCPToolSpec(mcp_server_ref=MCPServerRef(name="calc"), tool_name="fail"),
            ),
        ),
    )
    world.agent("tryer", tools=[AgentTool(type="mcp", name="explode")])
    world.fake.add_rule(
        Rule(
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="explode", arguments={"message": "disk full"})
                    ]
                ),
                Reply(content="I saw: {{tool}}"),
            ]
        )
    )
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="tryer"))
    )
    assert status.phase == "done"
    assert status.response is not None
    assert "disk full" in status.response.content
    [complete] = [e for e in sink.events if e.reason == "ToolCallComplete"]
    assert "disk full" in complete.data["toolError"]


async def test_partial_tool_hides_and_injects_parameters(
    world: World, backend: ToolBackend
) -> None:
    world.model()
    world.add(http_tool("weather", f"{backend.url}/weather/{{city}}?units={{units}}"))
    world.agent(
        "metric-weather",
        tools=[
            AgentTool(
                type="http",
                name="metric_weather",
                partial=PartialTool(
                    name="weather", parameters=[Parameter(name="units", value="metric")]
                ),
            )
        ],
    )
    world.fake.add_rule(
        Rule(
            replies=[
                Reply(
                    tool_calls=[ScriptedToolCall(name="metric_weather", arguments={"city": "Rome"})]
                ),
                Reply(content="ok"),
            ]
        )
    )
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="metric-weather"))
    )
    assert status.phase == "done"
    [definition] = world.fake.requests_to("chat")[0].body["tools"]
    assert definition["function"]["name"] == "metric_weather"
    assert definition["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    assert definition["function"]["parameters"]["required"] == ["city"]
    assert backend.received[0]["query"] == {"units": "metric"}
