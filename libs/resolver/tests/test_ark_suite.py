"""What Ark's own end-to-end tests assert about the Query path, reproduced against the resolver.

Each test mirrors one of Ark's chainsaw tests (newest versions: ``queries``,
``query-model-target``, ``query-tool-target``, ``query-token-usage``, ``model-token-usage``,
``agent-tools``, ``agent-default-model``, ``team-sequential``, ``team-round-robin``,
``team-graph``, ``team-of-teams``): the same resources, the fake model scripted the way the
test's ``mock-llm`` values script Ark's mock-llm (rules matching on the system prompt, the last
message or the presence of a tool result), and the same assertions on the Query status. Like
mock-llm, the fake reports usage only on plain answers and cannot stream a tool call
(:func:`~.conftest.mock_llm_like`), and nothing configures streaming, as in those tests.
"""

from __future__ import annotations

import json

from ark_mesh.contracts import (
    AgentTool,
    GraphEdge,
    ModelRef,
    QueryTarget,
    Team,
    TeamGraph,
    TeamMember,
    TeamSpec,
    TokenUsage,
)
from ark_mesh.testing.fake_llm import Match, Reply, ScriptedToolCall, Usage

from .conftest import ToolBackend, World, http_tool, meta, mock_llm_like

TOKEN_USAGE_INPUT = (
    "Please explain the concept of distributed computing in detail, including key principles, \n"
    "advantages, challenges, and real-world applications. Provide examples of distributed \n"
    "systems and discuss how they handle consistency, availability, and partition tolerance.\n"
)
QUANTUM = (
    "Quantum computing uses quantum mechanics principles including superposition, entanglement, "
    "and interference to process information in fundamentally different ways than classical "
    "computers."
)


def completed_true(status: object) -> bool:
    return any(
        c.type == "Completed" and c.status == "True"
        for c in getattr(status, "conditions", None) or []
    )


def team(name: str, members: list[tuple[str, str]], **spec: object) -> Team:
    return Team(
        metadata=meta(name),
        spec=TeamSpec(members=[TeamMember(name=n, type=t) for n, t in members], **spec),  # type: ignore[arg-type]
    )


def usage(status: object) -> TokenUsage:
    found = getattr(status, "token_usage", None)
    assert found is not None
    return found  # type: ignore[no-any-return]


async def test_queries(world: World) -> None:
    world.model("test-model")
    world.agent("test-agent", model_ref=ModelRef(name="test-model"))
    status, _ = await world.resolve(
        world.request(
            "test-query",
            input="Hello, this is a test query. Please respond that you are a test agent.",
            target=QueryTarget(type="agent", name="test-agent"),
        )
    )
    assert completed_true(status)
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "test-agent"
    assert len(status.response.content) > 10


async def test_query_model_target(world: World) -> None:
    world.model("test-model")
    world.fake.add_rules(mock_llm_like(Match(), Reply(content="Paris", usage=Usage(20, 1, 21))))
    status, _ = await world.resolve(
        world.request(
            "model-target-query",
            input="What is the capital of France? Respond with just the city name.",
            target=QueryTarget(type="model", name="test-model"),
        )
    )
    assert status.phase == "done"
    assert completed_true(status)
    assert status.response is not None
    assert status.response.target == QueryTarget(type="model", name="test-model")
    assert len(status.response.content) > 3
    [sent] = world.fake.requests_to("chat")
    assert "tools" not in sent.body


async def test_query_tool_target(world: World, backend: ToolBackend) -> None:
    world.add(http_tool("test-tool", f"{backend.url}/weather/{{city}}", input_schema=None))
    status, _ = await world.resolve(
        world.request(
            "tool-target-query",
            input='{"city": "Chicago"}',
            target=QueryTarget(type="tool", name="test-tool"),
        )
    )
    assert status.phase == "done"
    assert completed_true(status)
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "test-tool"
    assert len(status.response.content) > 10
    assert world.fake.requests == []


async def test_query_token_usage(world: World) -> None:
    """mock-llm echoes the last message (a ``user`` message) with usage 50/100/150."""
    world.model("test-model")
    world.agent("token-test-agent", model_ref=ModelRef(name="test-model"))
    world.fake.add_rules(mock_llm_like(Match(), Reply(content="{{user}}")))
    status, _ = await world.resolve(
        world.request(
            "token-usage-query",
            input=TOKEN_USAGE_INPUT,
            target=QueryTarget(type="agent", name="token-test-agent"),
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "token-test-agent"
    assert status.response.content == TOKEN_USAGE_INPUT
    tokens = usage(status)
    assert (tokens.prompt_tokens, tokens.completion_tokens, tokens.total_tokens) == (50, 100, 150)


async def test_model_token_usage(world: World) -> None:
    world.model("model-token-test")
    world.fake.add_rules(mock_llm_like(Match(), Reply(content=QUANTUM, usage=Usage(100, 200, 300))))
    status, _ = await world.resolve(
        world.request(
            "model-token-query",
            input="Explain quantum computing concepts including superposition.",
            target=QueryTarget(type="model", name="model-token-test"),
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target == QueryTarget(type="model", name="model-token-test")
    assert len(status.response.content) > 100
    tokens = usage(status)
    assert tokens.completion_tokens > 50
    assert tokens.prompt_tokens > 50
    assert tokens.total_tokens > 150
    assert tokens.prompt_tokens + tokens.completion_tokens == tokens.total_tokens


async def test_agent_tools(world: World, backend: ToolBackend) -> None:
    """mock-llm answers the Weather Agent with a tool call (plain only), then, once a tool
    result is in the conversation, with the final answer."""
    world.model()
    world.add(http_tool("weather-tool", f"{backend.url}/weather/{{city}}?units={{units}}"))
    world.agent(
        "weather-agent",
        prompt="You are a Weather Agent.",
        tools=[AgentTool(type="custom", name="weather-tool")],
    )
    world.fake.add_rules(
        mock_llm_like(Match(last_role="tool"), Reply(content="NYC weather: 68°F, partly cloudy."))
    )
    world.fake.add_rules(
        mock_llm_like(
            Match(system="Weather Agent"),
            Reply(
                tool_calls=[
                    ScriptedToolCall(
                        name="weather-tool",
                        id="call_weather",
                        arguments={"city": "New York", "units": "imperial"},
                    )
                ]
            ),
        )
    )
    status, _ = await world.resolve(
        world.request(
            "weather-query",
            input="What's the weather in New York?",
            target=QueryTarget(type="agent", name="weather-agent"),
        )
    )
    assert completed_true(status)
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "weather-agent"
    assert status.response.content == "NYC weather: 68°F, partly cloudy."
    assert backend.received[0]["path"] == "/weather/New York"


async def test_agent_default_model(world: World) -> None:
    """An Agent without ``modelRef`` runs on the Model named ``default`` (mock-llm echoes)."""
    world.model("default")
    world.agent("agent-no-model", prompt="You should automatically use the default model.")
    world.fake.add_rules(mock_llm_like(Match(), Reply(content="{{user}}")))
    status, _ = await world.resolve(
        world.request(
            "default-model-query",
            input="Please confirm you are working",
            target=QueryTarget(type="agent", name="agent-no-model"),
        )
    )
    assert completed_true(status)
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "agent-no-model"
    assert status.response.content == "Please confirm you are working"


def sequential_agents(world: World) -> None:
    world.model("test-model")
    for name, role, reply in [
        ("researcher", "Researcher Agent", "RESEARCH: AI adoption increased 270% in 4 years."),
        ("analyst", "Analyst Agent", "ANALYSIS: AI is transitioning from optional to mandatory."),
        ("summarizer", "Summarizer Agent", "SUMMARY: AI is reshaping business with 77% adoption."),
    ]:
        world.agent(name, prompt=f"You are a {role}.", model_ref=ModelRef(name="test-model"))
        world.fake.add_rules(mock_llm_like(Match(system=role), Reply(content=reply)))


async def test_team_sequential(world: World) -> None:
    sequential_agents(world)
    world.add(
        team(
            "sequential-research-team",
            [("researcher", "agent"), ("analyst", "agent"), ("summarizer", "agent")],
            strategy="sequential",
        )
    )
    status, _ = await world.resolve(
        world.request(
            "sequential-team-query",
            input="Analyze the impact of artificial intelligence on modern business operations",
            target=QueryTarget(type="team", name="sequential-research-team"),
        )
    )
    assert status.phase == "done"
    assert completed_true(status)
    assert status.response is not None
    assert "SUMMARY:" in status.response.content
    raw = json.loads(status.response.raw or "")
    assert [m["name"] for m in raw] == ["researcher", "analyst", "summarizer"]


async def test_team_round_robin(world: World) -> None:
    """``sequential`` + ``loops`` + ``maxTurns: 10``: ten turns, then Ark's system message."""
    sequential_agents(world)
    world.add(
        team(
            "round-robin-brainstorm-team",
            [("researcher", "agent"), ("analyst", "agent"), ("summarizer", "agent")],
            strategy="sequential",
            loops=True,
            max_turns=10,
        )
    )
    status, _ = await world.resolve(
        world.request(
            "round-robin-team-query",
            input="How can we improve customer satisfaction in a software company?",
            target=QueryTarget(type="team", name="round-robin-brainstorm-team"),
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "round-robin-brainstorm-team"
    assert len(world.fake.requests_to("chat")) == 10
    raw = json.loads(status.response.raw or "")
    assert raw[-1]["content"] == "Team conversation reached maximum turns limit (10)"
    assert usage(status).total_tokens > 50


async def test_team_graph(world: World) -> None:
    """The deprecated ``graph`` strategy runs as sequential; its edges are dropped (Ark's
    webhook migration)."""
    sequential_agents(world)
    world.add(
        team(
            "graph-team",
            [("researcher", "agent"), ("analyst", "agent"), ("summarizer", "agent")],
            strategy="graph",
            graph=TeamGraph(
                edges=[
                    GraphEdge(from_="researcher", to="analyst"),
                    GraphEdge(from_="analyst", to="summarizer"),
                ]
            ),
        )
    )
    status, _ = await world.resolve(
        world.request(
            "test-graph-team",
            input="Research renewable energy trends and create a summary report",
            target=QueryTarget(type="team", name="graph-team"),
        )
    )
    assert completed_true(status)
    assert status.response is not None
    assert status.response.target == QueryTarget(type="team", name="graph-team")
    assert status.response.content.startswith("SUMMARY:")
    assert len(world.fake.requests_to("chat")) == 3


async def test_team_of_teams(world: World) -> None:
    world.model("test-model")
    for name, role in [
        ("researcher", "research specialist"),
        ("analyst", "data analysis expert"),
        ("synthesizer", "synthesis specialist"),
        ("coordinator", "coordination specialist"),
    ]:
        world.agent(name, prompt=f"You are a {role}.", model_ref=ModelRef(name="test-model"))
        world.fake.add_rules(mock_llm_like(Match(system=role), Reply(content=f"{name}-output")))
    world.add(team("research-team", [("researcher", "agent"), ("analyst", "agent")]))
    world.add(team("synthesis-team", [("synthesizer", "agent"), ("coordinator", "agent")]))
    world.add(team("parent-team", [("research-team", "team"), ("synthesis-team", "team")]))
    status, _ = await world.resolve(
        world.request(
            "team-of-teams-query",
            input="Analyze the benefits of using microservices architecture.",
            target=QueryTarget(type="team", name="parent-team"),
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target is not None
    assert status.response.target.name == "parent-team"
    assert status.response.content == "coordinator-output"
    assert usage(status).total_tokens == 600
