"""Direct + standalone, end to end: controller → JetStream → query-reconciler → status-sync.

Every component is its own process; the tests kill and restart them the way a node failure
or a rollout would, and count what reached the Kubernetes API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest

from ark_mesh.contracts import Agent, AgentSpec, Chunk, EngineRef, ObjectMeta, Query
from ark_mesh.contracts.ark import A2A_SERVER_ADDRESS_ANNOTATION, RECONCILIATION_ANNOTATION
from ark_mesh.contracts.endings import final_chunk
from ark_mesh.controller.reconcile import query_request
from ark_mesh.testing import ark_objects
from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import Match, Reply, Rule

pytestmark = pytest.mark.slow


def completed(query: Query) -> tuple[str, str, str]:
    assert query.status is not None
    for condition in query.status.conditions or []:
        if condition.type == "Completed":
            return condition.status, condition.reason, condition.message
    raise AssertionError(f"no Completed condition on {query.metadata.name}")


def assert_shared_ending(query: Query, final: Chunk, *, canceled: bool = False) -> None:
    """The stream's final chunk is the one :mod:`ark_mesh.contracts.endings` builds from the
    status that reached the Query, whichever path resolved it (the in-process contract test,
    services/query-reconciler/tests/test_ending_contract.py, covers every path field by field).

    ``canceled``: setting ``spec.cancel`` made a new generation of the Query, and the run's final
    chunk carries the Query it resolved (the generation before, its spec); the controller's
    ``canceled`` status observes the new one. Those two are taken from the run; the ending itself
    — phase, reason, message, instant, facts — must still be the stored one to the letter.
    """
    assert query.status is not None
    created = datetime.fromtimestamp(final.created, UTC)
    status, resolved = query.status, query
    if canceled:
        assert final.ark.completed_query is not None
        ran = final.ark.completed_query
        generation = ran.metadata.generation
        assert generation == (query.metadata.generation or 1) - 1
        resolved = msgspec.structs.replace(
            query,
            metadata=msgspec.structs.replace(query.metadata, generation=generation),
            spec=ran.spec,
        )
        status = msgspec.structs.replace(
            status,
            conditions=[
                msgspec.structs.replace(c, observed_generation=generation)
                if c.type == "Completed"
                else c
                for c in status.conditions or []
            ],
        )
    rebuilt = final_chunk(query_request(resolved, created), status, seq=final.seq, now=created)
    streamed, expected = msgspec.to_builtins(final), msgspec.to_builtins(rebuilt)
    assert streamed == expected, _differences(streamed, expected)


def _differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two decoded documents differ, as ``path: left != right`` lines."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted({*left, *right}):
            found += _differences(left.get(key), right.get(key), f"{path}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [
            d
            for i, (a, b) in enumerate(zip(left, right, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


@pytest.mark.parametrize("mode", ["standalone", "inController"])
async def test_direct_query_reaches_done_with_stream_events_and_one_write_per_phase(
    start_mesh, mode: str
) -> None:
    mesh, probe = await start_mesh(preset="scale-flexible")
    async with await mesh.client() as client:
        created = await client.create(
            ark_objects.query(
                "weather",
                mesh.namespace,
                "Weather in Chicago?",
                annotations={RECONCILIATION_ANNOTATION: mode},
            )
        )
    query = await probe.wait_phase("weather", "done", "error")
    assert query.status is not None
    assert query.status.phase == "done", query.status
    assert completed(query)[:2] == ("True", "QuerySucceeded")
    assert query.status.response is not None
    assert "Weather in Chicago?" in query.status.response.content
    assert query.status.token_usage is not None
    assert query.status.token_usage.total_tokens == 150

    uid = created.metadata.uid or ""
    chunks = await probe.chunks(uid)
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    assert chunks[-1].is_final
    assert sum(c.is_final for c in chunks) == 1
    assert all(c.ark.query == uid for c in chunks)
    streamed = "".join(choice.delta.content or "" for c in chunks[:-1] for choice in c.choices)
    assert streamed == query.status.response.content
    assert_shared_ending(query, chunks[-1])

    # No reconciliation loop: generation never moves; status is written once per phase change.
    assert mesh.kube is not None
    activity = await mesh.kube.activity("queries", mesh.namespace, "weather")
    assert activity.generation == 1
    assert activity.generation_bumps == 0
    assert activity.status_writes == 3  # pending, running, done
    assert activity.updates == 1  # the finalizer, once

    # kubectl describe shows the story: the controller's query events in-process, and
    # status-sync's phase-transition events (Ark's Completed reasons) for standalone queries.
    expected = (
        {"QueryExecutionStart", "QueryExecutionComplete"}
        if mode == "inController"
        else {"QueryRunning", "QuerySucceeded"}
    )
    async with asyncio.timeout(30):
        while True:
            reasons = {e.get("reason") for e in await probe.events("weather")}
            if expected <= reasons:
                break
            await asyncio.sleep(0.1)

    # Every process serves Prometheus metrics on its health port; the one that resolved the
    # query counted the work message it handled.
    pages = {name: await scrape(process.health_url) for name, process in mesh.services.items()}
    for name, page in pages.items():
        assert f'service_name="{name}"' in page, name
    if mode == "standalone":
        resolver = "query-reconciler"
        assert "# TYPE ark_bus_messages_in_flight gauge" in pages[resolver]
        handled = series(pages[resolver], "messaging_client_consumed_messages_total")
        assert sum(handled.values()) >= 1, pages[resolver]
        assert any('ark_outcome="ack"' in labels for labels in handled), handled
        assert series(pages[resolver], "messaging_process_duration_seconds_count")
        assert sum(series(pages[resolver], "messaging_client_sent_messages_total").values()) >= 3
        assert (
            sum(series(pages["status-sync"], "messaging_client_consumed_messages_total").values())
            >= 2  # running, done
        )


async def scrape(health_url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{health_url}/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await reply.text()


def series(page: str, name: str) -> dict[str, float]:
    """The samples of one metric on a Prometheus page, by their label set."""
    found: dict[str, float] = {}
    for line in page.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = float(value)
    return found


async def test_a2a_agent_context_id_lands_in_status(start_mesh) -> None:
    mesh, probe = await start_mesh(preset="scale-flexible")
    async with A2ATestServer() as a2a, await mesh.client() as client:
        await client.create(
            Agent(
                metadata=ObjectMeta(
                    name="counter",
                    namespace=mesh.namespace,
                    annotations={A2A_SERVER_ADDRESS_ANNOTATION: a2a.url},
                ),
                spec=AgentSpec(execution_engine=EngineRef(name="a2a")),
            )
        )
        await client.create(
            ark_objects.query(
                "count", mesh.namespace, "count my messages", target=("agent", "counter")
            )
        )
        query = await probe.wait_phase("count", "done", "error")
    assert query.status is not None
    assert query.status.phase == "done", query.status
    assert query.status.response is not None
    assert query.status.response.a2a is not None
    context_id = query.status.response.a2a.context_id
    assert context_id
    assert context_id in a2a.contexts
    assert query.status.a2a is not None
    assert query.status.a2a.context_id == context_id
    assert RECONCILIATION_ANNOTATION not in (query.metadata.annotations or {})
    assert "ark.mckinsey.com/a2a-context-id" not in (query.metadata.annotations or {})


async def test_reconciler_killed_with_twenty_in_flight_every_query_ends_once(start_mesh) -> None:
    mesh, probe = await start_mesh(
        preset="scale-flexible",
        streaming=True,  # killed while twenty model streams are live
        bus_settings={
            "topology": {
                "workConsumers": [
                    {"kind": "query", "durable": "query-reconciler", "ackWait": 3.0},
                    {"kind": "responses", "durable": "responses-reconciler"},
                    {"kind": "embeddings", "durable": "embeddings-reconciler"},
                ]
            },
        },
        overrides={"query-reconciler": {"bus": {"worker": {"slots": 32}}}},
    )
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rule(
        Rule(match=Match(user="long job"), reply=Reply(content="tok " * 40, chunk_delay=0.1))
    )
    names = [f"job-{i:02d}" for i in range(20)]
    async with await mesh.client() as client:
        uids = {}
        for name in names:
            created = await client.create(
                ark_objects.query(name, mesh.namespace, f"long job {name}")
            )
            uids[name] = created.metadata.uid or ""
    await probe.wait_all(names, "running", "done", within=60)
    await mesh.fake_llm.control.wait_until(
        lambda requests: len([r for r in requests if "long job" in str(r.body)]) >= 20
    )
    reconciler = mesh.services["query-reconciler"]
    reconciler.kill()
    assert await reconciler.wait_exit() == -9
    await mesh.start_service("query-reconciler")

    queries = await probe.wait_all(names, "done", "error", "canceled", within=180)
    assert [q.status.phase for q in queries if q.status] == ["done"] * 20
    assert mesh.kube is not None
    for name in names:
        activity = await mesh.kube.activity("queries", mesh.namespace, name)
        assert activity.status_writes == 3, name  # pending, running, done: one terminal write
        assert activity.generation_bumps == 0
        terminal = [u for u in await probe.status_updates(uids[name]) if u.terminal]
        assert len(terminal) == 1, name
        chunks = await probe.chunks(uids[name])
        assert sum(c.is_final for c in chunks) == 1, name
        assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1)), name


async def test_status_sync_killed_and_restarted_converges(start_mesh) -> None:
    mesh, probe = await start_mesh(preset="scale-flexible", streaming=True)
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rule(
        Rule(match=Match(user="steady"), reply=Reply(content="tok " * 10, chunk_delay=0.05))
    )
    names = [f"sync-{i}" for i in range(8)]
    async with await mesh.client() as client:
        for name in names[:4]:
            await client.create(ark_objects.query(name, mesh.namespace, "steady work"))
        sync = mesh.services["status-sync"]
        sync.kill()
        await sync.wait_exit()
        for name in names[4:]:
            await client.create(ark_objects.query(name, mesh.namespace, "steady work"))
    await asyncio.sleep(1.0)  # the reconciler keeps publishing while status-sync is down
    await mesh.start_service("status-sync")
    queries = await probe.wait_all(names, "done", "error", "canceled", within=120)
    assert [q.status.phase for q in queries if q.status] == ["done"] * 8
    assert mesh.kube is not None
    for name in names:
        activity = await mesh.kube.activity("queries", mesh.namespace, name)
        assert activity.status_writes <= 3, name
        assert activity.generation_bumps == 0


async def test_refusals_name_the_problem_and_leave_others_alone(start_mesh) -> None:
    # Without admission, so the reconcilers' own refusals are what is tested (with it, the
    # ghost target is refused at apply time: services/controller/tests/test_admission_kubectl).
    mesh, probe = await start_mesh(preset="scale-strict", admission=False)
    async with await mesh.client() as client:
        await client.create(
            ark_objects.query(
                "in-process-please",
                mesh.namespace,
                "hi",
                annotations={RECONCILIATION_ANNOTATION: "inController"},
            )
        )
        await client.create(
            ark_objects.query("ghost-target", mesh.namespace, "hi", target=("agent", "ghost"))
        )
        await client.create(
            ark_objects.query("bad-timeout", mesh.namespace, "hi", timeout="whenever")
        )
        await client.create(ark_objects.query("fine", mesh.namespace, "hi"))

    refused = await probe.wait_phase("in-process-please", *("done", "error"))
    assert completed(refused)[1] == "ReconciliationModeNotAllowed"
    assert "'inController'" in completed(refused)[2]
    ghost = await probe.wait_phase("ghost-target", "done", "error")
    assert ghost.status is not None
    assert ghost.status.phase == "error"
    assert "ghost" in completed(ghost)[2]
    bad = await probe.wait_phase("bad-timeout", "done", "error")
    assert "spec.timeout" in completed(bad)[2]
    fine = await probe.wait_phase("fine", "done", "error")
    assert fine.status is not None
    assert fine.status.phase == "done"


async def test_cancel_of_a_running_standalone_query(start_mesh) -> None:
    def endless(requests: list[Any]) -> list[Any]:
        return [r for r in requests if "endless story" in str(r.body)]

    mesh, probe = await start_mesh(preset="scale-flexible", streaming=True)
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rule(
        Rule(match=Match(user="endless"), reply=Reply(content="tok " * 2000, chunk_delay=0.02))
    )
    async with await mesh.client() as client:
        created = await client.create(ark_objects.query("endless", mesh.namespace, "endless story"))
        await probe.wait_phase("endless", "running")
        # Only this query's calls: the controller also probes the Model on the same fake.
        await mesh.fake_llm.control.wait_until(lambda requests: bool(endless(requests)))
        await client.patch(Query, mesh.namespace, "endless", {"spec": {"cancel": True}})
    query = await probe.wait_phase("endless", "canceled", "done", "error")
    assert query.status is not None
    assert query.status.phase == "canceled"
    assert completed(query)[:2] == ("True", "QueryCanceled")
    await mesh.fake_llm.control.wait_until(
        lambda requests: endless(requests)[-1].outcome == "client_disconnected"
    )
    chunks = await probe.chunks(created.metadata.uid or "")
    assert chunks[-1].is_final
    assert sum(c.is_final for c in chunks) == 1
    assert_shared_ending(query, chunks[-1], canceled=True)
    content = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert len(content.split()) < 2000  # stopped well before the model's answer ended
