"""The fake model server seen through the real ``openai`` client: chat completions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from ark_mesh.testing.fake_llm import FakeModelServer, Match, Reply, Rule, ScriptedToolCall, Usage


@pytest.fixture
async def client(fake_llm: FakeModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="test", max_retries=0) as c:
        yield c


async def test_unscripted_request_echoes_the_last_user_message_with_mock_llm_usage(
    client: AsyncOpenAI,
) -> None:
    completion = await client.chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "what is the capital of France?"},
        ],
    )
    assert completion.choices[0].message.content == "Echo: what is the capital of France?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        completion.usage.total_tokens,
    ) == (50, 100, 150)


async def test_streamed_content_arrives_in_pieces_and_usage_in_the_last_chunk(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(
        Rule(
            match=Match(user="story"),
            reply=Reply(content="once upon a time", usage=Usage(7, 11, 18, cached_tokens=3)),
        )
    )
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "tell a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["once ", "upon ", "a ", "time"]
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 3
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hi"


async def test_rules_can_answer_streamed_and_plain_requests_differently(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    """How providers like Ark's mock-llm behave: usage only on plain answers."""
    fake_llm.add_rule(
        Rule(match=Match(stream=True), reply=Reply(content="streamed", stream_usage=False))
    )
    fake_llm.add_rule(Rule(match=Match(stream=False), reply=Reply(content="plain")))
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed"
    assert all(c.usage is None for c in chunks)
    completion = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "plain"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 150


async def test_sequence_drives_an_agent_loop_with_streamed_tool_call_deltas(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(
        Rule(
            match=Match(user="weather"),
            replies=[
                Reply(
                    tool_calls=[
                        ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}),
                        ScriptedToolCall(name="get_time", arguments='{"tz":"CET"}', id="call_t"),
                    ]
                ),
                Reply(content="Weather says: {{tool}}"),
            ],
        )
    )
    tools: list[openai.types.chat.ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[0]["id"].startswith("call_")
    assert calls[1]["id"] == "call_t"

    answer = await client.chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": calls[0]["id"],
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": calls[0]["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 21C"},
        ],
        tools=tools,
    )
    assert answer.choices[0].message.content == "Weather says: sunny, 21C"
    assert answer.choices[0].message.tool_calls is None


async def test_non_streamed_tool_calls_carry_ids_and_json_arguments(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(
        Rule(reply=Reply(tool_calls=[ScriptedToolCall(name="add", arguments={"a": 1, "b": 2})]))
    )
    completion = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "add"}]
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("add", {"a": 1, "b": 2})


async def test_rules_match_on_header_model_regex_system_and_offered_tool(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rules(
        [
            Rule(match=Match(headers={"x-fake-scenario": "slow-path"}), reply=Reply(content="H")),
            Rule(match=Match(model="gpt-special"), reply=Reply(content="M")),
            Rule(match=Match(user_regex=r"^order #\d+$"), reply=Reply(content="R")),
            Rule(match=Match(system="You are the critic"), reply=Reply(content="S")),
            Rule(match=Match(tool="select-next-speaker"), reply=Reply(content="T")),
        ]
    )

    async def ask(text: str, **kwargs: object) -> str | None:
        completion = await client.chat.completions.create(
            model=str(kwargs.pop("model", "fake-model")),
            messages=[*kwargs.pop("prefix", []), {"role": "user", "content": text}],  # type: ignore[list-item]
            **kwargs,  # type: ignore[arg-type]
        )
        return completion.choices[0].message.content

    assert await ask("x", extra_headers={"X-Fake-Scenario": "slow-path"}) == "H"
    assert await ask("x", model="gpt-special") == "M"
    assert await ask("order #42") == "R"
    assert await ask("order #42 now") == "Echo: order #42 now"
    assert await ask("x", prefix=[{"role": "system", "content": "You are the critic."}]) == "S"
    tool = {"type": "function", "function": {"name": "select-next-speaker", "parameters": {}}}
    assert await ask("x", tools=[tool]) == "T"


async def test_rule_then_policies(fake_llm: FakeModelServer, client: AsyncOpenAI) -> None:
    fake_llm.add_rules(
        [
            Rule(match=Match(user="once"), replies=[Reply(content="1")], then="exhaust"),
            Rule(
                match=Match(user="cycle"),
                replies=[Reply(content="a"), Reply(content="b")],
                then="cycle",
            ),
            Rule(match=Match(user="last"), replies=[Reply(content="x"), Reply(content="y")]),
        ]
    )

    async def ask(text: str) -> str | None:
        completion = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": text}]
        )
        return completion.choices[0].message.content

    assert [await ask("once") for _ in range(2)] == ["1", "Echo: once"]
    assert [await ask("cycle") for _ in range(3)] == ["a", "b", "a"]
    assert [await ask("last") for _ in range(3)] == ["x", "y", "y"]


async def test_rate_limit_error_carries_retry_after(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(
        {"reply": {"error": {"status": 429, "message": "slow down", "retry_after": 7}}}
    )
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert "slow down" in caught.value.message
    assert fake_llm.requests[-1].outcome == "error"


async def test_server_error_is_an_internal_server_error(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule({"reply": {"error": {"status": 500, "message": "boom"}}})
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )


async def test_connection_dropped_mid_stream_fails_the_stream(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(Rule(reply=Reply(content="a b c d e f", drop_after=3)))
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[object] = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises((openai.APIError, httpx2.HTTPError)):
        await consume()
    assert len(received) == 3
    assert fake_llm.requests[-1].outcome == "dropped"


async def test_dropped_connection_before_a_json_answer(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(Rule(reply=Reply(content="never", drop_after=0)))
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )


async def test_client_hanging_up_mid_stream_is_recorded(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(Rule(reply=Reply(content="word " * 200, chunk_delay=0.05)))
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "long"}], stream=True
    )
    async for _chunk in stream:
        break
    await stream.close()
    await fake_llm.wait_until(lambda rs: rs[-1].outcome == "client_disconnected")


async def test_response_format_json_schema_gets_the_scripted_json(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    fake_llm.add_rule(Rule(match=Match(user="person"), reply=Reply(json_value={"name": "Ada"})))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    completion = await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "a person"}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    assert json.loads(completion.choices[0].message.content or "") == {"name": "Ada"}


async def test_unscripted_json_schema_request_gets_a_conforming_document(
    client: AsyncOpenAI,
) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "score": {"type": "integer", "minimum": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"enum": ["a", "b"]},
            "nested": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        },
        "required": ["title", "score", "tags", "kind", "nested"],
        "additionalProperties": False,
    }
    completion = await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "fill it"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)


async def test_requests_are_recorded_with_headers_and_body(
    fake_llm: FakeModelServer, client: AsyncOpenAI
) -> None:
    await client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hello"}],
        temperature=0.25,
        extra_headers={"X-Tenant": "blue"},
    )
    [recorded] = fake_llm.requests_to("chat")
    assert recorded.header("x-tenant") == "blue"
    assert recorded.header("authorization") == "Bearer test"
    assert recorded.body["temperature"] == 0.25
    assert recorded.outcome == "completed"


async def test_bad_request_is_answered_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="messages"):
        await client.chat.completions.create(model="fake-model", messages=[])


async def test_azure_client_reaches_the_deployment_path(fake_llm: FakeModelServer) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake_llm.url, api_key="k", api_version="2024-10-21", max_retries=0
    ) as azure:
        completion = await azure.chat.completions.create(
            model="my-deployment", messages=[{"role": "user", "content": "hi azure"}]
        )
    assert completion.choices[0].message.content == "Echo: hi azure"
    [recorded] = fake_llm.requests
    assert recorded.path == "/openai/deployments/my-deployment/chat/completions"
    assert recorded.query["api-version"] == "2024-10-21"
    assert recorded.header("api-key") == "k"
