"""Broker + standalone, end to end: broker → JetStream → query-reconciler → (status-sync).

Every component is its own process (scale-strict preset plus the broker). A broker-mode query
never touches Kubernetes unless it asks for a mirror; a mirror is kept by status-sync.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from ark_mesh.broker import hash_token
from ark_mesh.contracts import Query
from ark_mesh.contracts.ark import BROKER_MIRROR_LABEL

pytestmark = pytest.mark.slow

TOKEN = "e2e-token"
BROKER_WITH_TOKEN = {
    "broker": {
        "auth": {"mode": "token", "tokens": [{"tenant": "default", "sha256": hash_token(TOKEN)}]}
    }
}


async def _wait_done(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with asyncio.timeout(90):
        while True:
            async with http.get(url, headers=headers) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            if body["status"].get("phase") in ("done", "error", "canceled"):
                return body
            await asyncio.sleep(0.1)


async def test_broker_query_reaches_done_without_a_query_resource_and_mirror_on_request(
    start_mesh,
) -> None:
    mesh, _ = await start_mesh(preset="scale-strict", overrides=BROKER_WITH_TOKEN)
    port = mesh.services["broker"].config["http"]["port"]
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/queries",
            json={"input": "Weather in Chicago?", "target": {"type": "agent", "name": "assistant"}},
            headers=auth,
        ) as response:
            assert response.status == 202, await response.text()
            accepted = await response.json()
        done = await _wait_done(http, f"{base}/v1/queries/{accepted['id']}", auth)
        assert done["status"]["phase"] == "done", done
        assert "Weather in Chicago?" in done["status"]["response"]["content"]
        assert done["status"]["tokenUsage"]["totalTokens"] > 0

        async with await mesh.client() as client:
            assert await client.list(Query, mesh.namespace) == []

        # The stream replays to [DONE] after the fact.
        async with http.get(f"{base}/v1/queries/{accepted['id']}/stream", headers=auth) as response:
            text = await response.text()
        assert text.rstrip().endswith("data: [DONE]")

        async with http.post(
            f"{base}/v1/queries",
            json={
                "name": "mirrored",
                "input": "Mirror me",
                "target": {"type": "agent", "name": "assistant"},
                "createResource": True,
            },
            headers=auth,
        ) as response:
            assert response.status == 202, await response.text()
            mirrored = await response.json()
        done = await _wait_done(http, f"{base}/v1/queries/{mirrored['id']}", auth)
        assert done["status"]["phase"] == "done", done

    async with await mesh.client() as client, asyncio.timeout(60):
        while True:
            query = await client.get(Query, mesh.namespace, "mirrored")
            if query.status is not None and query.status.phase == "done":
                break
            await asyncio.sleep(0.1)
    assert query.metadata.uid == mirrored["id"]
    assert (query.metadata.labels or {}).get(BROKER_MIRROR_LABEL) == "true"
    assert query.status.response is not None
    assert "Mirror me" in query.status.response.content
    # The controller left the mirror alone: no finalizer, spec as the broker wrote it.
    assert not query.metadata.finalizers


async def test_a_broker_query_waits_for_approval_over_http_and_runs_the_tool_once(
    start_mesh,
) -> None:
    """Broker mode, no Query resource anywhere: the run pauses at a gated tool call, the
    approval is listed and answered over ark-api's tool-approval routes, the query-reconciler
    resumes it from its step log (the first model turn is not asked again) and the stream shows
    Ark's approval lines before its final chunk and [DONE]."""
    from ark_mesh.contracts import Agent, AgentSpec, AgentTool, ObjectMeta, ToolApproval
    from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall

    mesh, _ = await start_mesh(preset="scale-strict", overrides=BROKER_WITH_TOKEN)
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rules(
        [
            Rule(
                match=Match(system="You ask first.", last_role="user"),
                reply=Reply(
                    tool_calls=[ScriptedToolCall(name="noop", arguments={"message": "ok"})]
                ),
            ),
            Rule(
                match=Match(system="You ask first.", last_role="tool"),
                reply=Reply(content="noop said {{tool}}"),
            ),
        ]
    )
    async with await mesh.client() as client:
        await client.create(
            Agent(
                metadata=ObjectMeta(name="gatekeeper", namespace=mesh.namespace),
                spec=AgentSpec(
                    prompt="You ask first.",
                    tools=[
                        AgentTool(
                            type="built-in", name="noop", approval=ToolApproval(required=True)
                        )
                    ],
                ),
            )
        )
    port = mesh.services["broker"].config["http"]["port"]
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/v1/queries",
            json={"input": "Please check", "target": {"type": "agent", "name": "gatekeeper"}},
            headers=auth,
        ) as response:
            assert response.status == 202, await response.text()
            accepted = await response.json()
        url = f"{base}/v1/queries/{accepted['id']}"
        async with asyncio.timeout(90):
            while True:
                async with http.get(url, headers=auth) as response:
                    record = await response.json()
                if record["status"].get("phase") == "input-required":
                    break
                await asyncio.sleep(0.1)
        task_id = record["status"]["response"]["a2a"]["taskId"]
        async with http.get(f"{base}/v1/tool-approvals/pending", headers=auth) as response:
            assert response.status == 200, await response.text()
            pending = await response.json()
        assert [item["name"] for item in pending["items"]] == [f"a2a-task-{task_id}"]
        assert [call["name"] for call in pending["items"][0]["toolCalls"]] == ["noop"]

        async with http.post(
            f"{base}/v1/tool-approvals/a2a-task-{task_id}/decision",
            json={"action": "approved"},
            headers=auth,
        ) as response:
            assert response.status == 200, await response.text()

        done = await _wait_done(http, url, auth)
        assert done["status"]["phase"] == "done", done
        assert done["status"]["response"]["content"].startswith("noop said")
        async with http.get(f"{url}/stream", headers=auth) as response:
            text = await response.text()
    lines = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    kinds = [line.split('"type":"')[1].split('"')[0] for line in lines if '"type":"tool_' in line]
    assert kinds == ["tool_approval_request", "tool_approval_response"]
    asked = [r for r in await mesh.fake_llm.control.requests() if "You ask first." in str(r.body)]
    assert len(asked) == 2
