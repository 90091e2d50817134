"""``POST /openai/v1/embeddings`` end to end: the real ``openai`` client → the broker → NATS →
the real embeddings-reconciler (started in this process, Models from a manifests directory) →
the fake model's ``/v1/embeddings`` → back."""

from __future__ import annotations

from typing import Any

import msgspec
import openai
import pytest

from ark_mesh.broker import LimitsConfig
from ark_mesh.bus import Bus, StreamReader
from ark_mesh.contracts import EmbeddingsResult, decoder_for, subjects
from ark_mesh.testing.fake_llm.wire import embedding_vector

TEXTS = ["the quick brown fox", "jumps over", "the lazy dog"]
TOKENS = {"team-a": "token-of-team-a", "team-b": "token-of-team-b"}


def embeddings_model(name: str, namespace: str, base_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"value": f"fake-embeddings-{namespace}"},
            "provider": "openai",
            "config": {"openai": {"baseUrl": {"value": base_url}, "apiKey": {"value": "k"}}},
        },
    }


@pytest.fixture
async def embedding(world: Any) -> Any:
    """The broker plus one embeddings-reconciler: ``embedder`` in both tenants' namespaces,
    ``only-b`` in team-b's alone."""
    base_url = world.fake.base_url
    await world.start_embeddings_reconciler(
        [
            embeddings_model("embedder", "team-a", base_url),
            embeddings_model("embedder", "team-b", base_url),
            embeddings_model("only-b", "team-b", base_url),
        ]
    )
    await world.start_broker()
    return world


def client(world: Any, tenant: str = "team-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{world.url}/openai/v1", api_key=TOKENS[tenant], max_retries=0
    )


async def test_a_list_of_inputs_gets_one_vector_per_input_in_order_and_usage(
    embedding: Any,
) -> None:
    async with client(embedding) as api:
        # The client asks for base64 unless told otherwise: float32 on the wire.
        packed = await api.embeddings.create(model="embedder", input=TEXTS)
        exact = await api.embeddings.create(
            model="model/embedder", input=TEXTS, encoding_format="float"
        )
    for answer in (packed, exact):
        assert answer.object == "list"
        assert [item.index for item in answer.data] == [0, 1, 2]
        assert all(item.object == "embedding" for item in answer.data)
        assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (50, 50)
    assert packed.model == "embedder"
    assert exact.model == "model/embedder"
    assert [item.embedding for item in exact.data] == [embedding_vector(t) for t in TEXTS]
    for item, text in zip(packed.data, TEXTS, strict=True):
        assert item.embedding == pytest.approx(embedding_vector(text), rel=1e-6, abs=1e-7)
    calls = embedding.fake.requests_to("embeddings")
    assert [call.body["input"] for call in calls] == [TEXTS, TEXTS]
    assert calls[0].body["model"] == "fake-embeddings-team-a"


async def test_a_single_string_and_dimensions(embedding: Any) -> None:
    async with client(embedding) as api:
        answer = await api.embeddings.create(
            model="embedder", input="just one", dimensions=8, encoding_format="float"
        )
    assert [item.embedding for item in answer.data] == [embedding_vector("just one", 8)]
    [call] = embedding.fake.requests_to("embeddings")
    assert call.body["input"] == ["just one"]
    assert call.body["dimensions"] == 8


MANY = [f"text number {index}" for index in range(60)]


async def test_a_result_larger_than_one_nats_message_arrives_whole(embedding: Any) -> None:
    # 60 vectors of 1,536 floats are about 2 MB of JSON: twice NATS' default max_payload.
    async with client(embedding) as api:
        exact = await api.embeddings.create(
            model="embedder", input=MANY, dimensions=1536, encoding_format="float"
        )
        packed = await api.embeddings.create(model="embedder", input=MANY, dimensions=1536)
    expected = [embedding_vector(text, 1536) for text in MANY]
    assert [item.index for item in exact.data] == list(range(60))
    assert [item.embedding for item in exact.data] == expected
    for item, vector in zip(packed.data, expected, strict=True):
        assert item.embedding == pytest.approx(vector, rel=1e-6, abs=1e-7)
    # One provider call per request: the result was not redelivered on the way.
    assert len(embedding.fake.requests_to("embeddings")) == 2


async def test_a_result_too_large_to_deliver_fails_at_once_naming_its_size(world: Any) -> None:
    await world.start_embeddings_reconciler(
        [embeddings_model("embedder", "team-a", world.fake.base_url)], max_result_bytes=100_000
    )
    await world.start_broker()
    async with client(world) as api:
        with pytest.raises(openai.BadRequestError) as raised:
            await api.embeddings.create(model="embedder", input=MANY, dimensions=1536)
    assert "The embeddings result cannot be delivered" in raised.value.message
    assert "more than the 100000 bytes" in raised.value.message
    # Answered from the first delivery: the provider was called once, not once per redelivery.
    assert len(world.fake.requests_to("embeddings")) == 1


async def test_an_unknown_model_is_an_openai_error_naming_it(embedding: Any) -> None:
    async with client(embedding) as api:
        with pytest.raises(openai.BadRequestError) as raised:
            await api.embeddings.create(model="no-such-model", input=TEXTS)
    assert raised.value.status_code == 400
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["code"] == "embeddings_failed"
    assert body["type"] == "invalid_request_error"
    assert "Model 'no-such-model' not found in namespace 'team-a'" in body["message"]
    assert embedding.fake.requests_to("embeddings") == []


async def test_a_model_of_another_kind_is_refused_naming_the_field(embedding: Any) -> None:
    async with client(embedding) as api:
        with pytest.raises(openai.BadRequestError) as raised:
            await api.embeddings.create(model="agent/helper", input=TEXTS)
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["param"] == "model"
    assert "'model/<name>'" in body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": "embedder"}, "input"),
        ({"model": "embedder", "input": 5}, "input"),
        ({"model": "embedder", "input": [1, 2]}, "input[0]"),
        ({"model": "embedder", "input": []}, "input"),
        ({"model": "embedder", "input": ["fine", ""]}, "input[1]"),
        ({"input": "text"}, "model"),
        ({"model": "embedder", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "embedder", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ],
)
async def test_an_invalid_body_is_a_4xx_naming_the_field(
    embedding: Any, payload: dict[str, Any], field: str
) -> None:
    async with embedding.http.post(
        f"{embedding.url}/openai/v1/embeddings",
        data=msgspec.json.encode(payload),
        headers=embedding.auth(),
    ) as response:
        assert 400 <= response.status < 500
        error = (await response.json())["error"]
    assert error["param"] == field, error
    assert error["type"] == "invalid_request_error"
    assert embedding.fake.requests_to("embeddings") == []


async def test_malformed_json_is_400(embedding: Any) -> None:
    async with embedding.http.post(
        f"{embedding.url}/openai/v1/embeddings", data=b"{not json", headers=embedding.auth()
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "body"


async def test_each_tenant_uses_its_own_subjects_and_models(embedding: Any) -> None:
    async with client(embedding, "team-b") as api:
        answer = await api.embeddings.create(
            model="only-b", input=["for b"], encoding_format="float"
        )
    assert [item.embedding for item in answer.data] == [embedding_vector("for b")]
    async with client(embedding, "team-a") as api:
        with pytest.raises(openai.BadRequestError) as raised:
            await api.embeddings.create(model="only-b", input=["for b"])
    assert "not found in namespace 'team-a'" in raised.value.message

    # Each call ran against its own namespace's Model (the fake sees which one) ...
    assert [call.body["model"] for call in embedding.fake.requests_to("embeddings")] == [
        "fake-embeddings-team-b"
    ]
    # ... and each result was published on its own tenant's subjects.
    bus = await Bus.connect(servers=(embedding.nats.url,), name="embeddings-test-reader")
    try:
        reader = StreamReader(bus)
        results = {
            tenant: [
                entry.message
                async for entry in reader.read(
                    f"{subjects.ROOT}.{tenant}.query.*.result",
                    decoder=decoder_for(EmbeddingsResult).decode,
                    caught_up=True,
                )
            ]
            for tenant in ("team-a", "team-b")
        }
    finally:
        await bus.close()
    [result_b] = results["team-b"]
    [result_a] = results["team-a"]
    assert (result_b.tenant, result_b.status, result_b.model) == ("team-b", "completed", "only-b")
    assert (result_a.tenant, result_a.status) == ("team-a", "failed")


async def test_without_a_known_token_it_is_401(embedding: Any) -> None:
    api = openai.AsyncOpenAI(
        base_url=f"{embedding.url}/openai/v1", api_key="not-a-token", max_retries=0
    )
    async with api:
        with pytest.raises(openai.AuthenticationError):
            await api.embeddings.create(model="embedder", input=TEXTS)
    async with embedding.http.post(
        f"{embedding.url}/openai/v1/embeddings", json={"model": "embedder", "input": "x"}
    ) as response:
        assert response.status == 401
        error = (await response.json())["error"]
    # OpenAI's error object, as everywhere under /openai/v1, naming the header.
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "unauthorized",
        "Authorization",
    )
    assert embedding.fake.requests_to("embeddings") == []


async def test_no_result_in_time_is_504(world: Any) -> None:
    # No embeddings-reconciler runs: the request is queued and never answered.
    await world.start_broker(
        world.broker_config(
            limits=LimitsConfig(max_in_flight_per_tenant=50, completion_wait_seconds=1.0)
        )
    )
    async with client(world) as api:
        with pytest.raises(openai.APIStatusError) as raised:
            await api.embeddings.create(model="embedder", input=TEXTS)
    assert raised.value.status_code == 504
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "timeout"
    assert "within 1s" in raised.value.message
