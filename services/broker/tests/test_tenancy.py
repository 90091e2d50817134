"""Tokens are required; a tenant never sees, streams or cancels another tenant's query; 429."""

from __future__ import annotations

import asyncio

import msgspec

from ark_mesh.broker import AuthConfig, LimitsConfig
from ark_mesh.testing.fake_llm import Match, Reply, Rule

BODY = {"input": "hello", "target": {"type": "agent", "name": "helper"}}


async def test_requests_without_a_known_token_are_unauthorized(running) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        async with running.http.post(
            f"{running.url}/v1/queries", json=BODY, headers=headers
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
        async with running.http.get(f"{running.url}/v1/queries", headers=headers) as response:
            assert response.status == 401


async def test_a_tenant_cannot_see_stream_or_cancel_another_tenants_query(running) -> None:
    query_id = await running.submit()  # team-a
    await running.wait_phase(query_id)
    for path in (f"/v1/queries/{query_id}", f"/v1/queries/{query_id}/events"):
        status, body = await running.get(path, tenant="team-b")
        assert status == 404, body
        assert body["error"]["code"] == "NOT_FOUND"
    async with running.http.get(
        f"{running.url}/v1/queries/{query_id}/stream", headers=running.auth("team-b")
    ) as response:
        assert response.status == 404
    async with running.http.post(
        f"{running.url}/v1/queries/{query_id}/cancel", headers=running.auth("team-b")
    ) as response:
        assert response.status == 404
    _, listed = await running.get("/v1/queries", tenant="team-b")
    assert listed["items"] == []
    # The owner still sees it, unchanged by the other tenant's cancel attempt.
    status, body = await running.get(f"/v1/queries/{query_id}")
    assert status == 200
    assert body["status"]["phase"] == "done"


async def test_team_b_queries_run_in_team_b(running) -> None:
    status, body, _ = await running.post(BODY, tenant="team-b")
    assert status == 202
    assert body["namespace"] == "team-b"
    done = await running.wait_phase(body["id"], tenant="team-b")
    assert done["status"]["phase"] == "done"


async def test_over_the_in_flight_limit_is_429_with_retry_after(world) -> None:
    await world.start_reconciler()
    await world.start_broker(
        world.broker_config(limits=LimitsConfig(max_in_flight_per_tenant=2, retry_after_seconds=7))
    )
    world.fake.add_rule(Rule(match=Match(user="hold"), reply=Reply(content="ok", delay=3.0)))
    hold = {**BODY, "input": "hold"}
    first = await world.post(hold)
    second = await world.post(hold)
    assert first[0] == second[0] == 202
    status, body, headers = await world.post(hold)
    assert status == 429, body
    assert body["error"]["code"] == "TOO_MANY_REQUESTS"
    assert "in flight" in body["error"]["message"]
    assert headers["Retry-After"] == "7"
    # Another tenant has its own budget.
    assert (await world.post(hold, tenant="team-b"))[0] == 202
    # Once the first ones finish, the tenant may submit again.
    await world.wait_phase(first[1]["id"])
    await world.wait_phase(second[1]["id"])
    async with asyncio.timeout(30):
        while True:
            status, body, _ = await world.post(BODY)
            if status == 202:
                break
            assert status == 429, body
            await asyncio.sleep(0.05)


async def test_auth_none_takes_the_tenant_from_the_namespace_parameter(world) -> None:
    await world.start_reconciler()
    broker = await world.start_broker(world.broker_config(auth=AuthConfig(mode="none")))
    async with world.http.post(
        f"{broker.url}/v1/queries?namespace=team-b", data=msgspec.json.encode(BODY)
    ) as response:
        assert response.status == 202
        created = await response.json()
    assert created["namespace"] == "team-b"
    async with world.http.get(f"{broker.url}/v1/queries/{created['id']}") as response:
        assert response.status == 404  # default tenant is "default", not team-b
    async with world.http.get(f"{broker.url}/v1/queries?namespace=Bad.Name") as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "namespace"
