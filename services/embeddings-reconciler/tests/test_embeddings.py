"""Embeddings requests end to end on a real nats-server and the fake provider over HTTP."""

from __future__ import annotations

from typing import Any

import msgspec

from ark_mesh.testing.fake_llm.wire import embedding_vector

TEXTS = ["the quick brown fox", "jumps over", "the lazy dog"]


async def test_a_request_is_answered_with_one_vector_per_input_in_order(world: Any) -> None:
    await world.start()
    request = world.request(TEXTS)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed", result.error
    assert result.request_id == request.request_id
    assert result.tenant == world.tenant
    assert result.model == "embedder"
    assert result.embeddings == [embedding_vector(text) for text in TEXTS]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (50, 50)
    assert result.error is None
    [call] = world.fake.requests_to("embeddings")
    assert call.body["model"] == "fake-embeddings"
    assert call.body["input"] == TEXTS
    # The Model's key comes from its Secret, its headers travel with the call.
    assert call.header("Authorization") == "Bearer sk-from-secret"
    assert call.header("X-Tenant-Route") == "blue"


async def test_dimensions_are_passed_to_the_provider(world: Any) -> None:
    await world.start()
    request = world.request(["short"], dimensions=8)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed", result.error
    assert result.embeddings == [embedding_vector("short", 8)]
    assert world.fake.requests_to("embeddings")[0].body["dimensions"] == 8


async def test_an_azure_model_is_called_on_its_deployment(world: Any) -> None:
    await world.start()
    request = world.request(["hello azure"], model="azure-embedder")
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed", result.error
    assert result.embeddings == [embedding_vector("hello azure")]
    [call] = world.fake.requests_to("embeddings")
    assert call.path == "/openai/deployments/embed-deployment/embeddings"
    assert call.query.get("api-version") == "2024-06-01"
    assert call.header("api-key") == "azure-key"


async def test_a_large_input_is_split_across_calls_and_keeps_its_order(world: Any) -> None:
    await world.start(world.config(max_batch=2))
    texts = [f"text number {i}" for i in range(5)]
    request = world.request(texts)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed", result.error
    assert result.embeddings == [embedding_vector(text) for text in texts]
    calls = world.fake.requests_to("embeddings")
    assert [call.body["input"] for call in calls] == [texts[0:2], texts[2:4], texts[4:5]]
    assert result.usage is not None
    assert result.usage.prompt_tokens == 3 * 50  # every call's usage is added up


async def test_an_unknown_model_fails_naming_it_without_retries(world: Any) -> None:
    service = await world.start()
    request = world.request(TEXTS, model="no-such-model")
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.embeddings is None
    assert result.error is not None
    assert "Model 'no-such-model' not found in namespace 'team-a'" in result.error
    assert world.fake.requests_to("embeddings") == []
    assert service.worker.stats.acked == 1


async def test_an_invalid_request_fails_naming_the_problem(world: Any) -> None:
    await world.start()
    request = world.request([])
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.error == "EmbeddingsRequest.input must hold at least one text"
    assert world.fake.requests_to("embeddings") == []


async def test_a_provider_client_error_fails_without_retries(world: Any) -> None:
    world.fake.add_rule(
        {
            "match": {"endpoint": "embeddings"},
            "reply": {"error": {"status": 400, "message": "input too long"}},
        }
    )
    await world.start()
    request = world.request(TEXTS)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.error is not None
    assert "provider answered 400" in result.error
    assert "input too long" in result.error
    assert len(world.fake.requests_to("embeddings")) == 1


async def test_a_transient_provider_error_is_retried_until_it_succeeds(world: Any) -> None:
    world.fake.add_rule(
        {
            "match": {"endpoint": "embeddings"},
            "replies": [{"error": {"status": 503, "message": "warming up"}}, {}],
        }
    )
    await world.start()
    request = world.request(TEXTS)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed", result.error
    assert result.embeddings == [embedding_vector(text) for text in TEXTS]
    assert len(world.fake.requests_to("embeddings")) == 2


async def test_a_provider_failing_until_max_deliver_still_gets_a_failed_result(
    world: Any,
) -> None:
    world.fake.add_rule(
        {
            "match": {"endpoint": "embeddings"},
            "reply": {"error": {"status": 500, "message": "boom"}},
        }
    )
    await world.start()
    request = world.request(TEXTS)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("The embeddings request could not be processed:")
    assert "provider answered 500" in result.error
    calls = world.fake.requests_to("embeddings")
    assert len(calls) == 3  # MAX_DELIVER deliveries, each one call
    assert all(msgspec.to_builtins(call.body)["input"] == TEXTS for call in calls)
