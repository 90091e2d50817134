"""Takeover of a killed replica's queries (issue 12, acceptance 3; decision 49).

Two query-reconcilers run as real subprocesses. Each holds slow queries whose model answer
takes several AckWaits (the tests' AckWait is 2 s): only the worker's ``in_progress``
heartbeats keep them from being redelivered. One replica is SIGKILLed; its queries must move
to the other replica (attempt 2, chunk numbering continued) and end ``done`` exactly once,
while the living replica's own slow queries are never handed out a second time. How *fast*
the takeover is, is measured by ``bench/takeover.py`` (docs/benchmarks.md), not asserted here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from ark_mesh.contracts import QueryRequest, StatusUpdate

PER_REPLICA = 3
SLOW = 6.0  # seconds of the first model answer: three AckWaits of the tests' consumer


def _slow_model(mesh: Any, job: str, first: float) -> None:
    """The first answer to ``job`` takes ``first`` seconds, a second one (the takeover's)
    :data:`SLOW` / 2: longer than AckWait too, so the new owner must heartbeat as well."""
    mesh.fake.add_rule(
        {
            "match": {"user_regex": f"^{job}$"},
            "replies": [
                {"content": f"first answer to {job}", "delay": first},
                {"content": f"answer to {job}", "delay": SLOW / 2},
            ],
        }
    )


def _model_calls(mesh: Any, job: str) -> int:
    return sum(
        1
        for request in mesh.fake.requests_to("chat")
        if any(
            m.get("role") == "user" and m.get("content") == job for m in request.body["messages"]
        )
    )


async def _running_on(mesh: Any, requests: list[QueryRequest], replica: str) -> None:
    for request in requests:
        update: StatusUpdate = await mesh.wait_phase(request, "running")
        assert update.reconciler == replica, request.name


async def test_a_killed_replicas_queries_move_to_the_living_one_and_end_once(mesh: Any) -> None:
    doomed_jobs = [f"doomed-{i}" for i in range(PER_REPLICA)]
    living_jobs = [f"living-{i}" for i in range(PER_REPLICA)]
    for job in doomed_jobs:
        _slow_model(mesh, job, first=600)  # never answered: its replica dies waiting
    for job in living_jobs:
        _slow_model(mesh, job, first=SLOW)
    doomed = [mesh.request(job, input=job) for job in doomed_jobs]
    living = [mesh.request(job, input=job) for job in living_jobs]
    base = mesh.config()
    worker = msgspec.structs.replace(base.bus.worker, slots=PER_REPLICA)
    small = msgspec.structs.replace(base, bus=msgspec.structs.replace(base.bus, worker=worker))
    worker = msgspec.structs.replace(base.bus.worker, slots=2 * PER_REPLICA)
    large = msgspec.structs.replace(base, bus=msgspec.structs.replace(base.bus, worker=worker))

    async with mesh.process("doomed", small) as (victim, _):
        # The first replica alone fills its slots; the second one starts after, so each holds
        # its own queries (and has room for the other's).
        for request in doomed:
            await mesh.submit(request)
        await _running_on(mesh, doomed, "process-doomed")
        async with mesh.process("living", large):
            for request in living:
                await mesh.submit(request)
            await _running_on(mesh, living, "process-living")
            victim.kill()
            await victim.wait()
            async with asyncio.timeout(120):
                for request in doomed + living:
                    await mesh.wait_final(request)
            outcomes = {request.name: await mesh.recorded(request) for request in doomed + living}

    for job in doomed_jobs:
        outcome = outcomes[job]
        assert [(u.phase, u.attempt, u.reconciler) for u in outcome.statuses] == [
            ("running", 1, "process-doomed"),
            ("running", 2, "process-living"),
            ("done", 2, "process-living"),
        ], job
        assert len(outcome.terminal) == 1, job
        assert len(outcome.finals) == 1, job
        response = outcome.statuses[-1].status.response
        assert response is not None
        assert response.content == f"answer to {job}"
        seqs = [chunk.seq for chunk in outcome.chunks]
        assert seqs == list(range(1, len(seqs) + 1)), job
        assert _model_calls(mesh, job) == 2, job
    for job in living_jobs:
        outcome = outcomes[job]
        # Several AckWaits long, yet never redelivered: its replica lived and heartbeat.
        assert [(u.phase, u.attempt, u.reconciler) for u in outcome.statuses] == [
            ("running", 1, "process-living"),
            ("done", 1, "process-living"),
        ], job
        assert len(outcome.finals) == 1, job
        response = outcome.statuses[-1].status.response
        assert response is not None
        assert response.content == f"first answer to {job}"
        seqs = [chunk.seq for chunk in outcome.chunks]
        assert seqs == list(range(1, len(seqs) + 1)), job
        assert _model_calls(mesh, job) == 1, job
