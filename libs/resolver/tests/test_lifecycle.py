"""Timeouts, cancellation and transient provider failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from ark_mesh.contracts import AgentTool, HTTPToolSpec, QueryTarget, Tool, ToolSpec
from ark_mesh.resolver import ModelRequestError, ModelUnavailableError, RecordingSink
from ark_mesh.testing.fake_llm import Reply, Rule, ScriptedError, ScriptedToolCall

from .conftest import World, meta

LONG_ANSWER = " ".join(f"word{i}" for i in range(400))


def completed(status: object) -> tuple[str, str, str]:
    [condition] = [c for c in getattr(status, "conditions", None) or [] if c.type == "Completed"]
    return condition.status, condition.reason, condition.message


async def test_one_millisecond_timeout_ends_in_error_timed_out_in_execution(world: World) -> None:
    world.model()
    world.agent("helper")
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), timeout="1ms")
    )
    assert status.phase == "error"
    assert completed(status) == ("True", "TimedOutInExecution", "Query timed out during execution")
    assert status.response is not None
    assert status.response.content == "Query timed out during execution"
    assert [u.phase for u in sink.statuses] == ["running", "error"]
    assert sink.chunks[-1].id == "chatcmpl-final"


async def test_timeout_stops_the_live_stream(world: World) -> None:
    world.stream_model_calls()
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(content=LONG_ANSWER, chunk_delay=0.05)))
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), timeout="1s")
    )
    assert status.phase == "error"
    assert completed(status)[1] == "TimedOutInExecution"
    assert len(sink.content().split()) < 400
    async with asyncio.timeout(30):
        await world.fake.wait_until(lambda rs: rs[-1].outcome == "client_disconnected")


async def test_past_start_deadline_times_out_in_queue_without_calling_the_model(
    world: World,
) -> None:
    world.model()
    world.agent("helper")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), deadline=past)
    )
    assert status.phase == "error"
    assert completed(status)[1] == "TimedOutInQueue"
    assert world.fake.requests == []
    # It never ran: no "running" transition, just the terminal one.
    assert [u.phase for u in sink.statuses] == ["error"]


async def test_time_spent_queued_does_not_shorten_execution(world: World) -> None:
    world.model()
    world.agent("helper")
    soon = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    world.fake.add_rule(Rule(reply=Reply(content="slow but fine", chunk_delay=0.2)))
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), deadline=soon, timeout="30s")
    )
    assert status.phase == "done"


async def test_cancel_stops_the_in_flight_stream_and_no_chunk_follows(world: World) -> None:
    world.stream_model_calls()
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(content=LONG_ANSWER, chunk_delay=0.05)))
    cancel = asyncio.Event()
    sink = RecordingSink()
    request = world.request(target=QueryTarget(type="agent", name="helper"))
    resolving = asyncio.create_task(world.reconciler.resolve(request, sink, cancel=cancel))
    async with asyncio.timeout(30):
        await sink.wait_until(lambda s: "word2" in s.content())
    cancel.set()
    chunks_at_cancel = len(sink.chunks)
    async with asyncio.timeout(30):
        status = await resolving
    assert status.phase == "canceled"
    assert completed(status)[:2] == ("True", "QueryCanceled")
    after_cancel = sink.chunks[chunks_at_cancel:]
    assert [c.id for c in after_cancel] == ["chatcmpl-final"]
    assert after_cancel[0].ark.completed_query is not None
    assert after_cancel[0].ark.completed_query.status == status
    assert "QueryExecutionCanceled" in sink.reasons()
    assert [u.phase for u in sink.statuses] == ["running", "canceled"]
    async with asyncio.timeout(30):
        await world.fake.wait_until(lambda rs: rs[-1].outcome == "client_disconnected")


class SlowBackend:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.aborted = asyncio.Event()

    async def slow(self, request: web.Request) -> web.Response:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.aborted.set()
            raise
        return web.Response(text="too late")


@pytest.fixture
async def slow_backend() -> AsyncIterator[tuple[SlowBackend, str]]:
    backend = SlowBackend()
    app = web.Application()
    app.add_routes([web.get("/slow", backend.slow)])
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield backend, f"http://{host}:{port}"
    await runner.cleanup()


async def test_cancel_aborts_a_running_tool_call(
    world: World, slow_backend: tuple[SlowBackend, str]
) -> None:
    backend, url = slow_backend
    world.model()
    world.add(
        Tool(
            metadata=meta("slow"), spec=ToolSpec(type="http", http=HTTPToolSpec(url=f"{url}/slow"))
        )
    )
    world.agent("waiter", tools=[AgentTool(type="http", name="slow")])
    world.fake.add_rule(Rule(reply=Reply(tool_calls=[ScriptedToolCall(name="slow")])))
    cancel = asyncio.Event()
    sink = RecordingSink()
    resolving = asyncio.create_task(
        world.reconciler.resolve(
            world.request(target=QueryTarget(type="agent", name="waiter")), sink, cancel=cancel
        )
    )
    async with asyncio.timeout(30):
        await backend.started.wait()
    cancel.set()
    async with asyncio.timeout(30):
        status = await resolving
        await backend.aborted.wait()
    assert status.phase == "canceled"
    assert "ToolCallComplete" not in sink.reasons()


async def test_cancel_before_start_never_calls_the_model(world: World) -> None:
    world.model()
    world.agent("helper")
    cancel = asyncio.Event()
    cancel.set()
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper")), cancel=cancel
    )
    assert status.phase == "canceled"
    assert world.fake.requests == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(error=ScriptedError(status=429, message="slow down", retry_after=2)),
        Reply(error=ScriptedError(status=503, message="overloaded")),
        Reply(content="a b c d e f g", drop_after=3),
        Reply(content="a b c d e f g", drop_after=0),
    ],
    ids=["rate-limited", "server-error", "dropped-mid-stream", "dropped-before-the-answer"],
)
async def test_transient_provider_failures_can_be_handed_back_for_a_retry(
    world: World, reply: Reply
) -> None:
    world.stream_model_calls(reply.drop_after is not None and reply.drop_after > 0)
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=reply))
    sink = RecordingSink()
    with pytest.raises(ModelUnavailableError):
        await world.reconciler.resolve(
            world.request(target=QueryTarget(type="agent", name="helper")),
            sink,
            raise_transient=True,
        )
    assert [u.phase for u in sink.statuses] == ["running"]
    assert not any(c.ark.completed_query for c in sink.chunks)
    status, _ = await world.resolve(world.request(target=QueryTarget(type="agent", name="helper")))
    assert status.phase == "error"
    assert status.response is not None
    assert "model 'default'" in status.response.content


async def test_rate_limit_error_carries_retry_after(world: World) -> None:
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(error=ScriptedError(status=429, retry_after=7))))
    with pytest.raises(ModelUnavailableError) as caught:
        await world.reconciler.resolve(
            world.request(target=QueryTarget(type="agent", name="helper")),
            RecordingSink(),
            raise_transient=True,
        )
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)


async def test_refused_request_is_permanent_even_when_transients_are_raised(world: World) -> None:
    """A 400 is a ModelRequestError: it ends the query instead of being handed back."""
    assert not issubclass(ModelRequestError, ModelUnavailableError)
    world.model()
    world.agent("helper")
    world.fake.add_rule(Rule(reply=Reply(error=ScriptedError(status=400, message="bad schema"))))
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper")), raise_transient=True
    )
    assert status.phase == "error"
    assert status.response is not None
    assert "400" in status.response.content
    assert "bad schema" in status.response.content


async def test_invalid_timeout_is_a_clear_error(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), timeout="soon")
    )
    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content.startswith("spec.timeout: invalid duration 'soon'")


async def test_a_request_whose_spec_is_already_canceled_is_canceled(world: World) -> None:
    world.model()
    world.agent("helper")
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), cancel=True)
    )
    assert status.phase == "canceled"
    assert status.response is None
    assert world.fake.requests == []
    assert sink.chunks[-1].ark.completed_query is not None


async def test_failure_handed_back_for_retry_leaves_memory_untouched(world: World) -> None:
    from ark_mesh.contracts import Memory, MemorySpec, ValueSource

    world.model()
    world.agent("helper")
    world.add(
        Memory(metadata=meta("default"), spec=MemorySpec(address=ValueSource(value="http://m")))
    )
    world.fake.add_rule(Rule(reply=Reply(error=ScriptedError(status=503))))
    request = world.request(target=QueryTarget(type="agent", name="helper"), conversation_id="c1")
    with pytest.raises(ModelUnavailableError):
        await world.reconciler.resolve(request, RecordingSink(), raise_transient=True)
    assert world.memory.conversations.get("c1", []) == []
    status, _ = await world.resolve(request)
    assert status.phase == "error"
    assert [m["content"] for _, m in world.memory.conversations["c1"]][1].startswith("Error: ")
