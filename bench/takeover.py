"""Takeover: how soon a SIGKILLed query-reconciler's queries run again on another replica, and
what the heartbeats that make it possible cost (issue 12, acceptance 3; decision 49).

**Takeover.** One nats-server (file storage, loopback), the fake model in this process, two
query-reconcilers as real subprocesses with the *default* topology (work consumer AckWait
8 s, heartbeats every AckWait/3). Replica ``doomed`` takes ``--queries`` slow queries (the
model answers after ``--slow`` seconds), then replica ``living`` starts and takes as many of
its own. ``doomed`` is SIGKILLed; for each of its queries the bench records the time from the
kill until the status ``running`` of attempt 2 arrives (published by ``living`` when it starts
the query again) and until its final chunk. It checks that every query ends ``done`` exactly
once and that none of ``living``'s own queries was run twice. ``--rounds`` repeats it.

**Heartbeat cost.** A bus :class:`~ark_mesh.bus.Worker` with ``--in-flight`` slots holds as many
messages whose handler just sleeps; over ``--window`` seconds the bench reads the server's
``in_msgs`` (``/varz``) and the CPU time of nats-server and of the worker's process.

Usage: ``uv run python bench/takeover.py [--queries 25] [--rounds 3] [--in-flight 1000]``.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from harness import cpu_seconds, manifests, reconciler_process

from ark_mesh.bus import (
    Bus,
    MessageContext,
    Publisher,
    Topology,
    TopologyConfig,
    Worker,
    WorkerSettings,
)
from ark_mesh.contracts import Chunk, QueryRequest, QuerySpec, QueryTarget, StatusUpdate, subjects
from ark_mesh.contracts import decoder_for as contract_decoder
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer

TENANT = "bench"
_status = contract_decoder(StatusUpdate)
_chunk = contract_decoder(Chunk)


class Watch:
    """Arrival times of status updates and final chunks of the bench's queries (core
    subscriptions: JetStream publishes are plain NATS messages too)."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[tuple[float, StatusUpdate]]] = {}
        self.finals: dict[str, list[float]] = {}
        self.changed = asyncio.Event()

    async def start(self, bus: Bus) -> None:
        async def on_status(msg: Any) -> None:
            update = _status(msg.data)
            self.statuses.setdefault(update.query_id, []).append((time.monotonic(), update))
            self.changed.set()

        async def on_chunk(msg: Any) -> None:
            chunk = _chunk(msg.data)
            if chunk.is_final:
                self.finals.setdefault(chunk.ark.query, []).append(time.monotonic())
                self.changed.set()

        await bus.nc.subscribe(f"ark.{TENANT}.query.*.status", cb=on_status)
        await bus.nc.subscribe(f"ark.{TENANT}.query.*.chunk", cb=on_chunk)

    async def until(self, check: Any, within: float = 300.0) -> None:
        async with asyncio.timeout(within):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def phases(self, query_id: str) -> list[tuple[str, int, str | None]]:
        return [(u.phase, u.attempt, u.reconciler) for _, u in self.statuses.get(query_id, [])]


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _request(job: str) -> QueryRequest:
    return QueryRequest(
        query_id=str(uuid.uuid4()),
        name=job,
        namespace=TENANT,
        tenant=TENANT,
        spec=QuerySpec(input=job, target=QueryTarget(type="agent", name="helper")),
        submitted_at=datetime.now(UTC).isoformat(),
    )


async def takeover_round(
    root: Path, nats_url: str, fake: FakeModelServer, args: argparse.Namespace, number: int
) -> tuple[list[float], list[float]]:
    bus = await Bus.connect(servers=(nats_url,), name="bench")
    publisher = await Publisher.create(bus)
    watch = Watch()
    await watch.start(bus)
    doomed = [_request(f"doomed-{number}-{i}") for i in range(args.queries)]
    living = [_request(f"living-{number}-{i}") for i in range(args.queries)]
    for request in doomed + living:
        # The doomed replica's calls are never answered (it dies waiting); the living one's
        # take --slow seconds, several AckWaits.
        first = 600.0 if request in doomed else args.slow
        fake.add_rule(
            {
                "match": {"user_regex": f"^{request.name}$"},
                "replies": [
                    {"content": "first", "delay": first},
                    {"content": "second", "delay": 0.2},
                ],
            }
        )

    def running(requests: list[QueryRequest], name: str) -> bool:
        return all(("running", 1, name) in watch.phases(r.query_id) for r in requests)

    async with reconciler_process(
        root, nats_url, f"doomed-{number}", tenant=TENANT, slots=args.queries, kill_at_exit=True
    ) as victim:
        for request in doomed:
            await publisher.publish(subjects.work_query(TENANT), request, msg_id=request.msg_id)
        await watch.until(lambda: running(doomed, f"doomed-{number}"))
        _progress(f"round {number}: {len(doomed)} queries running on doomed-{number}")
        async with reconciler_process(
            root,
            nats_url,
            f"living-{number}",
            tenant=TENANT,
            slots=2 * args.queries,
            kill_at_exit=True,
        ):
            for request in living:
                await publisher.publish(subjects.work_query(TENANT), request, msg_id=request.msg_id)
            await watch.until(lambda: running(living, f"living-{number}"))
            _progress(f"round {number}: {len(living)} queries running on living-{number}; kill")
            victim.kill()
            killed = time.monotonic()
            await victim.wait()
            await watch.until(lambda: all(r.query_id in watch.finals for r in doomed + living))
            await asyncio.sleep(1.0)  # anything duplicated would arrive now
    resumed: list[float] = []
    finished: list[float] = []
    for request in doomed:
        updates = watch.statuses[request.query_id]
        restart = next(t for t, u in updates if u.phase == "running" and u.attempt == 2)
        resumed.append(restart - killed)
        finished.append(watch.finals[request.query_id][0] - killed)
        terminal = [u for _, u in updates if u.terminal]
        assert len(terminal) == 1, watch.phases(request.query_id)
        assert terminal[0].phase == "done", watch.phases(request.query_id)
        assert len(watch.finals[request.query_id]) == 1
    for request in living:
        assert watch.phases(request.query_id) == [
            ("running", 1, f"living-{number}"),
            ("done", 1, f"living-{number}"),
        ], watch.phases(request.query_id)
    await publisher.close()
    await bus.close()
    return resumed, finished


async def _in_msgs(http: aiohttp.ClientSession, server: NatsServer) -> int:
    async with http.get(f"{server.monitor_url}/varz") as response:
        return int((await response.json())["in_msgs"])


async def heartbeat_cost(server: NatsServer, args: argparse.Namespace) -> dict[str, float]:
    """Server messages and CPU per second while ``--in-flight`` messages are held."""
    bus = await Bus.connect(servers=(server.url,), name="bench-heartbeats")
    topology = Topology(TopologyConfig())
    binding = topology.work_binding("query")
    publisher = await Publisher.create(bus)
    release = asyncio.Event()
    all_started = asyncio.Event()
    started = 0

    async def hold(_: QueryRequest, context: MessageContext) -> None:
        nonlocal started
        started += 1
        if started == args.in_flight:
            all_started.set()
        await release.wait()

    worker = Worker.for_type(
        bus, binding, QueryRequest, hold, settings=WorkerSettings(slots=args.in_flight)
    )
    await worker.start()
    for index in range(args.in_flight):
        request = _request(f"held-{index}")
        await publisher.publish(subjects.work_query(TENANT), request, msg_id=request.msg_id)
    async with asyncio.timeout(120):
        await all_started.wait()
    await asyncio.sleep(worker.heartbeat_interval)  # heartbeats now in their steady rhythm
    assert server.pid is not None
    async with aiohttp.ClientSession() as http:
        messages = await _in_msgs(http, server)
        server_cpu, own_cpu = cpu_seconds(server.pid), time.process_time()
        began = time.monotonic()
        await asyncio.sleep(args.window)
        elapsed = time.monotonic() - began
        messages = await _in_msgs(http, server) - messages
        server_cpu = cpu_seconds(server.pid) - server_cpu
        own_cpu = time.process_time() - own_cpu
    release.set()
    await worker.stop()
    await publisher.close()
    await bus.close()
    return {
        "in_flight": args.in_flight,
        "ack_wait": worker.ack_wait,
        "interval": worker.heartbeat_interval,
        "msgs_per_s": messages / elapsed,
        "server_cpu": 100 * server_cpu / elapsed,
        "worker_cpu": 100 * own_cpu / elapsed,
    }


def _row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"| {name} | {len(values)} | {ordered[0]:.2f} | {statistics.median(ordered):.2f} | "
        f"{ordered[-1]:.2f} |"
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="warning")
    with tempfile.TemporaryDirectory(prefix="ark-bench-") as directory:
        root = Path(directory)
        (root / "nats").mkdir()
        server = NatsServer(root / "nats").start()
        fake = FakeModelServer()
        await fake.start()
        (root / "manifests").mkdir()
        (root / "manifests" / "resources.yaml").write_text(
            yaml.safe_dump_all(manifests(fake.base_url, TENANT))
        )
        try:
            bus = await Bus.connect(servers=(server.url,), name="bench-provision")
            await Topology(TopologyConfig()).provision(bus)
            await bus.close()
            resumed: list[float] = []
            finished: list[float] = []
            for number in range(args.rounds):
                r, f = await takeover_round(root, server.url, fake, args, number)
                resumed += r
                finished += f
            cost = await heartbeat_cost(server, args) if args.in_flight else None
        finally:
            await fake.stop()
            server.stop()
    print(
        f"takeover, {args.rounds} round(s) of {args.queries} killed queries (seconds after the kill)"
    )
    print("| measure | queries | min | median | max |")
    print("|---|---:|---:|---:|---:|")
    print(_row("status `running` of attempt 2 (resumed on the other replica)", resumed))
    print(_row("final chunk (the model answers the new attempt in 0.2 s)", finished))
    if cost is not None:
        print()
        print(
            "| in flight | AckWait s | heartbeat every s | server msgs/s | nats-server CPU % | worker CPU % |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {cost['in_flight']:.0f} | {cost['ack_wait']:.0f} | {cost['interval']:.2f} | "
            f"{cost['msgs_per_s']:.0f} | {cost['server_cpu']:.1f} | {cost['worker_cpu']:.1f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=25, help="slow queries per replica")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", type=float, default=20.0, help="seconds of the first answer")
    parser.add_argument("--in-flight", type=int, default=1000, help="0 skips the cost part")
    parser.add_argument("--window", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
