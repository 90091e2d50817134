"""The small A2A and MCP test servers, driven by real clients over HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.mcp_server import MCPTestServer


async def _send(url: str, text: str, context_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "kind": "message",
        "role": "user",
        "messageId": "m1",
        "parts": [{"kind": "text", "text": text}],
    }
    if context_id:
        message["contextId"] = context_id
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": message}}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


async def test_a2a_agent_card_is_served_at_both_well_known_paths(a2a_server: A2ATestServer) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/.well-known/agent.json", "/.well-known/agent-card.json"):
            card = await (await http.get(a2a_server.url + path)).json()
            assert card["name"] == "counter-agent"
            assert card["url"] == a2a_server.url + "/"


async def test_a2a_counts_messages_per_context(a2a_server: A2ATestServer) -> None:
    first = (await _send(a2a_server.url, "hello"))["result"]
    assert first["kind"] == "message"
    assert first["role"] == "agent"
    context_id = first["contextId"]
    assert first["parts"][0]["text"].startswith("Message 1 ")
    second = (await _send(a2a_server.url, "again", context_id))["result"]
    assert second["contextId"] == context_id
    assert second["parts"][0]["text"] == "Message 2 in this conversation. You said: again"
    fresh = (await _send(a2a_server.url, "new"))["result"]
    assert fresh["contextId"] != context_id


async def test_a2a_task_mode_and_errors() -> None:
    async with A2ATestServer(mode="task") as server:
        task = (await _send(server.url, "do it", "ctx-1"))["result"]
        assert task["kind"] == "task"
        assert task["contextId"] == "ctx-1"
        assert task["status"]["state"] == "completed"
        assert task["artifacts"][0]["parts"][0]["text"].startswith("Message 1")
        assert server.task_ids == [task["id"]]
    async with A2ATestServer(message_in_task=True) as server:
        first = (await _send(server.url, "one"))["result"]
        second = (await _send(server.url, "two"))["result"]
        assert (first["kind"], second["kind"]) == ("message", "message")
        assert [first["taskId"], second["taskId"]] == server.task_ids
        assert first["taskId"] != second["taskId"]
    async with A2ATestServer() as server:
        plain = (await _send(server.url, "x"))["result"]
        assert "taskId" not in plain
        assert server.task_ids == []
    async with A2ATestServer(error="agent exploded") as server:
        answer = await _send(server.url, "x")
        assert answer["error"]["message"] == "agent exploded"
    async with A2ATestServer() as server, aiohttp.ClientSession() as http:
        bad = await (
            await http.post(server.url, json={"jsonrpc": "2.0", "id": 3, "method": "tasks/get"})
        ).json()
        assert bad["error"]["code"] == -32601


async def test_mcp_server_lists_and_calls_tools(mcp_server: MCPTestServer) -> None:
    async with (
        httpx2.AsyncClient(headers={"X-Override": "from-test"}) as http,
        Client(streamable_http_client(mcp_server.url, http_client=http)) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"add", "echo", "fail", "slow"} <= tools
        added = await client.call_tool("add", {"a": 2, "b": 3})
        assert not added.is_error
        assert added.content[0].text == "5"  # type: ignore[union-attr]
        failed = await client.call_tool("fail", {"message": "disk on fire"})
        assert failed.is_error
        assert "disk on fire" in failed.content[0].text  # type: ignore[union-attr]
    assert ("add", {"a": 2, "b": 3}) in mcp_server.calls
    assert any(h.get("x-override") == "from-test" for h in mcp_server.headers)
