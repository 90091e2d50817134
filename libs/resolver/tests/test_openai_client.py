"""OpenAIModelClient against the fake model over real HTTP.

A streamed call to an OpenAI-compatible endpoint is the thin aiohttp stream; a plain call goes
through the official SDK. Both must send the same request and map the provider's errors to the
same resolver errors, so the error tests run each scripted failure through both paths and
compare.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from ark_mesh.resolver import (
    ChatRequest,
    ModelEndpoint,
    ModelRequestError,
    ModelUnavailableError,
    OpenAIModelClient,
)
from ark_mesh.resolver.ports import ModelChunk
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import free_port

ASK = ChatRequest(messages=[{"role": "user", "content": "hello"}])


def _endpoint(fake: FakeModelServer, **changes: object) -> ModelEndpoint:
    fields: dict[str, object] = {
        "name": "fake",
        "namespace": "tests",
        "provider": "openai",
        "model": "fake-model",
        "base_url": fake.base_url,
        "api_key": "sk-test",
        **changes,
    }
    return ModelEndpoint(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[OpenAIModelClient]:
    models = OpenAIModelClient(max_retries=0)
    yield models
    await models.aclose()


async def _collect(
    client: OpenAIModelClient, endpoint: ModelEndpoint, request: ChatRequest, *, streamed: bool
) -> list[ModelChunk]:
    async with client.stream(endpoint, request, streamed=streamed) as chunks:
        return [chunk async for chunk in chunks]


def _text(chunks: list[ModelChunk]) -> str:
    return "".join(
        choice.delta.content or "" for chunk in chunks for choice in chunk.choices if choice.delta
    )


async def test_a_streamed_answer_arrives_chunk_by_chunk_with_usage_last(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    fake_llm.add_rule(
        {
            "reply": {
                "content": "one two three four",
                "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
            }
        }
    )
    chunks = await _collect(client, _endpoint(fake_llm), ASK, streamed=True)
    assert _text(chunks) == "one two three four"
    assert len([c for c in chunks if any(ch.delta.content for ch in c.choices)]) == 4
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 4, 11)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[1].id
    assert chunks[1].model


async def test_the_streamed_request_carries_key_headers_properties_and_usage_option(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    fake_llm.add_rule({"reply": {"content": "ok"}})
    endpoint = _endpoint(
        fake_llm,
        headers={"X-Team": "endpoint", "X-Both": "endpoint"},
        properties={"temperature": 0.25, "max_tokens": 32},
    )
    request = ChatRequest(
        messages=ASK.messages,
        tools=[{"type": "function", "function": {"name": "noop", "parameters": {}}}],
        tool_choice="auto",
        headers={"X-Both": "call"},
    )
    await _collect(client, endpoint, request, streamed=True)
    (seen,) = fake_llm.requests_to("chat")
    assert seen.header("authorization") == "Bearer sk-test"
    assert seen.header("x-team") == "endpoint"
    assert seen.header("x-both") == "call"
    assert seen.body["model"] == "fake-model"
    assert seen.body["messages"] == [{"role": "user", "content": "hello"}]
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}
    assert seen.body["temperature"] == 0.25
    assert seen.body["max_tokens"] == 32
    assert seen.body["tool_choice"] == "auto"
    assert seen.body["tools"][0]["function"]["name"] == "noop"


async def test_streamed_tool_call_deltas_accumulate_to_the_scripted_calls(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    fake_llm.add_rule(
        {
            "reply": {
                "tool_calls": [
                    {"name": "lookup", "arguments": {"city": "Chicago", "days": 3}},
                    {"name": "noop", "arguments": {}},
                ]
            }
        }
    )
    chunks = await _collect(client, _endpoint(fake_llm), ASK, streamed=True)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    assert [calls[i]["name"] for i in sorted(calls)] == ["lookup", "noop"]
    assert calls[0]["arguments"].replace(" ", "") == '{"city":"Chicago","days":3}'
    assert all(call["id"] for call in calls.values())
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["tool_calls"]


async def test_streamed_and_plain_answers_say_the_same(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    fake_llm.add_rule({"reply": {"content": "same words both ways"}})
    streamed = await _collect(client, _endpoint(fake_llm), ASK, streamed=True)
    plain = await _collect(client, _endpoint(fake_llm), ASK, streamed=False)
    assert _text(streamed) == _text(plain) == "same words both ways"
    assert streamed[-1].usage == plain[-1].usage


@pytest.mark.parametrize(
    ("status", "retry_after", "kind"),
    [
        (400, None, ModelRequestError),
        (401, None, ModelRequestError),
        (404, None, ModelRequestError),
        (422, None, ModelRequestError),
        (408, None, ModelUnavailableError),
        (409, None, ModelUnavailableError),
        (429, 7.5, ModelUnavailableError),
        (500, None, ModelUnavailableError),
        (503, 2.0, ModelUnavailableError),
    ],
)
async def test_error_statuses_map_as_the_sdk_path_maps_them(
    fake_llm: FakeModelServer,
    client: OpenAIModelClient,
    status: int,
    retry_after: float | None,
    kind: type[Exception],
) -> None:
    fake_llm.add_rule(
        {"reply": {"error": {"status": status, "message": "nope", "retry_after": retry_after}}}
    )
    errors: list[Exception] = []
    for streamed in (True, False):
        with pytest.raises(kind) as raised:
            await _collect(client, _endpoint(fake_llm), ASK, streamed=streamed)
        errors.append(raised.value)
    thin, sdk = errors
    assert (
        str(thin)
        == str(sdk)
        == f"model 'fake': provider answered {status}: Error code: {status} - nope"
    )
    assert getattr(thin, "status", None) == getattr(sdk, "status", None) == status
    assert getattr(thin, "retry_after", None) == getattr(sdk, "retry_after", None)
    if kind is ModelUnavailableError:
        assert getattr(thin, "retry_after", None) == retry_after


async def test_an_unreachable_provider_is_unavailable_on_both_paths(
    client: OpenAIModelClient,
) -> None:
    endpoint = ModelEndpoint(
        name="gone",
        namespace="tests",
        provider="openai",
        model="m",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
    )
    for streamed in (True, False):
        with pytest.raises(ModelUnavailableError, match="model 'gone': connection failed"):
            await _collect(client, endpoint, ASK, streamed=streamed)


async def test_a_stream_cut_mid_answer_is_unavailable(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    fake_llm.add_rule({"reply": {"content": "one two three four five", "drop_after": 3}})
    received: list[ModelChunk] = []

    async def read() -> None:
        async with client.stream(_endpoint(fake_llm), ASK) as chunks:
            async for chunk in chunks:
                received.append(chunk)

    with pytest.raises(ModelUnavailableError, match="model 'fake'"):
        await read()
    assert 0 < len(received) <= 3


async def test_a_chunk_that_is_not_json_is_unavailable(
    fake_llm: FakeModelServer, client: OpenAIModelClient
) -> None:
    from aiohttp import web

    async def garbage(_: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"data: {not json\n\ndata: [DONE]\n\n", content_type="text/event-stream"
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        endpoint = ModelEndpoint(
            name="odd",
            namespace="t",
            provider="openai",
            model="m",
            base_url=f"http://127.0.0.1:{port}/v1",
        )
        with pytest.raises(ModelUnavailableError, match="not a chat completion chunk"):
            await _collect(client, endpoint, ASK, streamed=True)
    finally:
        await runner.cleanup()


async def test_retries_of_the_opening_request_honour_retry_after(
    fake_llm: FakeModelServer,
) -> None:
    fake_llm.add_rule(
        {
            "replies": [
                {"error": {"status": 429, "message": "slow down", "retry_after": 0.01}},
                {"error": {"status": 503, "message": "busy", "retry_after": 0.01}},
                {"content": "third time lucky"},
            ]
        }
    )
    models = OpenAIModelClient(max_retries=2)
    try:
        chunks = await _collect(models, _endpoint(fake_llm), ASK, streamed=True)
    finally:
        await models.aclose()
    assert _text(chunks) == "third time lucky"
    assert len(fake_llm.requests_to("chat")) == 3


async def test_a_request_refused_for_good_is_not_retried(fake_llm: FakeModelServer) -> None:
    fake_llm.add_rule({"reply": {"error": {"status": 400, "message": "bad"}}})
    models = OpenAIModelClient(max_retries=3)
    try:
        with pytest.raises(ModelRequestError):
            await _collect(models, _endpoint(fake_llm), ASK, streamed=True)
    finally:
        await models.aclose()
    assert len(fake_llm.requests_to("chat")) == 1


async def test_the_connection_pool_is_sized_by_max_connections(
    fake_llm: FakeModelServer,
) -> None:
    """With one connection, a second call waits until the first stream is released."""
    fake_llm.add_rule(
        {"match": {"user": "first"}, "reply": {"content": "a b c", "chunk_delay": 0.1}}
    )
    fake_llm.add_rule({"match": {"user": "second"}, "reply": {"content": "done"}})
    models = OpenAIModelClient(max_retries=0, max_connections=1)
    endpoint = _endpoint(fake_llm)
    second = ChatRequest(messages=[{"role": "user", "content": "second"}])
    try:
        async with models.stream(
            endpoint, ChatRequest(messages=[{"role": "user", "content": "first"}])
        ) as chunks:
            waiting = asyncio.create_task(_collect(models, endpoint, second, streamed=True))
            first = [chunk async for chunk in chunks]
            # The whole first answer was read while the second call was pending: it never
            # reached the provider, as the only connection was the first call's.
            assert len(fake_llm.requests_to("chat")) == 1
        assert _text(first) == "a b c"
        assert _text(await waiting) == "done"
    finally:
        await models.aclose()
    assert len(fake_llm.requests_to("chat")) == 2


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        OpenAIModelClient(max_connections=0)


_STREAM_IN_A_FRESH_PROCESS = """
import asyncio, sys
from ark_mesh.resolver import ChatRequest, ModelEndpoint, OpenAIModelClient

async def main() -> None:
    models = OpenAIModelClient(max_retries=0)
    endpoint = ModelEndpoint(
        name="fake", namespace="tests", provider="openai", model="fake-model",
        base_url=sys.argv[1], api_key="sk-test",
    )
    ask = ChatRequest(messages=[{"role": "user", "content": "hello"}])
    async with models.stream(endpoint, ask, streamed=True) as chunks:
        text = "".join(
            [c.delta.content or "" async for chunk in chunks for c in chunk.choices if c.delta]
        )
    await models.aclose()
    print(text, "openai" in sys.modules)

asyncio.run(main())
"""


async def test_a_streamed_call_never_imports_the_sdk(fake_llm: FakeModelServer) -> None:
    """The hot path builds no SDK client, so a process that only streams does not carry the
    SDK (~50 MiB resident, issue 14). In a fresh interpreter: this one has it loaded."""
    fake_llm.add_rule({"reply": {"content": "one two"}})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _STREAM_IN_A_FRESH_PROCESS,
        fake_llm.base_url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert out.decode().split() == ["one", "two", "False"]
