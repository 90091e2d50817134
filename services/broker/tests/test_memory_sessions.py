"""Ark's Memory API over ``ARK_MEMORY`` and the sessions read model over ``ARK_EVENTS``.

A real nats-server, the real query-reconciler with the ``jetstream`` memory backend (a Memory
``default`` in each tenant's namespace, so queries keep history) and two broker replicas; the
model is the fake server. Messages appended through ``POST /messages`` are history to the next
query of that conversation; sessions folded by whichever replica took an event read the same
from either replica.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ark_mesh.broker import BrokerService
from ark_mesh.broker.sessions import SessionStore, StoredSession, fold, session_key
from ark_mesh.bus import PayloadCipher
from ark_mesh.contracts import QueryEvent
from ark_mesh.query_reconciler import QueryReconcilerConfig, QueryReconcilerService
from ark_mesh.query_reconciler.config import MemoryConfig
from ark_mesh.service import HealthConfig, ResourcesConfig

TENANT_A = "team-a"
TENANT_B = "team-b"


def _resources(world: Any) -> ResourcesConfig:
    """The conftest's manifests plus a Memory ``default`` per tenant, in a directory of their
    own (the world's is rewritten whenever a config is built)."""
    directory: Path = world.root / "memory-manifests"
    directory.mkdir(exist_ok=True)
    documents = yaml.safe_load_all((world.manifests_dir() / "resources.yaml").read_text())
    documents = [*documents] + [
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Memory",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"address": {"value": "http://memory.invalid"}},
        }
        for namespace in (TENANT_A, TENANT_B)
    ]
    (directory / "resources.yaml").write_text(yaml.safe_dump_all(documents))
    return ResourcesConfig(source="manifests", manifests=str(directory), default_namespace=TENANT_A)


@pytest.fixture
async def mesh(world: Any) -> Any:
    """One reconciler keeping memory on JetStream, two broker replicas."""
    resources = _resources(world)
    reconciler = QueryReconcilerService(
        QueryReconcilerConfig(
            bus=world.bus(),
            instance="memory-replica",
            resources=resources,
            memory=MemoryConfig(backend="jetstream"),
            health=HealthConfig(host="127.0.0.1", port=0),
        )
    )
    await reconciler.start(await world._health())
    world.reconcilers.append(reconciler)
    for _ in range(2):
        await world.start_broker(world.broker_config(resources=resources))
    return world


async def call(
    world: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant: str = TENANT_A,
    broker: BrokerService | None = None,
) -> tuple[int, Any]:
    url = (broker or world.brokers[0]).url + path
    data = msgspec.json.encode(body) if body is not None else None
    headers = {**world.auth(tenant), "Content-Type": "application/json"}
    async with world.http.request(method, url, data=data, headers=headers) as response:
        text = await response.text()
        return response.status, msgspec.json.decode(text) if text else None


async def until(world: Any, path: str, check: Any, *, broker: BrokerService, within: float = 60):
    """Poll ``path`` on ``broker`` until ``check(body)`` holds (a bound, never a timing
    assertion: the events are folded asynchronously)."""
    async with asyncio.timeout(within):
        while True:
            status, body = await call(world, "GET", path, broker=broker)
            if status == 200 and check(body):
                return body
            await asyncio.sleep(0.05)


async def folded(broker: BrokerService) -> None:
    """Wait until the shared ``broker-sessions`` consumer has folded every event so far."""
    assert broker.bus is not None
    async with asyncio.timeout(60):
        while True:
            info = await broker.bus.jsm.consumer_info("ARK_EVENTS", "broker-sessions")
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.05)


async def test_messages_round_trip_become_history_and_stay_in_their_tenant(mesh: Any) -> None:
    world = mesh
    status, created = await call(world, "POST", "/conversations")
    assert status == 201
    cid = created["conversation_id"]
    assert str(uuid.UUID(cid)) == cid
    seeded = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
    ]
    status, body = await call(
        world, "POST", "/messages", {"conversation_id": cid, "query_id": "seed", "messages": seeded}
    )
    assert (status, body) == (200, None)

    status, conversation = await call(world, "GET", f"/conversations/{cid}")
    assert status == 200
    assert conversation["conversation_id"] == cid
    assert [item["message"] for item in conversation["messages"]] == seeded
    assert {item["query_id"] for item in conversation["messages"]} == {"seed"}
    assert all(item["sequence"] > 0 and item["timestamp"] for item in conversation["messages"])
    assert (await call(world, "GET", "/conversations"))[1] == {"conversations": [cid]}
    status, summary = await call(world, "GET", "/memory-status")
    assert summary == {
        "total_conversations": 1,
        "total_messages": 2,
        "conversations": {cid: {"message_count": 2, "query_count": 1}},
    }

    # Another tenant sees nothing of it.
    assert (await call(world, "GET", f"/conversations/{cid}", tenant=TENANT_B))[0] == 404
    assert (await call(world, "GET", "/conversations", tenant=TENANT_B))[1] == {"conversations": []}
    status, _ = await call(world, "DELETE", "/conversations", tenant=TENANT_B)
    assert status == 200
    assert (await call(world, "GET", f"/conversations/{cid}"))[0] == 200

    # A query in that conversation is given the appended messages as history.
    query_id = await world.submit("What is my name?", conversationId=cid)
    assert (await world.wait_phase(query_id))["status"]["phase"] == "done"
    history = world.fake.requests_to("chat")[-1].body["messages"]
    assert [m["content"] for m in history if m["role"] != "system"][:3] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
    ]
    status, page = await call(world, "GET", f"/messages?conversation_id={cid}")
    name = (await world.get(f"/v1/queries/{query_id}"))[1]["name"]
    assert [item["query_id"] for item in page["items"]][:2] == ["seed", "seed"]
    assert name in {item["query_id"] for item in page["items"]}
    assert page["total"] == len(page["items"])
    assert page["hasMore"] is False

    # `limit` is exact even inside one save; the next page continues where this one stopped.
    status, first = await call(world, "GET", f"/messages?conversation_id={cid}&limit=1")
    assert [item["message"] for item in first["items"]] == seeded[:1]
    assert first["hasMore"] is True
    status, rest = await call(
        world, "GET", f"/messages?conversation_id={cid}&cursor={first['nextCursor']}"
    )
    assert [item["message"] for item in rest["items"]][:1] == seeded[1:]
    assert [item["query_id"] for item in rest["items"]][1:] == [name] * (len(rest["items"]) - 1)
    sequences = [item["sequence"] for item in first["items"] + rest["items"]]
    assert sequences == sorted(set(sequences)), "unique and increasing"

    # ark-api's views of the same store.
    proxied = await call(world, "GET", f"/v1/broker/messages?memory=default&conversation_id={cid}")
    assert proxied == (200, page)
    assert (await call(world, "GET", "/v1/conversations"))[1] == {
        "items": [{"conversationId": cid, "memoryName": "default"}],
        "total": 1,
    }
    status, listed = await call(world, "GET", f"/v1/memory-messages?conversation={cid}")
    assert listed["total"] == len(page["items"])
    assert listed["items"][-1]["message"] == seeded[0]  # newest first

    # Deleting one query's messages leaves the others.
    status, _ = await call(world, "DELETE", f"/conversations/{cid}/queries/seed/messages")
    assert status == 200
    status, conversation = await call(world, "GET", f"/conversations/{cid}")
    assert {item["query_id"] for item in conversation["messages"]} == {name}
    status, _ = await call(world, "DELETE", f"/conversations/{cid}")
    assert status == 200
    assert (await call(world, "GET", f"/conversations/{cid}"))[0] == 404
    assert (await call(world, "GET", "/memory-status"))[1]["total_messages"] == 0


async def test_bad_memory_requests_name_the_field(mesh: Any) -> None:
    world = mesh
    cases = [
        ({"conversation_id": "a.b", "query_id": "q", "messages": []}, "conversation_id"),
        (
            {"conversation_id": "c", "query_id": "q", "messages": [], "ttl_seconds": 5},
            "ttl_seconds",
        ),
        ({"conversation_id": "c", "query_id": "q", "messages": "hi"}, "messages"),
        ({"query_id": "q", "messages": []}, "conversation_id"),
    ]
    empty = {"conversation_id": "empty", "query_id": "q", "messages": []}
    assert (await call(world, "POST", "/messages", empty))[0] == 200
    assert (await call(world, "GET", "/conversations/empty"))[0] == 404
    for body, field in cases:
        status, answer = await call(world, "POST", "/messages", body)
        assert status == 422, answer
        assert answer["error"]["field"] == field
    for path, field in (
        ("/messages?limit=0", "limit"),
        ("/messages?watch=true", "watch"),
        ("/sessions?watch=true", "watch"),
        ("/sessions?status=busy", "status"),
        ("/sessions?limit=5&limit=6", "limit"),
    ):
        status, answer = await call(world, "GET", path)
        assert (status, answer["error"]["field"]) == (400, field), path


async def test_a_session_reads_the_same_from_either_replica(mesh: Any) -> None:
    world = mesh
    first, second = world.brokers
    _, created = await call(world, "POST", "/conversations")
    cid = created["conversation_id"]
    ids = []
    for broker in (first, second):
        world_url = broker.url
        async with world.http.post(
            f"{world_url}/v1/queries",
            json={
                "input": "Hello",
                "target": {"type": "agent", "name": "helper"},
                "sessionId": "session-demo",
                "conversationId": cid,
            },
            headers=world.auth(TENANT_A),
        ) as response:
            assert response.status == 202
            ids.append((await response.json())["id"])
    names = []
    for query_id in ids:
        names.append((await world.wait_phase(query_id))["name"])

    def settled(body: dict[str, Any]) -> bool:
        return (
            body["status"] == "idle"
            and sorted(body["queries"]) == sorted(names)
            and all(query["phase"] == "done" for query in body["queries"].values())
        )

    seen = await until(world, "/sessions/session-demo", settled, broker=first)
    assert (await call(world, "GET", "/sessions/session-demo", broker=second))[1] == seen
    assert (seen["sessionId"], seen["name"]) == ("session-demo", "demo")
    assert seen["errorCount"] == 0
    assert seen["participants"] == [{"id": "helper", "name": "helper", "type": "agent"}]
    [conversation] = seen["conversations"]
    assert conversation["conversationId"] == cid
    assert (conversation["name"], conversation["messageCount"]) == ("helper", 2)
    assert conversation["participantType"] == "agent"
    for name in names:
        query = seen["queries"][name]
        assert (query["agent"], query["targetType"], query["conversationId"]) == (
            "helper",
            "agent",
            cid,
        )
        assert query["namespace"] == TENANT_A
        assert query["completedAt"]

    # The whole store, and ark-api's aliases, from the other replica.
    store = await until(
        world, "/sessions", lambda body: "session-demo" in body["sessions"], broker=second
    )
    assert store["sessions"]["session-demo"]["queries"].keys() == seen["queries"].keys()
    assert (await call(world, "GET", "/v1/broker/sessions/session-demo", broker=second))[1] == seen
    _, cli = await call(world, "GET", "/v1/sessions", broker=second)
    assert {"sessionId": "session-demo", "memoryName": "default"} in cli["items"]
    # Another tenant does not see it.
    assert (await call(world, "GET", "/sessions/session-demo", tenant=TENANT_B))[0] == 404
    _, other = await call(world, "GET", "/sessions", tenant=TENANT_B)
    assert "session-demo" not in other["sessions"]

    # A query that fails makes the session's status error.
    async with world.http.post(
        f"{second.url}/v1/queries",
        json={
            "input": "Hello",
            "target": {"type": "agent", "name": "missing"},
            "sessionId": "session-demo",
        },
        headers=world.auth(TENANT_A),
    ) as response:
        assert response.status == 202
        failed = (await response.json())["id"]
    failed_name = (await world.wait_phase(failed))["name"]
    broken = await until(
        world,
        "/sessions/session-demo",
        lambda body: failed_name in body["queries"] and body["status"] == "error",
        broker=second,
    )
    assert broken["errorCount"] == 1
    assert broken["queries"][failed_name]["phase"] == "error"
    assert broken["queries"][failed_name]["error"]
    assert "conversationId" not in broken["queries"][failed_name]

    # Messages stored for a known query (Ark's applyMessage): it joins their conversation, and
    # the session's lastActivity is the messages' time.
    await until(  # the replica's listing index knows the query (applyMessage looks there)
        world,
        "/sessions?session_id=session-demo",
        lambda body: failed_name in body["sessions"]["session-demo"]["queries"],
        broker=second,
    )
    note = {"role": "user", "content": "a note"}
    late = {"conversation_id": "late", "query_id": failed_name, "messages": [note]}
    assert (await call(world, "POST", "/messages", late, broker=second))[0] == 200
    stored = (await call(world, "GET", "/conversations/late"))[1]["messages"][0]
    joined = (await call(world, "GET", "/sessions/session-demo"))[1]
    assert joined["queries"][failed_name]["conversationId"] == "late"
    assert "late" in [c["conversationId"] for c in joined["conversations"]]
    assert joined["lastActivity"] == stored["timestamp"]
    assert (
        joined["queries"][failed_name]["lastActivity"]
        == broken["queries"][failed_name]["lastActivity"]
    )
    page = await until(
        world,
        "/sessions?limit=10&status=error",
        lambda body: body["total"] == 1,
        broker=first,
    )
    assert page["statusCounts"] == {"active": 0, "idle": 0, "error": 1}
    assert [item["sessionId"] for item in page["items"]] == ["session-demo"]
    assert page["hasMore"] is False
    assert (await call(world, "GET", "/sessions/unknown"))[0] == 404
    early = (await call(world, "GET", "/sessions?limit=10&dateTo=2000-01-01"))[1]
    assert early["total"] == 0
    assert (await call(world, "GET", "/sessions?limit=10&dateFrom=2000-01-01"))[1]["total"] == 1

    only = (await call(world, "GET", "/sessions?session_id=session-demo&status=error"))[1]
    assert list(only["sessions"]) == ["session-demo"]

    # Removing the failed query (the finalizer's route) recomputes the session; first every
    # event is folded, so none of its events comes back after the delete.
    await folded(second)
    status, _ = await call(world, "DELETE", f"/sessions/queries/{failed_name}")
    assert status == 200
    healed = (await call(world, "GET", "/sessions/session-demo", broker=second))[1]
    assert sorted(healed["queries"]) == sorted(names)
    assert (healed["status"], healed["errorCount"]) == ("idle", 0)

    # Purging sessions is per tenant too.
    assert (await call(world, "DELETE", "/sessions", tenant=TENANT_B))[0] == 200
    assert (await call(world, "GET", "/sessions/session-demo"))[0] == 200
    assert (await call(world, "DELETE", "/v1/broker/sessions", broker=second))[1] == {
        "status": "success",
        "message": "Sessions purged",
    }
    assert (await call(world, "GET", "/sessions/session-demo"))[0] == 404


def _event(reason: str, seq_time: str, **data: str) -> QueryEvent:
    identity = {"sessionId": "s-1", "queryName": "q-1", "queryNamespace": TENANT_A}
    return QueryEvent(timestamp=seq_time, reason=reason, data={**identity, **data})


def _replay(events: list[tuple[int, QueryEvent]]) -> StoredSession | None:
    stored = None
    for seq, event in events:
        stored = fold(stored, TENANT_A, event, seq) or stored
    return stored


def test_the_fold_is_idempotent_and_tolerates_events_out_of_order() -> None:
    events = [
        (3, _event("QueryExecutionStart", "2026-01-01T00:00:01.000Z")),
        (5, _event("ToolCallError", "2026-01-01T00:00:02.000Z", toolName="search")),
        (
            8,
            _event(
                "QueryExecutionComplete",
                "2026-01-01T00:01:05.000Z",
                agent="helper",
                targetType="agent",
                conversationId="c-1",
            ),
        ),
    ]
    in_order = _replay(events)
    assert in_order is not None
    query = in_order.entry.queries["q-1"]
    # A later done clears the transient error; the tool is set once from toolName.
    assert (query.phase, query.error, query.tool, query.agent) == ("done", None, "search", "helper")
    assert in_order.entry.status == "idle"
    assert in_order.entry.conversations[0].duration == "1m 4s"
    # Applying any event again changes nothing.
    for seq, event in events:
        assert fold(in_order, TENANT_A, event, seq) is None
    # The same events in another order (two replicas took them) fold to the same aggregate.
    shuffled = _replay([events[2], events[0], events[1]])
    assert shuffled is not None
    assert msgspec.json.encode(shuffled.entry) == msgspec.json.encode(in_order.entry)
    # An event without a session or a query name is dropped, as in Ark.
    assert fold(None, TENANT_A, QueryEvent(timestamp="t", reason="x", data={}), 1) is None


async def test_sessions_are_sealed_with_the_tenants_key(mesh: Any) -> None:
    sessions = mesh.brokers[0].sessions
    assert sessions is not None
    store = SessionStore(sessions.store.kv, PayloadCipher({TENANT_A: {"k1": os.urandom(32)}}))
    event = _event("QueryExecutionError", "2026-01-01T00:00:01.000Z", error="the launch code")
    assert await store.apply(TENANT_A, event, 7)
    raw = await store.kv.get(session_key(TENANT_A, "s-1"))
    assert raw.value is not None
    assert b"launch code" not in raw.value
    entry = await store.get(TENANT_A, "s-1")
    assert entry is not None
    assert (entry.status, entry.queries["q-1"].error) == ("error", "the launch code")
    # Another tenant's lookup does not find it.
    assert await store.get(TENANT_B, "s-1") is None
    # Applying the same delivery again writes nothing.
    assert not await store.apply(TENANT_A, event, 7)
