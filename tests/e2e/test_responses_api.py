"""OpenAI's Responses API and chat completions on a Model, end to end, with the official
``openai`` client: broker → JetStream → responses-reconciler → the fake model, every part its
own process (scale-strict preset), plus a second broker and a second responses-reconciler.

A conversation continued with ``previous_response_id`` is kept in KV ``ark-responses``, so the
second turn can go to another broker and be answered by another reconciler replica: the model
request of that turn carries the first turn's messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import openai
import pytest

from ark_mesh.bus import StreamReader
from ark_mesh.contracts import ResponsesResult, Tool, decoder_for, subjects
from ark_mesh.devmesh import LocalMesh
from ark_mesh.devmesh.presets import MODULES
from ark_mesh.testing.fake_llm import RecordedRequest
from ark_mesh.testing.processes import ServiceProcess

pytestmark = pytest.mark.slow

SLOW = " ".join(f"word{n}" for n in range(60))


def _client(process: ServiceProcess) -> openai.AsyncOpenAI:
    port = process.config["http"]["port"]
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="unused", max_retries=0
    )


async def _replica(mesh: LocalMesh, name: str, workdir: Any) -> ServiceProcess:
    process = ServiceProcess(name, MODULES[name], mesh.service_config(name), workdir)
    return await process.start(ready_within=mesh.ready_within)


def _last_user(request: RecordedRequest) -> str:
    users = [m for m in request.body["messages"] if m["role"] == "user"]
    return str(users[-1]["content"]) if users else ""


async def test_two_turns_continue_across_brokers_and_reconciler_replicas(
    start_mesh: Any, tmp_path: Any
) -> None:
    mesh, _ = await start_mesh(preset="scale-strict")
    assert mesh.fake_llm is not None
    first_broker = mesh.services["broker"]
    second_broker = await _replica(mesh, "broker", tmp_path / "broker-2")
    try:
        one, two = _client(first_broker), _client(second_broker)

        # Turn 1: broker 1, the mesh's responses-reconciler.
        first = await one.responses.create(
            model="model/default", input="My name is Ada.", instructions="Answer briefly."
        )
        assert first.id.startswith("resp_")
        assert first.object == "response"
        assert first.status == "completed"
        assert first.output_text == "Echo: My name is Ada."
        assert first.output[0].type == "message"
        assert first.output[0].content[0].type == "output_text"
        assert first.usage is not None
        assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens
        assert first.usage.total_tokens > 0

        # Turn 2: broker 2, and only the second reconciler replica is running.
        await mesh.services["responses-reconciler"].stop()
        replica = await _replica(mesh, "responses-reconciler", tmp_path / "reconciler-2")
        try:
            second = await two.responses.create(
                model="model/default", input="What is my name?", previous_response_id=first.id
            )
        finally:
            await replica.stop()
        assert second.output_text == "Echo: What is my name?"
        assert second.previous_response_id == first.id

        calls = await mesh.fake_llm.control.requests()
        turn_two = [c for c in calls if _last_user(c) == "What is my name?"]
        assert len(turn_two) == 1
        # The first turn's conversation, then the new input; its instructions were its own.
        assert turn_two[0].body["messages"] == [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Echo: My name is Ada."},
            {"role": "user", "content": "What is my name?"},
        ]
        turn_one = [c for c in calls if _last_user(c) == "My name is Ada."]
        assert turn_one[0].body["messages"][0] == {"role": "system", "content": "Answer briefly."}

        # Stored: any broker reads it back.
        again = await one.responses.retrieve(second.id)
        assert again.output_text == second.output_text
        assert again.previous_response_id == first.id

        # An unknown previous response is the caller's mistake, named.
        with pytest.raises(openai.NotFoundError) as missing:
            await two.responses.create(
                model="model/default", input="hi", previous_response_id="resp_nothere"
            )
        assert missing.value.body is not None
        assert missing.value.body["param"] == "previous_response_id"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            await one.responses.retrieve("resp_nothere")
    finally:
        await second_broker.stop()


async def test_a_streamed_response_and_chat_completions_on_a_model(start_mesh: Any) -> None:
    mesh, probe = await start_mesh(preset="scale-strict")
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rules(
        [{"match": {"user": "count"}, "reply": {"content": "one two three four"}}]
    )
    client = _client(mesh.services["broker"])

    stream = await client.responses.create(model="model/default", input="count", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(d.delta for d in deltas) == "one two three four"  # type: ignore[union-attr]
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.status == "completed"
    assert completed.output_text == "one two three four"
    assert completed.usage is not None
    assert completed.usage.total_tokens > 0

    # A streamed response is stored too and continues like any other.
    follow = await client.responses.create(
        model="model/default", input="and now?", previous_response_id=completed.id
    )
    assert follow.output_text == "Echo: and now?"

    # An unknown target is a 404 naming model, streamed or not.
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.responses.create(model="model/nope", input="hi")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="model/nope", input="hi", stream=True)

    # A tool target: the last user message is its arguments.
    async with await mesh.client() as kube:
        await kube.create(
            msgspec.convert(
                {
                    "apiVersion": "ark.mckinsey.com/v1alpha1",
                    "kind": "Tool",
                    "metadata": {"name": "noop", "namespace": mesh.namespace},
                    "spec": {"type": "builtin", "description": "does nothing"},
                },
                Tool,
            )
        )
    # The reconciler learns of the new Tool through its watch: until then it is not found.
    async with asyncio.timeout(60):
        while True:
            try:
                tool = await client.responses.create(
                    model="tool/noop", input='{"message": "tool says hi"}'
                )
                break
            except openai.NotFoundError:
                await asyncio.sleep(0.1)
    assert tool.output_text == "tool says hi"

    # Chat completions on model/<name>: the whole history goes to the model.
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    completion = await client.chat.completions.create(
        model="model/default",
        messages=history,  # type: ignore[arg-type]
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Echo: second question"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    ark = (completion.model_extra or {})["ark"]
    assert ark["queryStatus"]["phase"] == "done"
    calls = await mesh.fake_llm.control.requests()
    assert [c.body["messages"] for c in calls if _last_user(c) == "second question"] == [history]

    chunks = [
        chunk
        async for chunk in await client.chat.completions.create(
            model="model/default",
            messages=history,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: second question"
    finals = [c for c in chunks if (c.model_extra or {}).get("ark", {}).get("completedQuery")]
    assert len(finals) == 1
    assert finals[0].model_extra["ark"]["completedQuery"]["status"]["phase"] == "done"  # type: ignore[index]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0

    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="model/nope",
            messages=[{"role": "user", "content": "hi"}],
        )

    # A client that goes away mid-stream cancels the work: the model call is dropped and the
    # request is answered canceled.
    await mesh.fake_llm.control.add_rules(
        [{"match": {"user": "slowly"}, "reply": {"content": SLOW, "chunk_delay": 0.25}}]
    )
    stream = await client.responses.create(model="model/default", input="slowly", stream=True)
    response_id = ""
    async for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            break
    await stream.close()
    assert probe.bus is not None
    reader = StreamReader(probe.bus)
    async with asyncio.timeout(60):
        async for entry in reader.read(
            subjects.query_result(mesh.namespace, response_id),
            decoder=decoder_for(ResponsesResult).decode,
            limit=1,
        ):
            assert entry.message.status == "canceled"
    async with asyncio.timeout(60):
        calls = await mesh.fake_llm.control.wait_until(
            lambda recorded: any(
                c.outcome != "pending" for c in recorded if _last_user(c) == "slowly"
            )
        )
    assert [c.outcome for c in calls if _last_user(c) == "slowly"] == ["client_disconnected"]
