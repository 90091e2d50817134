"""Teams: sequential with loops and maxTurns, selector with graph edges, nested teams."""

from __future__ import annotations

import json

from ark_mesh.contracts import (
    AgentTool,
    GraphEdge,
    QueryTarget,
    Team,
    TeamGraph,
    TeamMember,
    TeamSelector,
    TeamSpec,
)
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

from .conftest import World, meta


def team(name: str, members: list[tuple[str, str]], **spec: object) -> Team:
    return Team(
        metadata=meta(name),
        spec=TeamSpec(members=[TeamMember(name=n, type=t) for n, t in members], **spec),  # type: ignore[arg-type]
    )


def writers(world: World) -> None:
    world.model()
    world.agent("drafter", prompt="You draft.", description="writes the first draft")
    world.agent("editor", prompt="You edit.", description="polishes the draft")
    world.fake.add_rule(Rule(match=Match(system="You draft."), reply=Reply(content="draft text")))
    world.fake.add_rule(Rule(match=Match(system="You edit."), reply=Reply(content="edited text")))


async def test_sequential_team_runs_members_in_order_on_a_shared_transcript(world: World) -> None:
    writers(world)
    world.add(team("pair", [("drafter", "agent"), ("editor", "agent")]))
    status, sink = await world.resolve(
        world.request(input="Write a poem", target=QueryTarget(type="team", name="pair"))
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "edited text"
    drafter_call, editor_call = world.fake.requests_to("chat")
    assert drafter_call.body["messages"][0]["content"] == "You draft."
    assert editor_call.body["messages"] == [
        {"role": "system", "content": "You edit."},
        {"role": "assistant", "content": "draft text", "name": "drafter"},
        {"role": "user", "content": "Write a poem"},
    ]
    raw = json.loads(status.response.raw or "")
    assert [(m["name"], m["content"]) for m in raw] == [
        ("drafter", "draft text"),
        ("editor", "edited text"),
    ]
    assert {c.ark.agent for c in sink.chunks[:-1]} == {"drafter", "editor"}
    assert {c.ark.team for c in sink.chunks[:-1]} == {"pair"}
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 300
    reasons = sink.reasons()
    assert reasons.count("TeamTurnStart") == 2
    assert reasons.count("TeamMemberComplete") == 2
    [team_done] = [e for e in sink.events if e.reason == "TeamExecutionComplete"]
    assert (team_done.data["strategy"], team_done.data["totalTokens"]) == ("sequential", "300")


async def test_looping_team_stops_at_max_turns_with_arks_message_and_is_done(world: World) -> None:
    writers(world)
    world.add(team("loop", [("drafter", "agent"), ("editor", "agent")], loops=True, max_turns=3))
    status, sink = await world.resolve(world.request(target=QueryTarget(type="team", name="loop")))
    assert status.phase == "done"
    assert status.response is not None
    raw = json.loads(status.response.raw or "")
    assert [m.get("name") for m in raw[:3]] == ["drafter", "editor", "drafter"]
    assert raw[-1] == {
        "role": "system",
        "content": "Team conversation reached maximum turns limit (3)",
    }
    assert status.response.content == "draft text"
    assert len(world.fake.requests_to("chat")) == 3
    [system_chunk] = [c for c in sink.chunks if c.id == "chatcmpl-system"]
    assert system_chunk.ark.system_message == "Team conversation reached maximum turns limit (3)"


async def test_legacy_round_robin_with_max_turns_loops(world: World) -> None:
    writers(world)
    world.add(
        team("rr", [("drafter", "agent"), ("editor", "agent")], strategy="round-robin", max_turns=4)
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="rr")))
    assert status.phase == "done"
    assert len(world.fake.requests_to("chat")) == 4


async def test_terminate_tool_ends_a_looping_team(world: World) -> None:
    world.model()
    world.agent("closer", prompt="You close.", tools=[AgentTool(type="built-in", name="terminate")])
    world.fake.add_rule(
        Rule(
            reply=Reply(
                tool_calls=[ScriptedToolCall(name="terminate", arguments={"response": "bye"})]
            )
        )
    )
    world.add(team("t", [("closer", "agent")], loops=True, max_turns=10))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="t")))
    assert status.phase == "done"
    assert len(world.fake.requests_to("chat")) == 1


async def test_selector_team_asks_the_selector_with_an_enum_of_candidates(world: World) -> None:
    writers(world)
    world.agent("chair", prompt="You chair.")
    world.fake.add_rule(
        Rule(
            match=Match(tool="select-next-speaker"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="select-next-speaker", arguments={"name": "editor"})
                    ]
                ),
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="select-next-speaker", arguments={"name": "drafter"})
                    ]
                ),
            ],
        )
    )
    world.add(
        team(
            "panel",
            [("drafter", "agent"), ("editor", "agent")],
            strategy="selector",
            max_turns=2,
            selector=TeamSelector(agent="chair"),
        )
    )
    status, sink = await world.resolve(
        world.request(input="Write it", target=QueryTarget(type="team", name="panel"))
    )
    assert status.phase == "done"
    calls = world.fake.requests_to("chat")
    selector_calls = [c for c in calls if c.body["messages"][0]["content"] == "You chair."]
    member_calls = [c for c in calls if c not in selector_calls]
    assert [c.body["messages"][0]["content"] for c in member_calls] == ["You edit.", "You draft."]
    first = selector_calls[0].body
    [tool] = first["tools"]
    assert tool["function"]["name"] == "select-next-speaker"
    assert tool["function"]["parameters"]["properties"]["name"]["enum"] == ["drafter", "editor"]
    assert first["tool_choice"] == "required"
    selector_prompt = first["messages"][1]["content"]
    assert "drafter: writes the first draft" in selector_prompt
    assert "Write it" in selector_prompt
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 150 * 4
    assert not [c for c in sink.chunks if c.ark.agent == "chair"]
    raw = json.loads(status.response.raw or "") if status.response else []
    assert raw[-1]["content"] == "Team conversation reached maximum turns limit (2)"


async def test_selector_candidates_follow_graph_edges(world: World) -> None:
    writers(world)
    world.agent("reviewer", prompt="You review.")
    world.agent("chair", prompt="You chair.")
    world.fake.add_rule(
        Rule(
            match=Match(tool="select-next-speaker"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="select-next-speaker", arguments={"name": "drafter"})
                    ]
                ),
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="select-next-speaker", arguments={"name": "reviewer"})
                    ]
                ),
            ],
        )
    )
    world.add(
        team(
            "graph",
            [("drafter", "agent"), ("editor", "agent"), ("reviewer", "agent")],
            strategy="selector",
            max_turns=3,
            selector=TeamSelector(agent="chair"),
            graph=TeamGraph(
                edges=[
                    GraphEdge(from_="drafter", to="editor"),
                    GraphEdge(from_="drafter", to="reviewer"),
                    GraphEdge(from_="reviewer", to="editor"),
                ]
            ),
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="graph")))
    assert status.phase == "done"
    selector_calls = [
        c
        for c in world.fake.requests_to("chat")
        if c.body["messages"][0]["content"] == "You chair."
    ]
    enums = [
        c.body["tools"][0]["function"]["parameters"]["properties"]["name"]["enum"]
        for c in selector_calls
    ]
    # Turn 1: anyone; turn 2: drafter's successors; turn 3: reviewer has one successor, no call.
    assert enums == [["drafter", "editor", "reviewer"], ["editor", "reviewer"]]
    member_prompts = [
        c.body["messages"][0]["content"]
        for c in world.fake.requests_to("chat")
        if c.body["messages"][0]["content"] != "You chair."
    ]
    assert member_prompts == ["You draft.", "You review.", "You edit."]


async def test_selector_choosing_an_unknown_member_ends_the_team_with_a_warning(
    world: World,
) -> None:
    writers(world)
    world.agent("chair", prompt="You chair.")
    world.fake.add_rule(
        Rule(
            match=Match(tool="select-next-speaker"),
            reply=Reply(
                tool_calls=[
                    ScriptedToolCall(name="select-next-speaker", arguments={"name": "nobody"})
                ]
            ),
        )
    )
    world.add(
        team(
            "panel",
            [("drafter", "agent")],
            strategy="selector",
            max_turns=5,
            selector=TeamSelector(agent="chair"),
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "done"
    assert status.response is not None
    raw = json.loads(status.response.raw or "")
    assert raw == [{"role": "system", "content": "Selector returned invalid agent name: nobody"}]


async def test_nested_teams_run_inside_the_outer_team(world: World) -> None:
    writers(world)
    world.agent("publisher", prompt="You publish.")
    world.fake.add_rule(Rule(match=Match(system="You publish."), reply=Reply(content="published")))
    world.add(team("writing", [("drafter", "agent"), ("editor", "agent")]))
    world.add(team("house", [("writing", "team"), ("publisher", "agent")]))
    status, sink = await world.resolve(world.request(target=QueryTarget(type="team", name="house")))
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "published"
    raw = json.loads(status.response.raw or "")
    assert [m["name"] for m in raw] == ["writing", "writing", "publisher"]
    assert {c.ark.team for c in sink.chunks[:-1] if c.ark.agent in ("drafter", "editor")} == {
        "writing"
    }
    assert sink.reasons().count("TeamExecutionStart") == 2


async def test_team_cycles_and_invalid_teams_are_clear_errors(world: World) -> None:
    writers(world)
    world.add(team("a", [("b", "team")]), team("b", [("a", "team")]))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="a")))
    assert status.response is not None
    assert status.response.content == "team cycle: a -> b -> a"
    world.add(team("bad", [("drafter", "agent")], loops=True))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="bad")))
    assert status.response is not None
    assert (
        status.response.content == "team 'bad': maxTurns is required for a looping sequential team"
    )


async def test_selector_may_terminate_with_a_closing_answer(world: World) -> None:
    writers(world)
    world.agent("chair", prompt="You chair.")
    world.fake.add_rule(
        Rule(
            match=Match(tool="select-next-speaker"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="select-next-speaker", arguments={"name": "drafter"})
                    ]
                ),
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="terminate", arguments={"response": "All done."})
                    ]
                ),
            ],
        )
    )
    world.add(
        team(
            "panel",
            [("drafter", "agent"), ("editor", "agent")],
            strategy="selector",
            max_turns=5,
            selector=TeamSelector(agent="chair", enable_terminate_tool=True),
        )
    )
    status, sink = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "All done."
    tools = world.fake.requests_to("chat")[0].body["tools"]
    assert [t["function"]["name"] for t in tools] == ["select-next-speaker", "terminate"]
    assert "All done." in sink.content()
