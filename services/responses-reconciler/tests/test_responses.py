"""Requests on model and agent targets, end to end: a real nats-server, the service in this
process, the fake model server over HTTP; results and chunks read back from JetStream."""

from __future__ import annotations

from typing import Any

from ark_mesh.contracts import TokenUsage

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": "What is my name?"},
]


async def test_a_model_target_gets_the_whole_conversation_and_one_result(world: Any) -> None:
    await world.start()
    request = world.request("model/default", CONVERSATION)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "completed"
    assert result.request_id == request.request_id
    assert result.message == {"role": "assistant", "content": "Echo: What is my name?"}
    assert result.usage == TokenUsage(prompt_tokens=50, completion_tokens=100, total_tokens=150)
    calls = world.fake.requests_to("chat")
    assert len(calls) == 1
    assert calls[0].body["messages"] == CONVERSATION
    assert calls[0].body["model"] == "fake-model"
    await world.settled()
    assert await world.chunks(request) == []  # not streaming: nothing on the chunk subject
    assert len(await world.results(request)) == 1


async def test_a_streaming_request_gets_numbered_chunks_then_the_final_chunk(world: Any) -> None:
    world.fake.add_rule(
        {"match": {"user": "count"}, "reply": {"content": "one two three four", "chunk_words": 1}}
    )
    await world.start()
    request = world.request(
        "model/default", [{"role": "user", "content": "count to four"}], stream=True
    )
    await world.submit(request)

    result = await world.result(request)
    await world.settled()
    chunks = await world.chunks(request)

    assert result.status == "completed"
    assert [chunk.seq for chunk in chunks] == list(range(1, len(chunks) + 1))
    assert len(chunks) > 2
    final = chunks[-1]
    assert final.id == "chatcmpl-final"
    assert final.is_final
    assert [chunk for chunk in chunks if chunk.is_final] == [final]
    completed = final.ark.completed_query
    assert completed is not None
    assert completed.status is not None
    assert completed.status.phase == "done"
    text = "".join(choice.delta.content or "" for chunk in chunks[:-1] for choice in chunk.choices)
    assert text == "one two three four"
    assert result.message == {"role": "assistant", "content": text}
    assert all(chunk.ark.query == request.request_id for chunk in chunks)
    assert chunks[0].ark.target == "model/default"
    assert chunks[0].ark.model == "default"


async def test_an_agent_target_runs_through_the_query_reconciler(world: Any) -> None:
    await world.start()
    request = world.request("agent/helper", CONVERSATION, stream=True)
    await world.submit(request)

    result = await world.result(request)
    await world.settled()

    assert result.status == "completed"
    assert result.message == {"role": "assistant", "content": "Echo: What is my name?"}
    assert result.usage is not None
    assert result.usage.total_tokens == 150
    messages = world.fake.requests_to("chat")[0].body["messages"]
    # The agent's own prompt, the caller's earlier turns as history (their system message gives
    # way to the agent's prompt), then the last user message as the input.
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "You are helpful."),
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    chunks = await world.chunks(request)
    assert chunks[-1].is_final
    assert chunks[0].ark.agent == "helper"
    assert [chunk.seq for chunk in chunks] == list(range(1, len(chunks) + 1))


async def test_an_unknown_model_fails_naming_it(world: Any) -> None:
    await world.start()
    request = world.request("model/missing-model", CONVERSATION, stream=True)
    await world.submit(request)

    result = await world.result(request)
    await world.settled()

    assert result.status == "failed"
    assert result.error is not None
    assert "missing-model" in result.error
    assert world.fake.requests_to("chat") == []
    chunks = await world.chunks(request)
    assert [(chunk.id, chunk.seq) for chunk in chunks] == [("chatcmpl-final", 1)]


async def test_an_unknown_agent_fails_naming_it(world: Any) -> None:
    await world.start()
    request = world.request("agent/nobody", CONVERSATION)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.error is not None
    assert "nobody" in result.error


async def test_a_malformed_target_fails_naming_it(world: Any) -> None:
    await world.start()
    request = world.request("gpt-4o", CONVERSATION)
    await world.submit(request)

    result = await world.result(request)

    assert result.status == "failed"
    assert result.error is not None
    assert "'gpt-4o'" in result.error


async def test_a_model_failing_until_max_deliver_still_gets_a_failed_result(world: Any) -> None:
    world.fake.add_rule(
        {"match": {"user": "broken"}, "reply": {"error": {"status": 500, "message": "kaput"}}}
    )
    service = await world.start()
    request = world.request("model/default", [{"role": "user", "content": "broken"}], stream=True)
    await world.submit(request)

    result = await world.result(request)
    await world.settled()

    assert result.status == "failed"
    assert result.error is not None
    assert "kaput" in result.error
    assert len(world.fake.requests_to("chat")) == 3  # MAX_DELIVER attempts, then the dead letter
    assert service.worker.stats.retried == 2
    chunks = await world.chunks(request)
    assert [chunk.id for chunk in chunks] == ["chatcmpl-final"]
    assert len(await world.results(request)) == 1


async def test_an_agent_that_needs_approval_fails_the_chat_request_and_ends_its_stream(
    world: Any,
) -> None:
    world.fake.add_rule(
        {
            "match": {"system": "You ask before acting."},
            "reply": {"tool_calls": [{"name": "noop", "arguments": {"message": "hi"}}]},
        }
    )
    await world.start()
    request = world.request("agent/gatekeeper", [{"role": "user", "content": "do it"}], stream=True)
    await world.submit(request)

    result = await world.result(request)
    await world.settled()

    assert result.status == "failed"
    assert result.error is not None
    assert "needs human approval" in result.error
    chunks = await world.chunks(request)
    assert chunks[-1].is_final
    assert [chunk for chunk in chunks if chunk.is_final] == [chunks[-1]]
    assert len(world.fake.requests_to("chat")) == 1
