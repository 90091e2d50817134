"""Model calls follow the streaming configuration, as Ark's executor does.

Ark streams a model call only when the query has an event stream (the namespace's
``ark-config-streaming`` ConfigMap says ``enabled: "true"``); otherwise the call is plain. The
fake model is scripted like providers that report usage only on plain answers and give tool
calls only plain (Ark's mock-llm), so a resolver that streamed by default would lose the usage
and the tool calls here.
"""

from __future__ import annotations

import pytest

from ark_mesh.contracts import AgentTool, ConfigMap, ObjectMeta, QueryTarget, ark
from ark_mesh.resolver import OpenAIModelClient, QueryResolver, RecordingSink
from ark_mesh.resolver.streaming import STREAMING_CONFIGMAP, streams_model_calls
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

from .conftest import World, mock_llm_like

ANSWER = "one two three four five"


def _config(**data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=STREAMING_CONFIGMAP, namespace="ns"), data=data)


@pytest.mark.parametrize(
    ("config", "annotations", "default", "expected"),
    [
        (None, None, False, False),
        (None, None, True, True),
        (_config(enabled="true"), None, False, True),
        (_config(enabled="false"), None, True, False),
        (_config(enabled="yes"), None, False, False),
        (_config(serviceRef="name: ark-broker"), None, True, True),
        (_config(enabled="false"), {ark.STREAMING_ANNOTATION: "true"}, False, True),
        (None, {ark.STREAMING_ANNOTATION: "false"}, False, False),
        (_config(enabled="true"), {ark.STREAMING_ANNOTATION: "false"}, False, True),
    ],
    ids=[
        "nothing-configured",
        "service-default-on",
        "namespace-enabled",
        "namespace-disabled-beats-service-default",
        "only-the-string-true-enables",
        "configmap-without-enabled-leaves-the-default",
        "client-asking-to-stream-beats-namespace",
        "annotation-false-is-no-request",
        "annotation-false-does-not-disable-namespace",
    ],
)
def test_streaming_decision(
    config: ConfigMap | None, annotations: dict[str, str] | None, default: bool, expected: bool
) -> None:
    assert streams_model_calls(config, annotations, default=default) is expected


async def test_unconfigured_query_calls_the_model_plainly_and_counts_its_usage(
    world: World,
) -> None:
    world.model()
    world.agent("helper")
    world.fake.add_rules(mock_llm_like(Match(), Reply(content=ANSWER)))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.phase == "done"
    assert status.token_usage is not None
    usage = status.token_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (50, 100, 150)
    [sent] = world.fake.requests_to("chat")
    assert "stream" not in sent.body
    # Watchers still get the answer: one content chunk, then the final chunk.
    content, final = sink.chunks
    assert [choice.delta.content for choice in content.choices] == [ANSWER]
    assert content.ark.agent == "helper"
    assert final.is_final
    assert sink.content() == ANSWER


async def test_tool_calls_a_provider_gives_only_unstreamed_work(world: World) -> None:
    world.model()
    world.agent("helper", tools=[AgentTool(type="built-in", name="noop")])
    world.fake.add_rules(
        mock_llm_like(
            Match(last_role="user"),
            Reply(tool_calls=[ScriptedToolCall(name="noop", arguments={"message": "hi"})]),
        )
    )
    world.fake.add_rules(mock_llm_like(Match(last_role="tool"), Reply(content="done with tools")))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "done with tools"
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 300
    assert [r.outcome for r in world.fake.requests_to("chat")] == ["completed", "completed"]
    # The tool call reached watchers whole, in one chunk, as Ark forwards accumulated calls.
    [call_chunk] = [c for c in sink.chunks if c.choices and c.choices[0].delta.tool_calls]
    [call] = call_chunk.choices[0].delta.tool_calls or []
    assert call.function is not None
    assert (call.function.name, call.function.arguments) == ("noop", '{"message":"hi"}')
    assert call_chunk.choices[0].finish_reason == "tool_calls"


async def test_namespace_configured_for_streaming_streams_token_by_token(world: World) -> None:
    world.stream_model_calls()
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(content=ANSWER)))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.phase == "done"
    [sent] = world.fake.requests_to("chat")
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    pieces = [c.choices[0].delta.content for c in sink.chunks if c.choices and not c.is_final]
    assert [p for p in pieces if p] == ["one ", "two ", "three ", "four ", "five"]
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 150


async def test_streamed_answer_without_usage_leaves_token_usage_unset(world: World) -> None:
    """Ark's behaviour: usage comes only from the stream's usage chunk; without one the call
    counts zero tokens and ``status.tokenUsage`` is not written (it is written only when the
    total is above zero). The query itself succeeds."""
    world.stream_model_calls()
    world.model()
    world.agent("helper")
    world.fake.add_rules(mock_llm_like(Match(), Reply(content=ANSWER)))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == ANSWER
    assert status.token_usage is None
    [llm_call] = [e for e in sink.events if e.reason == "LLMCallComplete"]
    assert llm_call.data["totalTokens"] == "0"
    [done] = [e for e in sink.events if e.reason == "QueryExecutionComplete"]
    assert done.data["totalTokens"] == "0"


async def test_a_client_asking_to_stream_gets_a_stream_even_where_the_namespace_says_no(
    world: World,
) -> None:
    world.stream_model_calls(enabled=False)
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            annotations={ark.STREAMING_ANNOTATION: "true"},
        )
    )
    assert status.phase == "done"
    [sent] = world.fake.requests_to("chat")
    assert sent.body["stream"] is True


async def test_a_namespace_that_disables_streaming_overrides_the_service_default(
    world: World,
) -> None:
    world.model()
    world.agent("helper")
    models = OpenAIModelClient(max_retries=0)
    streaming_service = QueryResolver(world.store, models=models, stream_model_calls=True)
    async with streaming_service:
        request = world.request(target=QueryTarget(type="agent", name="helper"))
        await streaming_service.resolve(request, RecordingSink())
        world.stream_model_calls(enabled=False)
        await streaming_service.resolve(request, RecordingSink())
    await models.aclose()
    first, second = world.fake.requests_to("chat")
    assert first.body["stream"] is True
    assert "stream" not in second.body


async def test_a_model_target_follows_the_same_decision(world: World) -> None:
    world.model()
    world.fake.add_rules(mock_llm_like(Match(), Reply(content="Paris")))
    status, sink = await world.resolve(
        world.request(input="Capital of France?", target=QueryTarget(type="model", name="default"))
    )
    assert status.phase == "done"
    assert status.token_usage is not None
    assert status.token_usage.total_tokens == 150
    assert sink.content() == "Paris"
