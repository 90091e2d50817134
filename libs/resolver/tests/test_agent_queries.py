"""Ark's core query scenarios against the real fake model server over HTTP."""

from __future__ import annotations

import json

import jsonschema

from ark_mesh.contracts import (
    AgentTool,
    ConfigMapKeySelector,
    Header,
    LabelSelector,
    Override,
    Parameter,
    QueryParameterRef,
    QueryTarget,
    SecretKeySelector,
    ValueFrom,
    ValueSource,
)
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall, Usage

from .conftest import World


async def test_agent_query_completes_with_the_model_answer(world: World) -> None:
    world.model()
    world.agent("helper", prompt="You are a careful assistant.")
    world.fake.add_rule(
        Rule(match=Match(user="capital"), reply=Reply(content="The capital of France is Paris."))
    )
    status, sink = await world.resolve(
        world.request(
            input="What is the capital of France?", target=QueryTarget(type="agent", name="helper")
        )
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.content == "The capital of France is Paris."
    assert status.response.target == QueryTarget(type="agent", name="helper")
    assert status.response.phase == "done"
    [completed] = [c for c in status.conditions or [] if c.type == "Completed"]
    assert (completed.status, completed.reason) == ("True", "QuerySucceeded")
    [sent] = world.fake.requests_to("chat")
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    # Nothing configures streaming in the namespace: a plain call, as Ark makes it.
    assert "stream" not in sent.body
    assert "stream_options" not in sent.body
    raw = json.loads(status.response.raw or "")
    assert raw == [
        {"role": "assistant", "content": "The capital of France is Paris.", "name": "helper"}
    ]
    assert [u.phase for u in sink.statuses] == ["running", "done"]
    assert [u.seq for u in sink.statuses] == [1, 2]
    assert status.duration is not None


async def test_status_updates_say_whether_a_query_resource_stands_behind_them(
    world: World,
) -> None:
    """Only a broker-mode query without a mirror has no Query resource; its updates say so,
    so status-sync asks Kubernetes nothing for them."""
    import msgspec

    world.model()
    world.agent("helper")
    target = QueryTarget(type="agent", name="helper")
    cases = {
        "controller": (world.request("from-controller", target=target), True),
        "broker": (
            msgspec.structs.replace(world.request("broker-only", target=target), origin="broker"),
            False,
        ),
        "mirrored": (
            msgspec.structs.replace(
                world.request("mirrored", target=target), origin="broker", create_resource=True
            ),
            True,
        ),
    }
    for name, (request, backed) in cases.items():
        status, sink = await world.resolve(request)
        assert status.phase == "done", name
        assert [u.has_resource for u in sink.statuses] == [backed, backed], name


async def test_model_target_makes_one_completion_without_tools(world: World) -> None:
    world.model("gpt")
    status, sink = await world.resolve(
        world.request(input="ping", target=QueryTarget(type="model", name="gpt"))
    )
    assert status.phase == "done"
    assert status.response is not None
    assert status.response.target == QueryTarget(type="model", name="gpt")
    assert status.response.content == "Echo: ping"
    [sent] = world.fake.requests_to("chat")
    assert "tools" not in sent.body
    content_chunks = [c for c in sink.chunks if c.ark.completed_query is None]
    assert all(c.ark.model == "gpt" and c.ark.target == "model/gpt" for c in content_chunks)


async def test_label_selector_picks_the_matching_agent_never_the_other(world: World) -> None:
    world.model()
    world.agent("decoy", prompt="decoy", labels={"role": "other"})
    world.agent("chosen", prompt="chosen", labels={"role": "answerer"})
    for _ in range(3):
        status, _ = await world.resolve(
            world.request(selector=LabelSelector(match_labels={"role": "answerer"}))
        )
        assert status.phase == "done"
        assert status.response is not None
        assert status.response.target == QueryTarget(type="agent", name="chosen")
    assert all(r.body["messages"][0]["content"] == "chosen" for r in world.fake.requests_to("chat"))


async def test_selector_prefers_agents_then_teams_then_models(world: World) -> None:
    world.model("only-model", labels={"tier": "x"})
    status, _ = await world.resolve(
        world.request(selector=LabelSelector(match_labels={"tier": "x"}))
    )
    assert status.response is not None
    assert status.response.target == QueryTarget(type="model", name="only-model")


async def test_selector_without_match_is_a_clear_error(world: World) -> None:
    world.model()
    world.agent("a", labels={"role": "x"})
    status, sink = await world.resolve(
        world.request(selector=LabelSelector(match_labels={"role": "nobody"}))
    )
    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content == "no matching resources found for selector"
    assert sink.reasons()[-1] == "QueryExecutionError"


async def test_missing_target_is_a_clear_error(world: World) -> None:
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="ghost")))
    assert status.phase == "error"
    assert status.response is not None
    assert "agent 'ghost' which does not exist in namespace 'team-a'" in status.response.content
    [completed] = [c for c in status.conditions or [] if c.type == "Completed"]
    assert completed.reason == "QueryErrored"
    assert completed.message == status.response.content


async def test_parameters_from_configmap_secret_and_inline_fill_the_input(world: World) -> None:
    world.model()
    world.agent("helper")
    world.config_map("settings", city="Lisbon")
    world.secret("creds", token="s3cr3t")
    status, _ = await world.resolve(
        world.request(
            input="Weather in {{.city}} using {{ .token }} for {{.who}}",
            target=QueryTarget(type="agent", name="helper"),
            parameters=[
                Parameter(
                    name="city",
                    value_from=ValueFrom(
                        config_map_key_ref=ConfigMapKeySelector(name="settings", key="city")
                    ),
                ),
                Parameter(
                    name="token",
                    value_from=ValueFrom(
                        secret_key_ref=SecretKeySelector(name="creds", key="token")
                    ),
                ),
                Parameter(name="who", value="Ada"),
            ],
        )
    )
    assert status.phase == "done"
    [sent] = world.fake.requests_to("chat")
    assert sent.body["messages"][-1]["content"] == "Weather in Lisbon using s3cr3t for Ada"


async def test_query_parameters_reach_the_agent_prompt_through_query_parameter_ref(
    world: World,
) -> None:
    world.model()
    world.agent(
        "helper",
        prompt="Answer in {{.language}}.",
        parameters=[
            Parameter(
                name="language",
                value_from=ValueFrom(query_parameter_ref=QueryParameterRef(name="lang")),
            )
        ],
    )
    await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            parameters=[Parameter(name="lang", value="Portuguese")],
        )
    )
    [sent] = world.fake.requests_to("chat")
    assert sent.body["messages"][0] == {"role": "system", "content": "Answer in Portuguese."}


async def test_missing_parameter_values_are_clear_errors(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(input="Hi {{.name}}", target=QueryTarget(type="agent", name="helper"))
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "{{.name}}" in status.response.content
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            parameters=[
                Parameter(
                    name="x",
                    value_from=ValueFrom(
                        config_map_key_ref=ConfigMapKeySelector(name="absent", key="k")
                    ),
                )
            ],
        )
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "ConfigMap 'absent' not found" in status.response.content
    assert world.fake.requests == []


async def test_token_usage_is_exactly_the_mock_llm_figures(world: World) -> None:
    world.model()
    world.agent("helper")
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.token_usage is not None
    assert (
        status.token_usage.prompt_tokens,
        status.token_usage.completion_tokens,
        status.token_usage.total_tokens,
    ) == (50, 100, 150)
    [llm_complete] = [e for e in sink.events if e.reason == "LLMCallComplete"]
    assert llm_complete.data["totalTokens"] == "150"


async def test_token_usage_sums_every_call_including_cached_tokens(world: World) -> None:
    world.model()
    world.agent("helper", tools=[AgentTool(type="built-in", name="noop")])
    world.fake.add_rule(
        Rule(
            replies=[
                Reply(
                    tool_calls=[ScriptedToolCall(name="noop", arguments={"message": "x"})],
                    usage=Usage(10, 5, 15, cached_tokens=4),
                ),
                Reply(content="done", usage=Usage(20, 7, 27, cached_tokens=1)),
            ]
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="helper")))
    assert status.token_usage is not None
    assert status.token_usage.prompt_tokens == 30
    assert status.token_usage.completion_tokens == 12
    assert status.token_usage.total_tokens == 42
    assert status.token_usage.cached_tokens == 5


async def test_chunks_carry_ark_metadata_sequence_and_a_final_completed_query(world: World) -> None:
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(content="one two three")))
    request = world.request(target=QueryTarget(type="agent", name="helper"), session_id="sess-1")
    status, sink = await world.resolve(request)
    assert [c.seq for c in sink.chunks] == list(range(1, len(sink.chunks) + 1))
    *streamed, final = sink.chunks
    assert sink.content() == "one two three"
    for chunk in streamed:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.ark.query == request.query_id
        assert chunk.ark.session == "sess-1"
        assert chunk.ark.target == "agent/helper"
        assert chunk.ark.agent == "helper"
        assert chunk.ark.model == "default"
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in streamed)
    assert final.id == "chatcmpl-final"
    assert final.model == "q"
    assert final.ark.completed_query is not None
    assert final.ark.completed_query.status == status
    assert final.ark.completed_query.metadata.uid == request.query_id
    assert sink.timeline[-1] == ("chunk", final)
    assert sink.timeline[-2][0] == "status"


async def test_events_follow_ark_names_and_string_data(world: World) -> None:
    world.model()
    world.agent("helper")
    request = world.request(target=QueryTarget(type="agent", name="helper"))
    _, sink = await world.resolve(request)
    assert sink.reasons() == [
        "QueryExecutionStart",
        "AgentExecutionStart",
        "LLMCallStart",
        "LLMCallComplete",
        "AgentExecutionComplete",
        "QueryExecutionComplete",
    ]
    for event in sink.events:
        assert event.data["queryId"] == request.query_id
        assert event.data["queryName"] == "q"
        assert event.data["queryNamespace"] == "team-a"
        assert event.data["sessionId"] == request.query_id
        assert all(isinstance(v, str) for v in event.data.values())
        assert event.message.endswith(f"(timestamp: {event.timestamp})")
    complete = sink.events[-1]
    assert complete.data["targetType"] == "agent"
    assert complete.data["agent"] == "helper"
    assert int(complete.data["durationMs"]) >= 0


async def test_structured_output_follows_the_agent_output_schema(world: World) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 1}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    world.model()
    world.agent("extractor", output_schema=schema)
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="extractor"))
    )
    assert status.phase == "done"
    assert status.response is not None
    jsonschema.validate(json.loads(status.response.content), schema)
    [sent] = world.fake.requests_to("chat")
    response_format = sent.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "namespace-team-a-agent-extractor"
    assert response_format["json_schema"]["schema"] == schema


async def test_schema_name_is_truncated_to_64_characters(world: World) -> None:
    world.model()
    name = "an-agent-with-a-really-long-name-that-goes-on-and-on"
    world.agent(name, output_schema={"type": "object", "properties": {}})
    await world.resolve(world.request(target=QueryTarget(type="agent", name=name)))
    [sent] = world.fake.requests_to("chat")
    assert (
        sent.body["response_format"]["json_schema"]["name"] == f"namespace-team-a-agent-{name}"[:64]
    )


async def test_headers_and_properties_reach_the_provider_and_query_overrides_win(
    world: World,
) -> None:
    world.model(
        labels={"family": "fake"},
        headers=[Header(name="X-Model", value=ValueSource(value="m"))],
        properties={"temperature": ValueSource(value="0.2"), "max_tokens": ValueSource(value="64")},
    )
    world.agent(
        "helper",
        overrides=[
            Override(
                resource_type="model",
                headers=[
                    Header(name="X-Team", value=ValueSource(value="agent-level")),
                    Header(name="X-Agent-Only", value=ValueSource(value="a")),
                ],
            )
        ],
    )
    await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            overrides=[
                Override(
                    resource_type="model",
                    label_selector=LabelSelector(match_labels={"family": "fake"}),
                    headers=[Header(name="X-Team", value=ValueSource(value="query-level"))],
                ),
                Override(
                    resource_type="model",
                    label_selector=LabelSelector(match_labels={"family": "other"}),
                    headers=[Header(name="X-Ignored", value=ValueSource(value="no"))],
                ),
            ],
        )
    )
    [sent] = world.fake.requests_to("chat")
    assert sent.header("x-team") == "query-level"
    assert sent.header("x-agent-only") == "a"
    assert sent.header("x-model") == "m"
    assert sent.header("x-ignored") is None
    assert sent.header("authorization") == "Bearer test-key"
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == 64


async def test_agent_without_model_ref_uses_the_default_model(world: World) -> None:
    world.agent("helper")
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="helper")))
    assert status.phase == "error"
    assert status.response is not None
    assert "Model 'default' not found in namespace 'team-a'" in status.response.content
    world.model()
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="helper")))
    assert status.phase == "done"


async def test_azure_models_are_called_on_their_deployment(world: World) -> None:
    from ark_mesh.contracts import AzureModelConfig, Model, ModelConfig, ModelSpec

    from .conftest import meta

    world.add(
        Model(
            metadata=meta("azure"),
            spec=ModelSpec(
                model=ValueSource(value="gpt4o-deploy"),
                provider="azure",
                config=ModelConfig(
                    azure=AzureModelConfig(
                        base_url=ValueSource(value=world.fake.url),
                        api_key=ValueSource(value="azure-key"),
                        api_version=ValueSource(value="2024-06-01"),
                    )
                ),
            ),
        )
    )
    status, _ = await world.resolve(world.request(target=QueryTarget(type="model", name="azure")))
    assert status.phase == "done"
    [sent] = world.fake.requests_to("chat")
    assert sent.path == "/openai/deployments/gpt4o-deploy/chat/completions"
    assert sent.query["api-version"] == "2024-06-01"
    assert sent.header("api-key") == "azure-key"
