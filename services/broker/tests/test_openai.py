"""The OpenAI-compatible endpoint, driven by the real ``openai`` client against the broker."""

from __future__ import annotations

import openai
import pytest

from ark_mesh.testing.fake_llm import Match, Reply, Rule, Usage


def client(world, tenant: str = "team-a") -> openai.AsyncOpenAI:
    tokens = {"team-a": "token-of-team-a", "team-b": "token-of-team-b"}
    return openai.AsyncOpenAI(
        base_url=f"{world.url}/openai/v1", api_key=tokens[tenant], max_retries=0
    )


async def test_non_streaming_completion_has_content_real_usage_and_query_status(running) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="usage please"),
            reply=Reply(
                content="Here it is.",
                usage=Usage(prompt_tokens=11, completion_tokens=7, total_tokens=18),
            ),
        )
    )
    async with client(running, "team-b") as api:
        completion = await api.chat.completions.create(
            model="agent/helper",
            messages=[
                {"role": "system", "content": "ignored"},
                {"role": "user", "content": "usage please"},
            ],
            metadata={"sessionId": "sess-9", "conversationId": "conv-9"},
        )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Here it is."
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    extra = completion.model_extra or {}
    assert extra["ark"]["queryStatus"]["phase"] == "done"
    assert extra["ark"]["queryStatus"]["tokenUsage"]["totalTokens"] == 18
    # It is a broker-mode query of the tenant like any other.
    status, query = await running.get(f"/v1/queries/{extra['ark']['query']}", tenant="team-b")
    assert status == 200
    assert query["sessionId"] == "sess-9"
    assert query["conversationId"] == "conv-9"
    assert query["name"].startswith("openai-query-")
    # Not asked to stream, nothing in team B's namespace says to: a plain call, as in Ark.
    assert "stream" not in running.fake.requests_to("chat")[-1].body


async def test_streaming_completion_yields_chunks_with_ark_metadata(running) -> None:
    async with client(running, "team-b") as api:
        stream = await api.chat.completions.create(
            model="agent/helper",
            messages=[{"role": "user", "content": "stream these words to me"}],
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    assert chunks
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = (chunks[-1].model_extra or {})["ark"]["completedQuery"]
    assert final["status"]["phase"] == "done"
    assert text == final["status"]["response"]["content"]
    assert "stream these words to me" in text
    # Asked to stream (team B's namespace alone would not): the model streams token by token.
    assert running.fake.requests_to("chat")[-1].body["stream"] is True
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert all((c.model_extra or {})["ark"]["query"] == final["metadata"]["uid"] for c in chunks)


async def test_model_must_name_a_target_type(running) -> None:
    async with client(running) as api:
        with pytest.raises(openai.BadRequestError) as raised:
            await api.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    assert raised.value.status_code == 400
    assert "Model must be in format" in str(raised.value)


async def test_unknown_token_is_refused(running) -> None:
    api = openai.AsyncOpenAI(
        base_url=f"{running.url}/openai/v1", api_key="not-a-token", max_retries=0
    )
    async with api:
        with pytest.raises(openai.AuthenticationError):
            await api.chat.completions.create(
                model="agent/helper", messages=[{"role": "user", "content": "hi"}]
            )
