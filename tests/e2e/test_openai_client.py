"""The official ``openai`` client, in its own process, against a real mesh (every part a process:
NATS, the Kubernetes emulator, the fake model, controller, query-reconciler, status-sync,
broker): models, completions streamed and not, usage, and failures the SDK raises once; and a
Query resource too large for one NATS message.

One mesh serves the whole module (module-scoped fixture); each test runs one client program
(``CLIENT`` below, a ``python -c`` subprocess with the SDK's default retries) and reads what it
printed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio

from ark_mesh.contracts import Agent, Query, Team, Tool
from ark_mesh.devmesh import LocalMesh
from ark_mesh.kube import KubeClient
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import Match, Reply, Rule
from ark_mesh.testing.fake_llm.script import ScriptedError

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# The client program: argv[1] the base URL, argv[2] what to do; prints one JSON document.
CLIENT = r"""
import json, sys
import openai

base, action = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused")  # default max_retries: 2
out = {}
messages = [{"role": "user", "content": "Tell me about " + action}]
try:
    if action == "models":
        out["models"] = [(m.id, m.object, m.owned_by) for m in client.models.list()]
    elif action == "complete":
        done = client.chat.completions.create(model="agent/assistant", messages=messages)
        out["content"] = done.choices[0].message.content
        out["usage"] = done.usage.total_tokens
    elif action in ("stream", "stream-usage"):
        kwargs = {"stream_options": {"include_usage": True}} if action == "stream-usage" else {}
        stream = client.chat.completions.create(
            model="agent/assistant", messages=messages, stream=True, **kwargs
        )
        texts, usages, empty, count = [], [], 0, 0
        for chunk in stream:
            count += 1
            if chunk.usage is not None:
                usages.append((count, chunk.usage.total_tokens))
                empty += not chunk.choices
                continue
            texts.append(chunk.choices[0].delta.content or "")  # OpenAI's documented loop
        out["text"], out["usages"], out["empty_with_usage"] = "".join(texts), usages, empty
        out["chunks"] = count
    elif action in ("unknown", "unknown-stream", "failing-stream"):
        model = "agent/assistant" if action == "failing-stream" else "agent/no-such-agent"
        stream = client.chat.completions.create(
            model=model, messages=messages, stream=action != "unknown"
        )
        for chunk in stream:
            chunk.choices[0]
        out["raised"] = None
except openai.APIStatusError as error:
    out["raised"] = [type(error).__name__, error.status_code, error.body]
except openai.APIError as error:
    out["raised"] = [type(error).__name__, None, error.body]
print(json.dumps(out))
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalMesh]:
    async with LocalMesh(
        preset="scale-flexible", workdir=tmp_path_factory.mktemp("openai-mesh"), streaming=True
    ) as started:
        namespace = started.namespace
        async with await KubeClient.from_kubeconfig(str(started.kubeconfig)) as client:
            await client.create(
                msgspec.convert(
                    {
                        "apiVersion": "ark.mckinsey.com/v1alpha1",
                        "kind": "Team",
                        "metadata": {"name": "crew", "namespace": namespace},
                        "spec": {
                            "strategy": "sequential",
                            "members": [{"type": "agent", "name": "assistant"}],
                        },
                    },
                    Team,
                )
            )
            await client.create(
                msgspec.convert(
                    {
                        "apiVersion": "ark.mckinsey.com/v1alpha1",
                        "kind": "Tool",
                        "metadata": {"name": "lookup", "namespace": namespace},
                        "spec": {
                            "type": "http",
                            "description": "looks things up",
                            "inputSchema": {"type": "object", "properties": {}},
                            "http": {"url": "http://127.0.0.1:1/lookup"},
                        },
                    },
                    Tool,
                )
            )
            assert await client.get(Agent, namespace, "assistant") is not None
        yield started


def base_url(mesh: LocalMesh) -> str:
    return f"http://127.0.0.1:{mesh.services['broker'].config['http']['port']}"


async def run_client(mesh: LocalMesh, action: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        f"{base_url(mesh)}/openai/v1",
        action,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def queries_asking(mesh: LocalMesh, text: str) -> int:
    """How many queries of the namespace have ``text`` as their input."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base_url(mesh)}/v1/queries", params={"page_size": "500"}) as response,
    ):
        assert response.status == 200, await response.text()
        items = (await response.json())["items"]
    return sum(1 for query in items if query.get("input") == text)


async def test_models_lists_every_target_kind(mesh: LocalMesh) -> None:
    models = (await run_client(mesh, "models"))["models"]
    ids = {model_id for model_id, _, _ in models}
    assert {"agent/assistant", "model/default", "team/crew", "tool/lookup"} <= ids
    assert all(kind == "model" for _, kind, _ in models)


async def test_a_completion_has_the_answer_and_usage(mesh: LocalMesh) -> None:
    out = await run_client(mesh, "complete")
    assert "complete" in out["content"]  # the fake model echoes the question
    assert out["usage"] > 0


async def test_a_stream_without_include_usage_has_no_empty_choices(mesh: LocalMesh) -> None:
    out = await run_client(mesh, "stream")
    assert "stream" in out["text"]
    assert out["usages"] == []


async def test_a_stream_with_include_usage_ends_with_exactly_one_usage_chunk(
    mesh: LocalMesh,
) -> None:
    out = await run_client(mesh, "stream-usage")
    assert "stream-usage" in out["text"]
    [(position, total)] = out["usages"]
    assert position == out["chunks"]  # the last chunk
    assert total > 0
    assert out["empty_with_usage"] == 1


@pytest.mark.parametrize("action", ["unknown", "unknown-stream"])
async def test_an_unknown_target_is_raised_once_and_not_retried(
    mesh: LocalMesh, action: str
) -> None:
    before = await queries_asking(mesh, f"Tell me about {action}")
    out = await run_client(mesh, action)
    name, status, body = out["raised"]
    assert (name, status) == ("NotFoundError", 404)
    assert body["code"] == "model_not_found"
    # The SDK retries 5xx and 408/409/429: one query ran, so it did not retry.
    assert await queries_asking(mesh, f"Tell me about {action}") == before + 1


async def test_a_stream_whose_query_fails_raises_an_api_error(mesh: LocalMesh) -> None:
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rule(
        Rule(
            match=Match(user="failing-stream"),
            reply=Reply(error=ScriptedError(status=400, message="the model refused")),
        )
    )
    out = await run_client(mesh, "failing-stream")
    name, status, body = out["raised"]
    # An error event in a 200 stream: the SDK raises APIError (not a status error).
    assert (name, status) == ("APIError", None)
    assert body["type"] == "server_error"
    assert body["code"] == "query_error"
    assert "the model refused" in body["message"]


async def test_a_query_resource_too_large_for_one_nats_message_ends_in_error_at_once(
    mesh: LocalMesh,
) -> None:
    # Standalone (the preset's default): the controller cannot publish a work message above
    # NATS' max_payload, and says so on the Query instead of retrying for ever.
    async with await KubeClient.from_kubeconfig(str(mesh.kubeconfig)) as client:
        await client.create(ark_objects.query("huge", mesh.namespace, "x" * 1_100_000))
        async with asyncio.timeout(60):
            while True:
                query = await client.get(Query, mesh.namespace, "huge")
                if query.status is not None and query.status.phase in ("done", "error"):
                    break
                await asyncio.sleep(0.1)
    assert query.status.phase == "error"
    [condition] = [c for c in query.status.conditions or [] if c.type == "Completed"]
    assert "too large to be sent to a reconciler" in condition.message
    assert "max_payload of 1048576 bytes" in condition.message
