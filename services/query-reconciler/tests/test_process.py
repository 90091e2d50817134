"""The service as a real process: ``python -m ark_mesh.query_reconciler --config FILE``.

One test runs it until SIGTERM (ready, then a clean exit 0); the other SIGKILLs it in the middle
of a query and lets another replica take the redelivered work: the query still has exactly one
terminal status and one final chunk, and chunk numbering continues where the dead replica
stopped.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import msgspec

from ark_mesh.bus import WorkConsumerSettings
from ark_mesh.contracts.ark import STREAMING_ANNOTATION
from ark_mesh.query_reconciler import RESTART_NOTICE


async def test_the_process_becomes_ready_and_exits_cleanly_on_sigterm(mesh: Any) -> None:
    async with mesh.process("lifecycle") as (process, url):
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
            body = await response.json()
        assert body["checks"] == {"nats": "ok", "consumer": "ok", "resources": "ok"}
        request = mesh.request()
        await mesh.submit(request)
        async with asyncio.timeout(60):
            await mesh.wait_final(request)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await process.wait()
    assert code == 0
    log = (mesh.root / "lifecycle.log").read_text()
    assert '"service stopped"' in log


async def test_a_replica_killed_mid_query_is_replaced_with_one_outcome(mesh: Any) -> None:
    slow = " ".join(f"w{i}" for i in range(80))
    mesh.fake.add_rule(
        {
            "match": {"user": "story"},
            "replies": [{"content": slow, "chunk_delay": 0.1}, {"content": "second try"}],
        }
    )
    # The client asked to stream (as ark-api annotates such a query): killed mid-stream.
    request = mesh.request(input="tell a story", annotations={STREAMING_ANNOTATION: "true"})
    async with mesh.process("doomed") as (process, _):
        await mesh.submit(request)
        async with asyncio.timeout(60):
            await mesh.wait_chunks(request, 3)
        process.kill()
        await process.wait()
    interrupted = await mesh.recorded(request)
    assert interrupted.terminal == []
    assert interrupted.finals == []
    partial = len(interrupted.chunks)

    await mesh.start()  # another replica; JetStream redelivers after AckWait
    outcome = await mesh.outcome(request)

    assert [(u.phase, u.attempt) for u in outcome.statuses] == [
        ("running", 1),
        ("running", 2),
        ("done", 2),
    ]
    assert len(outcome.terminal) == 1
    assert len(outcome.finals) == 1
    assert outcome.chunks[-1].is_final
    seqs = [chunk.seq for chunk in outcome.chunks]
    assert seqs == list(range(1, len(seqs) + 1))
    notice = outcome.chunks[partial]
    assert notice.ark.system_message == RESTART_NOTICE
    after_restart = "".join(
        choice.delta.content or ""
        for chunk in outcome.chunks[partial + 1 : -1]
        for choice in chunk.choices
    )
    assert after_restart == "second try"
    assert outcome.statuses[-1].status.response is not None
    assert outcome.statuses[-1].status.response.content == "second try"
    assert [u.reconciler for u in outcome.statuses] == [
        "process-doomed",
        "test-replica",
        "test-replica",
    ]


async def test_a_replica_killed_on_the_last_delivery_still_ends_the_query(mesh: Any) -> None:
    base = mesh.config()
    # One delivery only: the work is never redelivered, the server announces MaxDeliver.
    # AckWait is long enough for the next replica to be listening before it runs out.
    last_chance = WorkConsumerSettings(
        kind="query", durable="query-reconciler", ack_wait=5.0, max_deliver=1
    )
    topology = msgspec.structs.replace(base.bus.topology, work_consumers=(last_chance,))
    config = msgspec.structs.replace(base, bus=msgspec.structs.replace(base.bus, topology=topology))
    mesh.fake.add_rule(
        {"match": {"user": "story"}, "reply": {"content": "a b c d e f g h", "chunk_delay": 0.5}}
    )
    request = mesh.request(input="tell a story", annotations={STREAMING_ANNOTATION: "true"})
    async with mesh.process("last-chance", config) as (process, _):
        await mesh.submit(request)
        async with asyncio.timeout(60):
            await mesh.wait_chunks(request, 1)
        process.kill()
        await process.wait()
    await mesh.start(config)  # a live replica hears the MaxDeliver advisory

    outcome = await mesh.outcome(request)

    assert [u.phase for u in outcome.statuses] == ["running", "error"]
    conditions = outcome.statuses[-1].status.conditions or []
    completed = next(c for c in conditions if c.type == "Completed")
    assert completed.reason == "QueryErrored"
    assert "MaxDeliver reached" in completed.message
    assert len(outcome.finals) == 1
    assert outcome.chunks[-1].is_final
    assert len(mesh.fake.requests_to("chat")) == 1
