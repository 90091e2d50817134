"""Conversation memory: shared history, Ark's HTTP memory API with paging, memory conditions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ark_mesh.contracts import Memory, MemoryRef, MemorySpec, MemoryStatus, QueryTarget, ValueSource
from ark_mesh.resolver import HTTPMemoryStore, OpenAIModelClient, QueryResolver, RecordingSink
from ark_mesh.testing.fake_llm import Match, Reply, Rule

from .conftest import World, meta, serving


class ArkMemoryAPI:
    """The ark-broker memory routes the resolver uses, small enough to read at a glance."""

    def __init__(self, page_limit: int = 1000) -> None:
        self.rows: list[dict[str, Any]] = []
        self.page_limit = page_limit
        self.page_requests: list[dict[str, str]] = []
        self.fail_reads = False
        self.url = ""

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response({"conversation_id": str(uuid.uuid4())}, status=201)

    async def list_messages(self, request: web.Request) -> web.Response:
        if self.fail_reads:
            return web.json_response(
                {"error": {"code": "INTERNAL", "message": "db down"}}, status=503
            )
        self.page_requests.append(dict(request.query))
        conversation = request.query["conversation_id"]
        limit = min(int(request.query.get("limit", "100")), self.page_limit)
        after = int(request.query.get("cursor", "0"))
        matching = [
            r for r in self.rows if r["conversation_id"] == conversation and r["sequence"] > after
        ]
        page = matching[:limit]
        has_more = len(matching) > limit
        body: dict[str, Any] = {"items": page, "total": len(matching), "hasMore": has_more}
        if has_more:
            body["nextCursor"] = page[-1]["sequence"]
        return web.json_response(body)

    async def add_messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        for message in body["messages"]:
            self.rows.append(
                {
                    "conversation_id": body["conversation_id"],
                    "query_id": body["query_id"],
                    "message": message,
                    "sequence": len(self.rows) + 1,
                    "timestamp": "2025-01-01T00:00:00Z",
                }
            )
        return web.Response(status=200)


@pytest.fixture
async def memory_api() -> AsyncIterator[ArkMemoryAPI]:
    api = ArkMemoryAPI()
    routes = [
        web.post("/conversations", api.create),
        web.get("/messages", api.list_messages),
        web.post("/messages", api.add_messages),
    ]
    async with serving(routes) as api.url:
        yield api


def default_memory(address: str = "http://memory.invalid") -> Memory:
    return Memory(
        metadata=meta("default"),
        spec=MemorySpec(address=ValueSource(value=address)),
        status=MemoryStatus(last_resolved_address=address),
    )


async def test_two_queries_sharing_a_conversation_see_each_others_history(world: World) -> None:
    world.model()
    world.agent("helper")
    world.add(default_memory())
    world.fake.add_rule(
        Rule(match=Match(user="my name"), reply=Reply(content="Nice to meet you, Ada."))
    )
    first, _ = await world.resolve(
        world.request(
            "first",
            input="my name is Ada",
            target=QueryTarget(type="agent", name="helper"),
            conversation_id="conv-1",
        )
    )
    second, _ = await world.resolve(
        world.request(
            "second",
            input="what is my name?",
            target=QueryTarget(type="agent", name="helper"),
            conversation_id="conv-1",
        )
    )
    assert (first.phase, second.phase) == ("done", "done")
    assert first.conversation_id == second.conversation_id == "conv-1"
    _, later = world.fake.requests_to("chat")
    assert later.body["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Nice to meet you, Ada.", "name": "helper"},
        {"role": "user", "content": "what is my name?"},
    ]
    saved = world.memory.conversations["conv-1"]
    assert [query for query, _ in saved] == ["first", "first", "second", "second"]
    conditions = {c.type: c for c in second.conditions or []}
    assert conditions["MemoryDegraded"].reason == "MemoryHealthy"


async def test_memory_creates_a_conversation_when_none_is_given(world: World) -> None:
    world.model()
    world.agent("helper")
    world.add(default_memory())
    status, sink = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"))
    )
    assert status.conversation_id in world.memory.conversations
    reasons = sink.reasons()
    assert reasons.index("MemoryGetMessagesComplete") < reasons.index("AgentExecutionStart")
    assert reasons.index("MemoryAddMessagesComplete") < reasons.index("QueryExecutionComplete")
    complete = sink.events[-1]
    assert complete.data["conversationId"] == status.conversation_id


async def test_conversation_without_memory_reports_memory_unavailable(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), conversation_id="orphan")
    )
    assert status.phase == "done"
    assert status.conversation_id == "orphan"
    [condition] = [c for c in status.conditions or [] if c.type == "MemoryUnavailable"]
    assert (condition.status, condition.reason) == ("True", "NoMemoryBackend")


async def test_explicit_memory_that_does_not_exist_is_an_error(world: World) -> None:
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"), memory=MemoryRef(name="nope")
        )
    )
    assert status.phase == "error"
    assert status.response is not None
    assert (
        status.response.content
        == "Memory 'nope' not found in namespace 'team-a' (referenced by the query)"
    )


async def test_a_memory_of_another_namespace_is_refused_naming_the_field(world: World) -> None:
    """Another namespace's Memory holds another tenant's conversations."""
    world.model()
    world.agent("helper")
    status, _ = await world.resolve(
        world.request(
            target=QueryTarget(type="agent", name="helper"),
            memory=MemoryRef(name="default", namespace="team-b"),
        )
    )
    assert status.phase == "error"
    assert status.response is not None
    assert status.response.content.startswith("spec.memory.namespace:")
    assert "'team-b'" in status.response.content
    assert world.fake.requests == []


async def test_ark_http_memory_api_history_is_read_across_every_page(
    world: World, memory_api: ArkMemoryAPI
) -> None:
    memory_api.page_limit = 3
    for index in range(7):
        memory_api.rows.append(
            {
                "conversation_id": "long",
                "query_id": "old",
                "message": {"role": "user", "content": f"message {index}"},
                "sequence": len(memory_api.rows) + 1,
                "timestamp": "2025-01-01T00:00:00Z",
            }
        )
    world.model()
    world.agent("helper")
    world.add(default_memory(memory_api.url))
    models = OpenAIModelClient(max_retries=0)
    async with QueryResolver(world.store, models=models) as reconciler:
        status = await reconciler.resolve(
            world.request(
                "next",
                input="and now?",
                target=QueryTarget(type="agent", name="helper"),
                conversation_id="long",
            ),
            RecordingSink(),
        )
    await models.aclose()
    assert status.phase == "done"
    [sent] = world.fake.requests_to("chat")
    history = [m["content"] for m in sent.body["messages"][1:-1]]
    assert history == [f"message {i}" for i in range(7)]
    assert [p.get("cursor") for p in memory_api.page_requests] == [None, "3", "6"]
    saved = [r for r in memory_api.rows if r["query_id"] == "next"]
    assert [r["message"]["role"] for r in saved] == ["user", "assistant"]


async def test_memory_read_failure_degrades_instead_of_failing(
    world: World, memory_api: ArkMemoryAPI
) -> None:
    memory_api.fail_reads = True
    world.model()
    world.agent("helper")
    world.add(default_memory(memory_api.url))
    models = OpenAIModelClient(max_retries=0)
    sink = RecordingSink()
    async with QueryResolver(world.store, models=models) as reconciler:
        status = await reconciler.resolve(
            world.request(target=QueryTarget(type="agent", name="helper"), conversation_id="c"),
            sink,
        )
    await models.aclose()
    assert status.phase == "done"
    conditions = {c.type: c for c in status.conditions or []}
    assert (conditions["MemoryDegraded"].status, conditions["MemoryDegraded"].reason) == (
        "True",
        "GetMessagesFailed",
    )
    assert "MemoryGetMessagesError" in sink.reasons()


async def test_http_memory_store_round_trip(memory_api: ArkMemoryAPI) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        store = HTTPMemoryStore(session, memory_api.url, page_size=2)
        conversation = await store.create_conversation()
        await store.add_messages(
            conversation, "q1", [{"role": "user", "content": str(i)} for i in range(5)]
        )
        assert [m["content"] for m in await store.get_messages(conversation)] == [
            "0",
            "1",
            "2",
            "3",
            "4",
        ]


async def test_caller_supplied_history_comes_before_the_input(world) -> None:  # type: ignore[no-untyped-def]
    from ark_mesh.contracts import QueryTarget

    world.model()
    world.agent("helper")
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
    ]
    status, _ = await world.resolve(
        world.request(target=QueryTarget(type="agent", name="helper"), input="What is my name?"),
        history=history,
    )
    assert status.phase == "done"
    sent = world.fake.requests[-1].body["messages"]
    assert [m["content"] for m in sent[1:]] == ["My name is Ada.", "Hello Ada.", "What is my name?"]
