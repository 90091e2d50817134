"""``/openai/v1/responses`` and chat completions on ``model/<name>`` in one process: the real
``openai`` client → the broker → NATS → the real responses-reconciler → the fake model. The
multi-process, multi-replica run is tests/e2e/test_responses_api.py; this covers the edges:
tenancy of stored responses, ``store: false``, refused input items and parameters, agents."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from ark_mesh.bus import Bus
from ark_mesh.contracts import subjects

TOKENS = {"team-a": "token-of-team-a", "team-b": "token-of-team-b"}


@pytest.fixture
async def responding(world: Any) -> Any:
    await world.start_reconciler()
    await world.start_responses_reconciler()
    await world.start_broker()
    return world


def client(world: Any, tenant: str = "team-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{world.url}/openai/v1", api_key=TOKENS[tenant], max_retries=0
    )


async def test_a_stored_response_is_the_tenants_own(responding: Any) -> None:
    async with client(responding) as a, client(responding, "team-b") as b:
        first = await a.responses.create(model="model/default", input="secret plans")
        assert first.output_text == "Echo: secret plans"
        assert (await a.responses.retrieve(first.id)).output_text == "Echo: secret plans"
        with pytest.raises(openai.NotFoundError):
            await b.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError) as other:
            await b.responses.create(
                model="model/default", input="and?", previous_response_id=first.id
            )
        assert other.value.body["param"] == "previous_response_id"  # type: ignore[index]

        with pytest.raises(openai.NotFoundError):
            await b.responses.delete(first.id)
        await a.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            await a.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            await a.responses.delete(first.id)


async def test_the_conversation_is_kept_in_kv_under_the_tenant_and_response_id(
    responding: Any,
) -> None:
    async with client(responding) as a:
        first = await a.responses.create(model="model/default", input="remember this")
    bus = await Bus.connect(servers=(responding.nats.url,), name="peek")
    try:
        kv = await bus.key_value(subjects.RESPONSES_BUCKET)
        entry = await kv.get(f"team-a.{first.id}")
        stored = msgspec.json.decode(entry.value or b"")
        assert stored["conversation"] == [
            {"role": "user", "content": "remember this"},
            {"role": "assistant", "content": "Echo: remember this"},
        ]
        assert stored["tenant"] == "team-a"
    finally:
        await bus.close()


async def test_store_false_keeps_nothing(responding: Any) -> None:
    async with client(responding) as a:
        answer = await a.responses.create(model="model/default", input="forget it", store=False)
        assert answer.output_text == "Echo: forget it"
        with pytest.raises(openai.NotFoundError):
            await a.responses.retrieve(answer.id)


async def test_an_agent_answers_a_conversation_of_input_items(responding: Any) -> None:
    async with client(responding) as a:
        answer = await a.responses.create(
            model="agent/helper",
            input=[
                {"role": "developer", "content": "Be kind."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Hello "},
                        {"type": "input_text", "text": "agent"},
                    ],
                },
            ],
        )
    assert answer.status == "completed"
    assert answer.output_text == "Echo: Hello agent"
    calls = responding.fake.requests_to("chat")
    assert calls[-1].body["messages"][0] == {"role": "system", "content": "You are helpful."}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
            "input[0].type",
        ),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": "hi", "tools": [{"type": "function", "name": "f"}]}, "tools"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "previous_response_id": "not-an-id"}, "previous_response_id"),
        ({"input": "hi", "metadata": {"timeout": "soon"}}, "metadata.timeout"),
        (
            {"input": [{"role": "assistant", "content": "only me"}], "model": "agent/helper"},
            "input",
        ),
    ],
)
async def test_what_cannot_be_honoured_is_refused_by_name(
    responding: Any, body: dict[str, Any], param: str
) -> None:
    async with client(responding) as a:
        with pytest.raises(openai.BadRequestError) as refused:
            await a.responses.create(**{"model": "model/default", **body})
    assert refused.value.body["param"] == param  # type: ignore[index]


async def test_chat_on_a_model_sends_the_history_and_keeps_the_chat_shapes(
    responding: Any,
) -> None:
    history = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "uno"},
        {"role": "user", "content": "two"},
    ]
    async with client(responding) as a:
        completion = await a.chat.completions.create(model="model/default", messages=history)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Echo: two"
    assert completion.choices[0].finish_reason == "stop"
    ark = (completion.model_extra or {})["ark"]
    assert ark["query"] == completion.id
    assert ark["queryStatus"]["response"]["target"] == {"type": "model", "name": "default"}
    assert responding.fake.requests_to("chat")[-1].body["messages"] == history


async def test_a_failed_run_is_a_500_or_a_response_failed_event_and_is_not_stored(
    responding: Any,
) -> None:
    responding.fake.add_rule(
        {"match": {"user": "refuse"}, "reply": {"error": {"status": 400, "message": "nope"}}}
    )
    async with client(responding) as a:
        with pytest.raises(openai.InternalServerError) as failed:
            await a.responses.create(model="model/default", input="refuse")
        assert "nope" in str(failed.value)
        assert failed.value.response.headers["x-should-retry"] == "false"

        events = [
            event
            async for event in await a.responses.create(
                model="model/default", input="refuse", stream=True
            )
        ]
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "failed"
    assert final.error is not None
    assert "nope" in final.error.message
    async with client(responding) as a:
        with pytest.raises(openai.NotFoundError):
            await a.responses.retrieve(final.id)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("path", ["responses", "chat/completions"])
async def test_a_client_that_leaves_cancels_the_model_call(
    responding: Any, path: str, stream: bool
) -> None:
    slow = " ".join(f"w{n}" for n in range(80))
    responding.fake.add_rule(
        {"match": {"user": "take your time"}, "reply": {"content": slow, "delay": 60}}
    )
    body: dict[str, Any] = {"model": "model/default", "stream": stream}
    if path == "responses":
        body["input"] = "take your time"
    else:
        body["messages"] = [{"role": "user", "content": "take your time"}]
    # The client gives up once the model call has started: its connection closes.
    async with aiohttp.ClientSession() as http:
        post = asyncio.ensure_future(
            http.post(f"{responding.url}/openai/v1/{path}", json=body, headers=responding.auth())
        )
        async with asyncio.timeout(30):
            while True:
                if responding.fake.requests_to("chat"):
                    break
                await asyncio.sleep(0.02)
        post.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            (await post).close()  # a stream that had already started: close it
    async with asyncio.timeout(30):
        while True:
            if responding.fake.requests_to("chat")[0].outcome != "pending":
                break
            await asyncio.sleep(0.05)
    assert responding.fake.requests_to("chat")[0].outcome == "client_disconnected"


async def test_a_stream_past_its_timeout_ends_with_response_failed(responding: Any) -> None:
    responding.fake.add_rule(
        {"match": {"user": "never mind"}, "reply": {"content": "late", "delay": 30}}
    )
    async with client(responding) as a:
        events = [
            event
            async for event in await a.responses.create(
                model="model/default",
                input="never mind",
                stream=True,
                metadata={"timeout": "1s"},
            )
        ]
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
