"""Older Ark shapes and features ark-mesh does not implement: honoured, or refused by name.

Never silently dropped: ``spec.targets`` with one entry runs it and with several is refused
naming them; ``spec.evaluators`` / ``evaluatorSelector`` resolve normally with a condition and
an event saying they were not acted on; an agent on an unknown execution engine fails naming the
engine; an older Team's ``selector.model`` runs the selector prompt on that Model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ark_mesh.contracts import (
    EngineRef,
    EvaluatorRef,
    LabelSelector,
    QueryResponse,
    QueryTarget,
    Team,
    TeamMember,
    TeamSelector,
    TeamSpec,
)
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

from .conftest import World, meta, mock_llm_like


def conditions(status: Any) -> dict[str, Any]:
    return {c.type: c for c in status.conditions or []}


async def test_a_single_entry_of_targets_is_the_target(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(targets=[QueryTarget(type="agent", name="helper")])
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target == QueryTarget(type="agent", name="helper")
    # Clients of the targets era read the answer from status.responses[]: one entry, the same
    # target and content, without a second copy of raw.
    assert status.responses == [
        QueryResponse(target=status.response.target, content=status.response.content)
    ]
    assert status.response.raw


async def test_several_targets_are_refused_naming_them(world: World) -> None:
    world.model()
    world.agent("helper")
    world.agent("critic")
    status, sink = await world.resolve(
        world.request(
            targets=[
                QueryTarget(type="agent", name="helper"),
                QueryTarget(type="agent", name="critic"),
                QueryTarget(type="model", name="default"),
            ]
        )
    )
    assert status.phase == "error"
    assert status.response is not None
    message = status.response.content
    assert "only one target is supported" in message
    assert "agent/helper, agent/critic, model/default" in message
    completed = conditions(status)["Completed"]
    assert (completed.status, completed.reason, completed.message) == (
        "True",
        "QueryErrored",
        message,
    )
    assert world.fake.requests == []
    assert "QueryExecutionError" in sink.reasons()


async def test_target_and_a_different_targets_list_are_refused(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            targets=[QueryTarget(type="model", name="default")],
        )
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "spec.target (agent/helper) and spec.targets (model/default)" in (
        status.response.content
    )
    assert world.fake.requests == []


async def test_evaluators_are_not_run_and_the_query_says_so(world: World) -> None:
    world.model()
    world.agent("helper")
    plain = world.request(target=QueryTarget(type="agent", name="helper"))
    spec = msgspec.structs.replace(
        plain.spec,
        evaluators=[EvaluatorRef(name="quality"), EvaluatorRef(name="tone", namespace="evals")],
        evaluator_selector=LabelSelector(match_labels={"suite": "nightly"}),
    )
    status, sink = await world.resolve(msgspec.structs.replace(plain, spec=spec))
    assert status.phase == "done"
    skipped = conditions(status)["EvaluationSkipped"]
    assert (skipped.status, skipped.reason) == ("True", "EvaluatorsNotSupported")
    assert "spec.evaluators (quality, evals/tone)" in (skipped.message or "")
    assert 'spec.evaluatorSelector ({"matchLabels": {"suite": "nightly"}})' in (
        skipped.message or ""
    )
    [event] = [e for e in sink.events if e.reason == "EvaluationSkipped"]
    assert event.event_type == "Warning"
    assert event.data["message"] == skipped.message


async def test_a_query_without_evaluators_has_no_such_condition(world: World) -> None:
    world.model()
    world.agent("helper")
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert "EvaluationSkipped" not in conditions(status)
    assert "EvaluationSkipped" not in sink.reasons()


async def test_an_agent_on_an_unknown_execution_engine_fails_naming_it(world: World) -> None:
    world.model()
    world.agent("remote", execution_engine=EngineRef(name="langchain-engine"))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="remote"))
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "execution engine 'langchain-engine' is not supported" in status.response.content
    assert world.fake.requests == []
    [failed] = [e for e in sink.events if e.reason == "AgentExecutionError"]
    assert "langchain-engine" in failed.data["error"]


def selector_team(selector: TeamSelector) -> Team:
    return Team(
        metadata=meta("panel"),
        spec=TeamSpec(
            members=[
                TeamMember(name="researcher", type="agent"),
                TeamMember(name="analyst", type="agent"),
            ],
            strategy="selector",
            max_turns=2,
            selector=selector,
        ),
    )


def panel(world: World) -> None:
    world.model()
    world.model("selector-model", model_id="selector-llm")
    world.agent("researcher", prompt="You research.")
    world.agent("analyst", prompt="You analyse.")
    world.fake.add_rules(
        mock_llm_like(Match(system="You research."), Reply(content="RESEARCH: facts"))
    )
    world.fake.add_rules(
        mock_llm_like(Match(system="You analyse."), Reply(content="ANALYSIS: patterns"))
    )


async def test_an_older_team_selector_model_picks_speakers_by_name(world: World) -> None:
    """Older Teams ask the selector Model to "return only the exact name": a plain answer."""
    panel(world)
    world.fake.add_rule(
        Rule(
            match=Match(model="selector-llm"),
            replies=[Reply(content="analyst"), Reply(content=" researcher\n")],
        )
    )
    world.add(
        selector_team(
            TeamSelector(model="selector-model", selector_prompt="Pick from {{.Participants}}")
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "done"
    calls = world.fake.requests_to("chat")
    assert [c.body["model"] for c in calls] == [
        "selector-llm",
        "fake-model",
        "selector-llm",
        "fake-model",
    ]
    assert calls[0].body["messages"][0]["content"].startswith("Pick from researcher, analyst")
    assert status.response is not None
    assert status.response.content == "RESEARCH: facts"
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 600


async def test_an_older_team_selector_model_may_also_use_the_selection_tool(world: World) -> None:
    panel(world)
    world.fake.add_rule(
        Rule(
            match=Match(model="selector-llm"),
            reply=Reply(
                tool_calls=[
                    ScriptedToolCall(name="select-next-speaker", arguments={"name": "analyst"})
                ]
            ),
        )
    )
    world.add(selector_team(TeamSelector(model="selector-model")))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "ANALYSIS: patterns"


async def test_a_selector_model_answer_naming_no_candidate_ends_the_team(world: World) -> None:
    panel(world)
    world.fake.add_rule(Rule(match=Match(model="selector-llm"), reply=Reply(content="nobody")))
    world.add(selector_team(TeamSelector(model="selector-model")))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "done"
    assert status.response is not None
    assert "did not use the select-next-speaker tool" in (status.response.raw or "")


async def test_a_selector_team_naming_neither_agent_nor_model_is_refused(world: World) -> None:
    panel(world)
    world.add(selector_team(TeamSelector(selector_prompt="Pick one")))
    status, _ = await world.resolve(world.request(target=QueryTarget(type="team", name="panel")))
    assert status.phase == "error"
    assert status.response is not None
    assert "needs selector.agent (or, in older Teams, selector.model)" in status.response.content
