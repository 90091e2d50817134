"""ark-api's routes on the broker: what Ark's CLI, dashboard and scripts call, in Ark's shapes.

Real HTTP against the broker (and a real query-reconciler over a real nats-server); direct mode
against the Kubernetes API emulator; ``/openai/v1/models`` through the official ``openai`` SDK.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest
import yaml

from ark_mesh.broker import AuthConfig, ReconciliationConfig
from ark_mesh.contracts import Query
from ark_mesh.kube import KubeClient
from ark_mesh.service import KubernetesConfig, ResourcesConfig

TARGET = {"type": "agent", "name": "helper"}
STREAMING = "ark.mckinsey.com/streaming-enabled"
TERMINAL = ("done", "error", "canceled")


async def _call(
    world: Any, method: str, path: str, body: Any = None, *, tenant: str = "team-a"
) -> tuple[int, Any]:
    headers = world.auth(tenant)
    data = None
    if body is not None:
        data = msgspec.json.encode(body)
        headers["Content-Type"] = "application/json"
    async with world.http.request(
        method, f"{world.url}{path}", data=data, headers=headers
    ) as response:
        text = await response.text()
        return response.status, (msgspec.json.decode(text) if text else None)


async def _until_terminal(world: Any, name: str) -> dict[str, Any]:
    """Poll ``GET /v1/queries/{name}`` as Ark's CLI does (a generous safety bound only)."""
    async with asyncio.timeout(60):
        while True:
            status, body = await _call(world, "GET", f"/v1/queries/{name}")
            assert status == 200, body
            if (body.get("status") or {}).get("phase") in TERMINAL:
                return dict(body)
            await asyncio.sleep(0.05)


async def test_the_calls_of_arks_cli_succeed_with_arks_shapes(running: Any) -> None:
    """``ark query``: POST with the trailing slash and metadata, poll GET by name, list, cancel
    with PATCH, delete."""
    status, created = await _call(
        running,
        "POST",
        "/v1/queries/",
        {
            "name": "cli-query-1",
            "type": "user",
            "input": "What is the capital of France?",
            "target": TARGET,
            "sessionId": "cli-session",
            "timeout": "2m",
            "metadata": {"annotations": {STREAMING: "true"}, "labels": {"app": "ark-cli"}},
        },
    )
    assert status == 202, created
    assert created["name"] == "cli-query-1"
    assert created["namespace"] == "team-a"
    assert created["reconciliation"] == "broker"
    assert created["input"] == "What is the capital of France?"
    assert created["target"] == TARGET
    assert created["metadata"]["annotations"] == {STREAMING: "true"}
    assert created["metadata"]["labels"] == {"app": "ark-cli"}
    assert created["metadata"]["uid"] == created["id"]
    assert created["status"] == {"phase": "pending"}

    done = await _until_terminal(running, "cli-query-1")
    assert done["status"]["phase"] == "done", done
    assert "capital of France" in done["status"]["response"]["content"]
    assert done["sessionId"] == "cli-session"
    assert done["timeout"] == "2m"
    # The id still works, as before.
    status, by_id = await _call(running, "GET", f"/v1/queries/{created['id']}")
    assert (status, by_id["name"]) == (200, "cli-query-1")
    # Streams and events answer by name too.
    events, _ = await running.sse("/v1/queries/cli-query-1/stream")
    assert events[-1].data == "[DONE]"

    status, listed = await _call(running, "GET", "/v1/queries")
    assert status == 200
    assert (listed["count"], listed["total"], listed["page"], listed["page_size"]) == (1, 1, 1, 25)
    item = listed["items"][0]
    assert set(item) >= {"name", "namespace", "type", "input", "status", "creationTimestamp"}
    assert (item["name"], item["type"], item["reconciliation"]) == ("cli-query-1", "user", "broker")
    assert "target" not in item  # the listing is ark-api's short QueryResponse

    status, canceled = await _call(running, "PATCH", "/v1/queries/cli-query-1/cancel")
    assert status == 200, canceled
    assert canceled["status"]["phase"] == "done"  # it had finished: nothing to cancel

    status, _ = await _call(running, "DELETE", "/v1/queries/cli-query-1")
    assert status == 204
    status, gone = await _call(running, "GET", "/v1/queries/cli-query-1")
    assert (status, gone["error"]["code"]) == (404, "NOT_FOUND")
    status, gone = await _call(running, "GET", f"/v1/queries/{created['id']}")
    assert status == 404
    # The name is free again.
    status, again = await _call(
        running, "POST", "/v1/queries/", {"name": "cli-query-1", "input": "hi", "target": TARGET}
    )
    assert status == 202, again
    assert again["id"] != created["id"]


async def test_a_replay_of_arks_cli_against_the_ark_api_service(world: Any) -> None:
    """The requests Ark's CLI makes (``tools/ark-cli/src/lib/arkApiClient.ts``), as it makes
    them: no credentials (a port-forward to ark-api; here ``auth.mode: none``), every target
    list followed through ``continue_token`` pages of ``limit=100``, a ``cli-query-<ms>`` POST to
    ``/v1/queries/`` with ``type: user`` and ``metadata.annotations``, then ``GET`` by name."""
    await world.start_reconciler()
    await world.start_broker(
        world.broker_config(auth=AuthConfig(mode="none", default_tenant="team-a"))
    )
    http, base = world.http, world.url

    async def fetch_all_pages(path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {"limit": "100", **({"continue": token} if token else {})}
            async with http.get(f"{base}{path}", params=params) as response:
                assert response.status == 200, await response.text()
                data = await response.json()
            items += data.get("items") or []
            token = data.get("continue_token")
            if not token:
                return items

    targets = [
        f"{kind}/{item['name']}"
        for kind, path in (
            ("agent", "/v1/agents"),
            ("model", "/v1/models"),
            ("team", "/v1/teams"),
            ("tool", "/v1/tools"),
        )
        for item in await fetch_all_pages(path)
    ]
    assert targets == ["agent/helper", "model/default"]

    name = "cli-query-1764400000000"
    body = {
        "name": name,
        "type": "user",
        "input": "Hello from the ark CLI",
        "target": {"type": "agent", "name": "helper"},
        "sessionId": "cli-session",
        "timeout": "5m",
        "metadata": {"annotations": {STREAMING: "true"}},
    }
    async with http.post(
        f"{base}/v1/queries/", json=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.ok, await response.text()
        created = await response.json()
    assert (created["name"], created["namespace"]) == (name, "team-a")

    async with asyncio.timeout(60):
        while True:
            async with http.get(f"{base}/v1/queries/{name}") as response:
                assert response.ok, await response.text()
                query = await response.json()
            if (query.get("status") or {}).get("phase") in TERMINAL:
                break
            await asyncio.sleep(0.05)
    assert query["status"]["phase"] == "done", query
    assert "Hello from the ark CLI" in query["status"]["response"]["content"]
    async with http.patch(f"{base}/v1/queries/{name}/cancel") as response:
        assert response.status == 200
    async with http.delete(f"{base}/v1/queries/{name}") as response:
        assert response.status == 204


async def test_patch_cancel_and_delete_stop_a_running_query_by_name(running: Any) -> None:
    from ark_mesh.testing.fake_llm import Match, Reply, Rule

    running.fake.add_rule(
        Rule(
            match=Match(user="never ending"),
            reply=Reply(content=" ".join(["word"] * 400), chunk_delay=0.05),
        )
    )
    for name in ("to-cancel", "to-delete"):
        body = {"name": name, "input": "never ending", "target": TARGET}
        assert (await _call(running, "POST", "/v1/queries/", body))[0] == 202
        # Wait until the model is streaming, so there is a live step to stop.
        await running.sse(f"/v1/queries/{name}/stream", stop_after=2)
    status, answer = await _call(running, "PATCH", "/v1/queries/to-cancel/cancel")
    assert (status, answer["name"]) == (200, "to-cancel")
    assert (await _until_terminal(running, "to-cancel"))["status"]["phase"] == "canceled"

    status, _ = await _call(running, "DELETE", "/v1/queries/to-delete")
    assert status == 204
    assert (await _call(running, "GET", "/v1/queries/to-delete"))[0] == 404
    # Deleting a running query canceled it: both model calls were cut before their end.
    async with asyncio.timeout(60):
        calls = await running.fake.wait_until(
            lambda requests: (
                sum(
                    r.outcome == "client_disconnected"
                    for r in requests
                    if "never ending" in str(r.body)
                )
                == 2
            )
        )
    assert not any(r.outcome == "completed" for r in calls if "never ending" in str(r.body))


async def test_a_name_is_unique_in_its_namespace_only(running: Any) -> None:
    body = {"name": "same-name", "input": "hi", "target": TARGET}
    assert (await _call(running, "POST", "/v1/queries", body))[0] == 202
    status, error = await _call(running, "POST", "/v1/queries", body)
    assert (status, error["error"]["field"]) == (409, "name")
    # Another tenant has its own namespace: the name is free there, and a's query is not b's.
    assert (await _call(running, "POST", "/v1/queries", body, tenant="team-b"))[0] == 202
    _, a = await _call(running, "GET", "/v1/queries/same-name")
    _, b = await _call(running, "GET", "/v1/queries/same-name", tenant="team-b")
    assert a["id"] != b["id"]
    assert (a["namespace"], b["namespace"]) == ("team-a", "team-b")
    status, _ = await _call(running, "GET", f"/v1/queries/{a['id']}", tenant="team-b")
    assert status == 404


async def test_type_messages_is_migrated_as_arks_webhook_does(running: Any) -> None:
    status, created = await _call(
        running,
        "POST",
        "/v1/queries",
        {
            "name": "from-messages",
            "type": "messages",
            "input": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": [{"type": "text", "text": "second question"}]},
            ],
            "target": TARGET,
        },
    )
    assert status == 202, created
    assert (created["type"], created["input"]) == ("user", "second question")
    warning = created["metadata"]["annotations"]["ark.mckinsey.com/migration-warning-input-type"]
    assert "deprecated" in warning
    done = await _until_terminal(running, "from-messages")
    assert "second question" in done["status"]["response"]["content"]


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"serviceAccount": "runner"}, "serviceAccount", "broker mode"),
        ({"ttl": "1h"}, "ttl", "broker mode"),
        ({"cancel": True}, "cancel", "canceled"),
        ({"reconciliation": "direct"}, "reconciliation", "no Kubernetes access"),
        ({"reconciliation": "fast"}, "reconciliation", "fast"),
        (
            {"metadata": {"annotations": {"ark.mckinsey.com/reconciliation": "sideways"}}},
            "metadata.annotations.ark.mckinsey.com/reconciliation",
            "sideways",
        ),
        ({"metadata": {"finalizers": ["x"]}}, "metadata.finalizers", "unknown field"),
        (
            {"type": "messages", "input": [{"role": "system", "content": "x"}]},
            "input",
            "user message",
        ),
        ({"input": [{"role": "user", "content": "hi"}]}, "input", "type 'messages'"),
        (
            {"overrides": [{"resourceType": "model", "headers": []}]},
            "overrides[0].headers",
            "length",
        ),
    ],
)
async def test_what_broker_mode_cannot_honour_is_refused_by_name(
    running: Any, extra: dict[str, Any], field: str, words: str
) -> None:
    status, error = await _call(
        running, "POST", "/v1/queries", {"input": "hi", "target": TARGET, **extra}
    )
    assert status == 422, error
    assert error["error"]["field"] == field, error
    assert words.lower() in error["error"]["message"].lower(), error
    _, listed = await _call(running, "GET", "/v1/queries")
    assert listed["items"] == []


async def test_overrides_and_parameters_travel_with_a_broker_query(running: Any) -> None:
    body = {
        "name": "with-overrides",
        "input": "Hello {{.who}}",
        "target": TARGET,
        "parameters": [{"name": "who", "value": "world"}],
        "overrides": [
            {
                "resourceType": "model",
                "headers": [{"name": "X-Trace", "value": {"value": "t-1"}}],
            }
        ],
    }
    status, created = await _call(running, "POST", "/v1/queries", body)
    assert status == 202, created
    assert created["overrides"] == body["overrides"]
    done = await _until_terminal(running, "with-overrides")
    assert done["status"]["phase"] == "done", done
    assert "Hello world" in done["status"]["response"]["content"]
    calls = [call for call in running.fake.requests_to("chat") if "Hello world" in str(call.body)]
    assert calls
    assert calls[-1].header("X-Trace") == "t-1"


async def test_put_changes_only_cancel_of_a_broker_query(running: Any) -> None:
    await _call(running, "POST", "/v1/queries", {"name": "fixed", "input": "hi", "target": TARGET})
    status, error = await _call(running, "PUT", "/v1/queries/fixed", {"input": "other"})
    assert (status, error["error"]["field"]) == (409, "input")
    status, error = await _call(running, "PUT", "/v1/queries/fixed", {"sessionId": "s"})
    assert (status, error["error"]["field"]) == (409, "sessionId")
    status, error = await _call(running, "PUT", "/v1/queries/fixed", {"colour": "red"})
    assert (status, error["error"]["field"]) == (422, "colour")
    status, same = await _call(running, "PUT", "/v1/queries/fixed", {"cancel": True})
    assert status == 200, same
    assert same["name"] == "fixed"
    status, _ = await _call(running, "PUT", "/v1/queries/nothing-here", {"cancel": True})
    assert status == 404


async def test_listing_pages_newest_first_and_searches_the_input(running: Any) -> None:
    for index in range(3):
        status, _ = await _call(
            running,
            "POST",
            "/v1/queries",
            {"name": f"q-{index}", "input": f"question number {index}", "target": TARGET},
        )
        assert status == 202
    _, first = await _call(running, "GET", "/v1/queries?page_size=2")
    assert [item["name"] for item in first["items"]] == ["q-2", "q-1"]
    assert (first["count"], first["total"], first["page"], first["page_size"]) == (2, 3, 1, 2)
    _, second = await _call(running, "GET", "/v1/queries?page_size=2&page=2")
    assert [item["name"] for item in second["items"]] == ["q-0"]
    _, found = await _call(running, "GET", "/v1/queries?search=NUMBER%201")
    assert [item["name"] for item in found["items"]] == ["q-1"]
    _, clamped = await _call(running, "GET", "/v1/queries?page_size=500")
    assert clamped["page_size"] == 100
    for query, field in (
        ("page_size=0", "page_size"),
        ("page=x", "page"),
        ("page_size=501", "page_size"),
    ):
        status, error = await _call(running, "GET", f"/v1/queries?{query}")
        assert (status, error["error"]["field"]) == (400, field)


# --------------------------------------------------------------------------- resources


def _catalog(namespace: str, base_url: str) -> list[dict[str, Any]]:
    model = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "gpt", "namespace": namespace},
        "spec": {
            "model": {"value": "gpt-4.1"},
            "provider": "openai",
            "config": {"openai": {"baseUrl": {"value": base_url}, "apiKey": {"value": "k"}}},
        },
    }
    agents = [
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Agent",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {"note": name},
                "creationTimestamp": "2026-01-02T03:04:05Z",
            },
            "spec": {"description": f"the {name}", "prompt": "p", "modelRef": {"name": "gpt"}},
        }
        for name in ("alpha", "bravo", "charlie")
    ]
    team = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Team",
        "metadata": {"name": "crew", "namespace": namespace},
        "spec": {
            "strategy": "sequential",
            "members": [{"type": "agent", "name": "alpha"}, {"type": "agent", "name": "bravo"}],
        },
    }
    tool = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Tool",
        "metadata": {"name": "lookup", "namespace": namespace, "labels": {"kind": "http"}},
        "spec": {
            "type": "http",
            "description": "looks things up",
            "http": {"url": "http://example.invalid/lookup"},
        },
    }
    return [model, *agents, team, tool]


@pytest.fixture
async def catalog(world: Any, tmp_path: Path) -> Any:
    """A broker whose resources are a few Agents, a Model, a Team and a Tool in team-a."""
    directory = tmp_path / "catalog"
    directory.mkdir()
    (directory / "all.yaml").write_text(yaml.safe_dump_all(_catalog("team-a", world.fake.base_url)))
    resources = ResourcesConfig(source="manifests", manifests=str(directory))
    await world.start_broker(world.broker_config(resources=resources))
    return world


async def test_agents_are_listed_in_pages_with_a_continue_token(catalog: Any) -> None:
    status, first = await _call(catalog, "GET", "/v1/agents?limit=2")
    assert status == 200, first
    assert [item["name"] for item in first["items"]] == ["alpha", "bravo"]
    assert (first["count"], first["remaining_item_count"]) == (2, 1)
    assert first["items"][0] == {
        "name": "alpha",
        "namespace": "team-a",
        "description": "the alpha",
        "model_ref": "gpt",
        "prompt": "p",
        "available": "Unknown",
        "annotations": {"note": "alpha"},
    }
    token = first["continue_token"]
    status, rest = await _call(catalog, "GET", f"/v1/agents?limit=2&continue={token}")
    assert [item["name"] for item in rest["items"]] == ["charlie"]
    assert (rest["continue_token"], rest["remaining_item_count"]) == (None, None)
    status, error = await _call(catalog, "GET", "/v1/agents?continue=%21%21")
    assert (status, error["error"]["field"]) == (400, "continue")
    status, error = await _call(catalog, "GET", "/v1/agents?limit=0")
    assert (status, error["error"]["field"]) == (400, "limit")

    status, agent = await _call(catalog, "GET", "/v1/agents/bravo")
    assert status == 200
    assert agent["modelRef"] == {"name": "gpt"}
    assert (agent["isA2A"], agent["available"], agent["prompt"]) == (False, "Unknown", "p")
    status, error = await _call(catalog, "GET", "/v1/agents/nobody")
    assert (status, error["error"]["code"]) == (404, "NOT_FOUND")
    # Another tenant's namespace has none of them.
    status, other = await _call(catalog, "GET", "/v1/agents", tenant="team-b")
    assert (status, other["items"], other["count"]) == (200, [], 0)
    status, _ = await _call(catalog, "GET", "/v1/agents/alpha", tenant="team-b")
    assert status == 404


async def test_models_teams_and_tools_in_arks_shapes(catalog: Any) -> None:
    _, models = await _call(catalog, "GET", "/v1/models")
    assert models["items"] == [
        {
            "name": "gpt",
            "namespace": "team-a",
            "type": "completions",
            "provider": "openai",
            "model": "gpt-4.1",
            "available": "Unknown",
            "annotations": {},
        }
    ]
    _, model = await _call(catalog, "GET", "/v1/models/gpt")
    assert model["config"]["openai"]["baseUrl"] == {"value": catalog.fake.base_url}
    assert model["resolved_address"] is None

    _, teams = await _call(catalog, "GET", "/v1/teams")
    assert teams["items"][0]["members_count"] == 2
    assert teams["items"][0]["strategy"] == "sequential"
    _, team = await _call(catalog, "GET", "/v1/teams/crew")
    assert [member["name"] for member in team["members"]] == ["alpha", "bravo"]
    assert (team["loops"], team["maxTurns"]) == (False, None)

    _, tools = await _call(catalog, "GET", "/v1/tools")
    assert tools["items"] == [
        {
            "name": "lookup",
            "namespace": "team-a",
            "description": "looks things up",
            "labels": {"kind": "http"},
            "annotations": None,
            "type": "http",
        }
    ]
    _, tool = await _call(catalog, "GET", "/v1/tools/lookup")
    assert tool["spec"]["http"] == {"url": "http://example.invalid/lookup"}


async def test_the_openai_sdk_lists_every_target_as_a_model(catalog: Any) -> None:
    client = openai.AsyncOpenAI(
        base_url=f"{catalog.url}/openai/v1", api_key="token-of-team-a", max_retries=0
    )
    models = [model async for model in client.models.list()]
    assert [model.id for model in models] == [
        "agent/alpha",
        "agent/bravo",
        "agent/charlie",
        "team/crew",
        "model/gpt",
        "tool/lookup",
    ]
    assert all(model.owned_by == "ark" and model.object == "model" for model in models)
    assert models[0].created == 1767323045  # the Agent's creationTimestamp
    other = openai.AsyncOpenAI(
        base_url=f"{catalog.url}/openai/v1", api_key="token-of-team-b", max_retries=0
    )
    assert [model async for model in other.models.list()] == []
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(
            base_url=f"{catalog.url}/openai/v1", api_key="wrong", max_retries=0
        ).models.list()


async def test_without_a_resource_source_the_catalog_is_unavailable(world: Any) -> None:
    await world.start_broker(world.broker_config(resources=None))
    status, error = await _call(world, "GET", "/v1/agents")
    assert (status, error["error"]["code"]) == (503, "UNAVAILABLE")
    assert "resources" in error["error"]["message"]


# --------------------------------------------------------------------------- direct mode


@pytest.fixture
async def direct(world: Any, kube_emulator: Any) -> Any:
    """A broker with Kubernetes (the emulator): Query resources for direct queries."""
    for namespace in ("team-a", "team-b"):
        kube_emulator.ensure_namespace(namespace)
    await world.start_reconciler()
    await world.start_broker(
        world.broker_config(
            kubernetes=KubernetesConfig(kubeconfig=str(kube_emulator.kubeconfig_path))
        )
    )
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as client:
        world.kube = client
        yield world


async def test_direct_mode_writes_query_resources_like_arks_api(direct: Any) -> None:
    status, created = await _call(
        direct,
        "POST",
        "/v1/queries/",
        {
            "name": "direct-1",
            "input": "hi",
            "target": TARGET,
            "ttl": "1h",
            "serviceAccount": "runner",
            "reconciliation": "direct",
            "metadata": {"annotations": {STREAMING: "true"}},
        },
    )
    assert status == 200, created
    assert (created["reconciliation"], created["ttl"], created["serviceAccount"]) == (
        "direct",
        "1h",
        "runner",
    )
    query = await direct.kube.get(Query, "team-a", "direct-1")
    assert query.metadata.uid == created["id"]
    assert query.spec.ttl == "1h"
    assert query.spec.service_account == "runner"
    assert (query.metadata.annotations or {}) == {STREAMING: "true"}

    # A broker-mode query next to it: the listing shows both, each with its mode.
    await _call(
        direct, "POST", "/v1/queries", {"name": "brokered", "input": "hi", "target": TARGET}
    )
    _, listed = await _call(direct, "GET", "/v1/queries")
    assert sorted((item["name"], item["reconciliation"]) for item in listed["items"]) == [
        ("brokered", "broker"),
        ("direct-1", "direct"),
    ]
    status, got = await _call(direct, "GET", "/v1/queries/direct-1")
    assert (status, got["id"], got["metadata"]["name"]) == (200, created["id"], "direct-1")

    status, updated = await _call(direct, "PUT", "/v1/queries/direct-1", {"timeout": "90s"})
    assert (status, updated["timeout"], updated["input"]) == (200, "90s", "hi")
    assert (await direct.kube.get(Query, "team-a", "direct-1")).spec.timeout == "90s"

    status, canceled = await _call(direct, "PATCH", "/v1/queries/direct-1/cancel")
    assert (status, canceled["cancel"]) == (200, True)
    assert (await direct.kube.get(Query, "team-a", "direct-1")).spec.cancel is True

    # Tenancy holds: team-b neither sees nor deletes it.
    assert (await _call(direct, "GET", "/v1/queries/direct-1", tenant="team-b"))[0] == 404
    assert (await _call(direct, "DELETE", "/v1/queries/direct-1", tenant="team-b"))[0] == 404

    status, _ = await _call(direct, "DELETE", "/v1/queries/direct-1")
    assert status == 204
    assert [q.metadata.name for q in await direct.kube.list(Query, "team-a")] == []
    assert (await _call(direct, "GET", "/v1/queries/direct-1"))[0] == 404

    status, other = await _call(
        direct,
        "POST",
        "/v1/queries",
        {"name": "brokered", "input": "x", "target": TARGET, "reconciliation": "direct"},
    )
    assert status == 200, other  # names of broker-mode queries and Query resources are separate


async def test_a_mirrored_broker_query_is_listed_once_and_deleted_with_its_mirror(
    direct: Any,
) -> None:
    body = {"name": "mirrored", "input": "hi", "target": TARGET, "createResource": True}
    status, created = await _call(direct, "POST", "/v1/queries", body)
    assert (status, created["reconciliation"]) == (202, "broker")
    mirror = await direct.kube.get(Query, "team-a", "mirrored")
    assert mirror.metadata.uid == created["id"]
    await _until_terminal(direct, "mirrored")
    _, listed = await _call(direct, "GET", "/v1/queries")
    assert [(item["name"], item["reconciliation"]) for item in listed["items"]] == [
        ("mirrored", "broker")
    ]
    status, _ = await _call(direct, "DELETE", "/v1/queries/mirrored")
    assert status == 204
    assert await direct.kube.list(Query, "team-a") == []


async def test_a_requested_mode_is_annotated_and_an_existing_name_is_a_409(direct: Any) -> None:
    body = {
        "name": "standalone-1",
        "input": "hi",
        "target": TARGET,
        "metadata": {"annotations": {"ark.mckinsey.com/reconciliation": "standalone"}},
    }
    status, created = await _call(direct, "POST", "/v1/queries", body)
    assert (status, created["reconciliation"]) == (200, "direct")
    query = await direct.kube.get(Query, "team-a", "standalone-1")
    assert (query.metadata.annotations or {})["ark.mckinsey.com/reconciliation"] == "standalone"
    status, error = await _call(direct, "POST", "/v1/queries", body)
    assert (status, error["error"]["field"]) == (409, "name")
    status, error = await _call(direct, "POST", "/v1/queries", {**body, "reconciliation": "broker"})
    assert (status, error["error"]["field"]) == (422, "reconciliation")


async def test_modes_outside_allowed_modes_are_refused(world: Any) -> None:
    await world.start_broker(
        world.broker_config(
            reconciliation=ReconciliationConfig(
                default_reconciliation="direct", allowed_modes=("direct",)
            )
        )
    )
    status, error = await _call(
        world, "POST", "/v1/queries", {"input": "hi", "target": TARGET, "reconciliation": "broker"}
    )
    assert (status, error["error"]["field"]) == (422, "reconciliation")
    assert "allowedModes: direct" in error["error"]["message"]
