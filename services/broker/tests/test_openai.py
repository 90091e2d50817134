"""The OpenAI-compatible endpoint, driven by the real ``openai`` client against the broker."""

from __future__ import annotations

import json

import openai
import pytest

from ark_mesh.testing.fake_llm import Match, Reply, Rule, Usage
from ark_mesh.testing.fake_llm.script import ScriptedError


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


async def test_metadata_annotations_session_conversation_and_timeout_land_on_the_query(
    running,
) -> None:
    async with client(running) as api:
        completion = await api.chat.completions.create(
            model="agent/helper",
            messages=[{"role": "user", "content": "annotate me"}],
            metadata={
                # JSON text, as ark-api reads them; metadata.ark's annotations win.
                "queryAnnotations": '{"ark.mckinsey.com/a2a-context-id": "ctx-1", "team": "q"}',
                "ark": '{"annotations": {"team": "ark"}}',
                "sessionId": "sess-1",
                "conversationId": "conv-1",
                "timeout": "45s",
            },
        )
    query_id = (completion.model_extra or {})["ark"]["query"]
    status, query = await running.get(f"/v1/queries/{query_id}")
    assert status == 200
    annotations = query["metadata"]["annotations"]
    assert annotations["ark.mckinsey.com/a2a-context-id"] == "ctx-1"
    assert annotations["team"] == "ark"
    assert (query["sessionId"], query["conversationId"], query["timeout"]) == (
        "sess-1",
        "conv-1",
        "45s",
    )


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({"queryAnnotations": "{not json"}, "metadata.queryAnnotations"),
        ({"queryAnnotations": "[1, 2]"}, "metadata.queryAnnotations"),
        ({"queryAnnotations": '{"count": 3}'}, "metadata.queryAnnotations.count"),
        ({"ark": "annotations"}, "metadata.ark"),
        ({"ark": '{"annotations": ["a"]}'}, "metadata.ark.annotations"),
        ({"ark": '{"labels": {}}'}, "metadata.ark.labels"),
        (
            {"queryAnnotations": '{"ark.mckinsey.com/reconciliation": "direct"}'},
            "metadata.queryAnnotations",
        ),
        ({"timeout": "soon"}, "metadata.timeout"),
    ],
)
async def test_malformed_metadata_is_a_4xx_naming_it(running, metadata, param) -> None:
    async with client(running) as api:
        with pytest.raises(openai.APIStatusError) as raised:
            await api.chat.completions.create(
                model="agent/helper",
                messages=[{"role": "user", "content": "hi"}],
                metadata=metadata,
            )
    # 400 for what is not JSON of the right shape, 422 for a value the Query refuses.
    assert raised.value.status_code == (422 if param == "metadata.timeout" else 400)
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["param"] == param, body
    assert running.fake.requests_to("chat") == []


async def test_a_stream_whose_query_fails_is_an_error_event_the_sdk_raises(running) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="please fail"),
            reply=Reply(error=ScriptedError(status=400, message="the model refused")),
        )
    )
    async with client(running) as api:
        stream = await api.chat.completions.create(
            model="agent/helper",
            messages=[{"role": "user", "content": "please fail"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        seen: list[object] = []

        async def read_all() -> None:
            async for chunk in stream:
                seen.append(chunk)

        with pytest.raises(openai.APIError) as raised:
            await read_all()
    assert not isinstance(raised.value, openai.APIStatusError)  # a 200 stream that failed
    body = raised.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"], body["status"]) == ("server_error", "query_error", 500)
    assert "the model refused" in body["message"]
    assert all(chunk.choices for chunk in seen)  # type: ignore[attr-defined]


async def test_the_raw_stream_of_a_failed_query_ends_with_the_error_then_done(running) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="raw failure"),
            reply=Reply(error=ScriptedError(status=400, message="no")),
        )
    )
    async with running.http.post(
        f"{running.url}/openai/v1/chat/completions",
        json={
            "model": "agent/helper",
            "messages": [{"role": "user", "content": "raw failure"}],
            "stream": True,
        },
        headers=running.auth(),
    ) as response:
        assert response.status == 200
        text = await response.text()
    data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])
    assert set(error) == {"error", "ark"}
    assert error["ark"]["phase"] == "error"
    assert all("completedQuery" not in line for line in data)
