"""Ark's own clients, replayed call for call against a real mesh (every part a process).

The calls are the ones Ark's published source makes, in its order and with its bodies:

* Ark's CLI, ``ark query agent/assistant "…"`` (``tools/ark-cli``: ``ChatClient.sendMessage``,
  ``ArkApiClient``): the query targets (``/v1/agents|models|teams|tools``), ``POST
  /v1/queries/`` with the streaming annotation, the stream from ark-api's broker proxy ``GET
  /v1/broker/chunks?watch=true&query-id=<name>`` read until the server closes it, and ``GET
  /v1/queries/<name>``; then ``ark sessions`` (``GET /v1/sessions``).
* Ark's dashboard (``services/ark-dashboard``: ``queries``, ``broker-sessions``, ``memory``,
  ``broker-streams`` services), through ark-api's routes: the query list and detail, the
  sessions page and one session, the conversations and their messages, the broker-stream probe
  and the deletes of the memory view.

Each answer is read the way those clients read it (the fields they dereference), so a shape
that would break them fails here. One mesh serves the module.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from ark_mesh.contracts import Memory, MemorySpec, ObjectMeta, ValueSource
from ark_mesh.devmesh import LocalMesh

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SESSION = "session-replay"
TERMINAL = ("done", "error", "canceled")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalMesh]:
    async with LocalMesh(
        preset="scale-flexible", workdir=tmp_path_factory.mktemp("ark-clients"), streaming=True
    ) as started:
        # Ark gives every namespace a `default` Memory (the broker's memory API); with it the
        # queries keep their conversation, which the dashboard's memory view reads.
        async with await started.client() as client:
            await client.create(
                Memory(
                    metadata=ObjectMeta(name="default", namespace=started.namespace),
                    spec=MemorySpec(address=ValueSource(value="http://ark-broker.invalid")),
                )
            )
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def api(mesh: LocalMesh) -> str:
    """ark-api's base URL (the broker serves its routes; the dashboard prefixes ``/api``)."""
    return f"http://127.0.0.1:{mesh.services['broker'].config['http']['port']}"


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, f"{url}: {response.status} {await response.text()}"
        return await response.json()


async def cli_query(
    http: aiohttp.ClientSession, base: str, text: str, *, session: str | None = SESSION
) -> tuple[str, list[dict[str, Any]]]:
    """``ark query agent/assistant <text>``: create, stream from the broker proxy, read back."""
    body: dict[str, Any] = {
        "name": f"cli-query-{time.time_ns()}",
        "type": "user",
        "input": text,
        "target": {"type": "agent", "name": "assistant"},
        "timeout": "60s",
        "metadata": {"annotations": {"ark.mckinsey.com/streaming-enabled": "true"}},
    }
    if session is not None:
        body["sessionId"] = session
    async with http.post(f"{base}/v1/queries/", json=body) as response:
        assert response.status in (200, 201, 202), await response.text()
        created = await response.json()
    name = created["name"]  # the CLI needs nothing else from the answer
    assert name == body["name"]

    # pollStreamResponse: frames split on blank lines, `data:` JSON parsed, [DONE] skipped, read
    # until the server ends the response.
    chunks: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(90),
        http.get(f"{base}/v1/broker/chunks?watch=true&query-id={name}") as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    frames = [frame.strip() for frame in raw.split("\n\n") if frame.strip()]
    data = [frame[5:].strip() for frame in frames if frame.startswith("data:")]
    assert data[-1] == "[DONE]", raw[-500:]
    chunks = [json.loads(item) for item in data if item != "[DONE]"]
    return name, chunks


async def wait_terminal(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, Any]:
    async with asyncio.timeout(90):
        while True:
            query = await get_json(http, f"{base}/v1/queries/{name}")
            if (query.get("status") or {}).get("phase") in TERMINAL:
                return dict(query)
            await asyncio.sleep(0.2)


async def test_ark_cli_query_streams_through_the_broker_proxy_and_reads_back(
    mesh: LocalMesh, http: aiohttp.ClientSession
) -> None:
    base = api(mesh)
    # getQueryTargets: each list's items[].name (and description) become `<type>/<name>`.
    targets = {}
    for kind, path in (
        ("agent", "/v1/agents"),
        ("model", "/v1/models"),
        ("team", "/v1/teams"),
        ("tool", "/v1/tools"),
    ):
        listing = await get_json(http, f"{base}{path}")
        assert isinstance(listing["items"], list)
        targets.update({f"{kind}/{item['name']}": item for item in listing["items"]})
    assert "agent/assistant" in targets
    assert "model/default" in targets

    name, chunks = await cli_query(http, base, "Weather in Chicago?")
    text = "".join(
        (chunk.get("choices") or [{}])[0].get("delta", {}).get("content") or "" for chunk in chunks
    )
    assert "Weather in Chicago?" in text
    attributed = [
        c["ark"]
        for c in chunks
        if ((c.get("choices") or [{}])[0].get("delta") or {}).get("content")
    ]
    assert attributed
    assert all(ark.get("agent") == "assistant" for ark in attributed), attributed
    completed = chunks[-1]["ark"]["completedQuery"]
    assert completed["metadata"]["name"] == name
    assert completed["status"]["phase"] == "done"

    # pollResponse / the empty-stream check read the query back by name.
    query = await wait_terminal(http, base, name)
    assert query["name"] == name
    assert query["status"]["phase"] == "done"
    assert query["status"]["response"]["content"] == text
    assert query["sessionId"] == SESSION

    # Without the streaming annotation the CLI polls the query instead; same answer.
    async with http.post(
        f"{base}/v1/queries/",
        json={
            "name": f"cli-query-{time.time_ns()}",
            "type": "user",
            "input": "Polled",
            "target": {"type": "agent", "name": "assistant"},
            "sessionId": SESSION,
        },
    ) as response:
        assert response.status in (200, 201, 202), await response.text()
        polled = await wait_terminal(http, base, (await response.json())["name"])
    assert polled["status"]["phase"] == "done"
    assert "Polled" in polled["status"]["response"]["content"]

    # `ark sessions`: GET /v1/sessions, the CLI reads items.
    async with asyncio.timeout(30):  # the read model folds the queries' events as they come
        while True:
            listed = (await get_json(http, f"{base}/v1/sessions"))["items"]
            if SESSION in {item["sessionId"] for item in listed}:
                break
            await asyncio.sleep(0.2)

    # `ark sessions delete`: one query's messages, then the session (its messages with it).
    conversation = query["status"]["conversationId"]
    records = f"{base}/v1/memory-messages?conversation={conversation}"
    assert name in {item["queryId"] for item in (await get_json(http, records))["items"]}
    async with http.delete(f"{base}/v1/sessions/{SESSION}/queries/{name}/messages") as response:
        assert response.status == 200, await response.text()
        assert "message" in await response.json()
    assert name not in {item["queryId"] for item in (await get_json(http, records))["items"]}
    async with http.delete(f"{base}/v1/sessions/{SESSION}") as response:
        assert response.status == 200, await response.text()
    sessions = await get_json(http, f"{base}/v1/sessions")
    assert SESSION not in {item["sessionId"] for item in sessions["items"]}
    assert (await get_json(http, records))["items"] == []
    async with http.delete(f"{base}/v1/sessions/{SESSION}") as response:
        assert response.status == 404, await response.text()


async def test_ark_dashboard_query_session_and_memory_views(
    mesh: LocalMesh, http: aiohttp.ClientSession
) -> None:
    base = api(mesh)
    name, _ = await cli_query(http, base, "Remember the dashboard", session="session-dashboard")
    query = await wait_terminal(http, base, name)
    conversation = query["status"]["conversationId"]  # the one the run opened
    assert conversation

    # Queries view: the list and one query, the fields the pages show.
    listing = await get_json(http, f"{base}/v1/queries")
    listed = {item["name"]: item for item in listing["items"]}
    assert listed[name]["status"]["phase"] == "done"
    for field in ("name", "namespace", "input", "sessionId", "creationTimestamp"):
        assert field in listed[name], field
    detail = await get_json(http, f"{base}/v1/queries/{name}")
    assert detail["target"] == {"type": "agent", "name": "assistant"}

    # Sessions view (broker-sessions.ts): a page with statusCounts, then one session.
    page = await get_json(http, f"{base}/v1/broker/sessions?limit=10&sort=date&order=desc")
    assert isinstance(page["items"], list)
    assert isinstance(page["total"], int)
    assert isinstance(page["hasMore"], bool)
    assert set(page["statusCounts"]) == {"active", "idle", "error"}
    async with asyncio.timeout(30):  # the read model folds events as they come
        while True:
            session = await get_json(http, f"{base}/v1/broker/sessions/session-dashboard")
            if session["status"] == "idle" and name in session["queries"]:
                break
            await asyncio.sleep(0.2)
    assert session["sessionId"] == "session-dashboard"
    assert session["errorCount"] == 0
    assert {"id": "assistant", "name": "assistant", "type": "agent"} in session["participants"]
    summary = next(c for c in session["conversations"] if c["conversationId"] == conversation)
    assert summary["participantType"] == "agent"
    assert summary["messageCount"] == 1

    # Memory view (memory.ts): conversations, a conversation's messages, all messages.
    conversations = await get_json(http, f"{base}/v1/conversations")
    assert {"conversationId": conversation, "memoryName": "default"} in conversations["items"]
    stored = await get_json(
        http, f"{base}/v1/memories/default/conversations/{conversation}/messages"
    )
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][0]["content"] == "Remember the dashboard"
    messages = await get_json(http, f"{base}/v1/memory-messages?conversation={conversation}")
    assert {item["queryId"] for item in messages["items"]} == {name}
    assert all(item["memoryName"] == "default" for item in messages["items"])

    # broker-streams.ts probes each broker stream with limit=1: items plus total.
    for stream in ("messages", "chunks", "events", "sessions"):
        probe = await get_json(http, f"{base}/v1/broker/{stream}?memory=default&limit=1")
        assert isinstance(probe["items"], list), stream
        assert len(probe["items"]) <= 1, stream
        assert probe.get("total", len(probe["items"])) > 0, stream

    # The memory view's deletes: one query's messages, then the conversation.
    async with http.delete(
        f"{base}/v1/conversations/{conversation}/queries/{name}/messages"
    ) as response:
        assert response.status < 300, await response.text()
    stored = await get_json(
        http, f"{base}/v1/memories/default/conversations/{conversation}/messages"
    )
    assert stored["messages"] == []
    async with http.delete(f"{base}/v1/conversations/{conversation}") as response:
        assert response.status < 300, await response.text()
    conversations = await get_json(http, f"{base}/v1/conversations")
    assert conversation not in {item["conversationId"] for item in conversations["items"]}
