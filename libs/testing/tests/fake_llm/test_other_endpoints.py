"""Embeddings, Responses API and model listing through the real ``openai`` client."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI

from ark_mesh.testing.fake_llm import FakeModelServer, Match, Reply, Rule, ScriptedToolCall


@pytest.fixture
async def client(fake_llm: FakeModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="test", max_retries=0) as c:
        yield c


async def test_embeddings_are_deterministic_unit_vectors(client: AsyncOpenAI) -> None:
    # The openai client asks for base64 by default; the fake must pack float32 like OpenAI.
    first = await client.embeddings.create(model="embed", input=["alpha", "beta"])
    again = await client.embeddings.create(model="embed", input="alpha", encoding_format="float")
    assert [d.index for d in first.data] == [0, 1]
    alpha, beta = (d.embedding for d in first.data)
    assert len(alpha) == 16
    assert math.isclose(sum(v * v for v in alpha), 1.0, rel_tol=1e-5)
    assert alpha != beta
    assert again.data[0].embedding == pytest.approx(alpha, rel=1e-6)
    assert first.usage.prompt_tokens == 50


async def test_embeddings_honour_dimensions(client: AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="embed", input="x", dimensions=64)
    assert len(result.data[0].embedding) == 64


async def test_responses_api_json(fake_llm: FakeModelServer, client: AsyncOpenAI) -> None:
    fake_llm.add_rule(Rule(match=Match(endpoint="responses"), reply=Reply(content="hello there")))
    response = await client.responses.create(
        model="fake-model", input="greet me", instructions="be kind"
    )
    assert response.output_text == "hello there"
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.total_tokens == 150
    assert fake_llm.requests[-1].body["instructions"] == "be kind"


async def test_responses_api_function_call(fake_llm: FakeModelServer, client: AsyncOpenAI) -> None:
    fake_llm.add_rule(
        Rule(reply=Reply(tool_calls=[ScriptedToolCall(name="lookup", arguments={"q": "x"})]))
    )
    response = await client.responses.create(
        model="fake-model",
        input=[{"role": "user", "content": "look it up"}],
        tools=[{"type": "function", "name": "lookup", "parameters": {}, "strict": False}],
    )
    [call] = response.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("lookup", {"q": "x"})


async def test_responses_api_streaming_events(client: AsyncOpenAI) -> None:
    stream = await client.responses.create(model="fake-model", input="stream me", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Echo: stream me"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_models_are_listed(client: AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert models == ["fake-model"]
