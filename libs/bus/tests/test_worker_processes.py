"""Workers as real processes: SIGKILL mid-handler, SIGTERM under load.

The handler's effect is guarded by an idempotency record (KV ``create`` keyed by the message
id), and every invocation is recorded, so "exactly once" is proven by counting records, never by
timing.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest_asyncio
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from ark_mesh.bus import Bus, Publisher, Topology
from ark_mesh.contracts import subjects
from ark_mesh.telemetry import MessagingTelemetry
from ark_mesh.testing.nats_server import NatsServer

SCRIPT = Path(__file__).with_name("worker_process.py")


class WorkerProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    async def terminate(self) -> dict[str, object]:
        """SIGTERM, wait for a clean exit, return the stats line the worker printed."""
        self.process.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(self.process.communicate(), 60)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        result: dict[str, object] = json.loads(stdout.decode().strip().splitlines()[-1])
        return result

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 30)


Spawn = Callable[..., Awaitable[WorkerProcess]]


@pytest_asyncio.fixture
async def spawn(nats_server: NatsServer, bus: Bus, tmp_path: Path) -> AsyncIterator[Spawn]:
    ready: asyncio.Queue[int] = asyncio.Queue()

    async def on_ready(msg: Msg) -> None:
        await ready.put(int(msg.data))

    sub = await bus.nc.subscribe("test.ready", cb=on_ready)
    started: list[WorkerProcess] = []

    async def start(*extra: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--url",
                nats_server.url,
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        worker = WorkerProcess(process, log)
        started.append(worker)
        while True:
            pid = await asyncio.wait_for(ready.get(), 60)
            if pid == process.pid:
                return worker
            await ready.put(pid)
            await asyncio.sleep(0.01)

    yield start
    await sub.unsubscribe()
    for worker in started:  # only our own children, by PID
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


@pytest_asyncio.fixture
async def records(bus: Bus, kit: type) -> Topology:
    topology = Topology(kit.small_topology())
    await topology.provision(bus)
    await bus.js.add_stream(name="ATTEMPTS", subjects=["attempts.>"])
    await bus.js.create_key_value(bucket="effects", history=5)
    return topology


async def _attempts(bus: Bus) -> list[Msg]:
    info = await bus.jsm.stream_info("ATTEMPTS")
    out = []
    for seq in range(1, info.state.last_seq + 1):
        raw = await bus.jsm.get_msg("ATTEMPTS", seq)
        out.append(raw)
    return out  # type: ignore[return-value]


async def _work_done(bus: Bus, durable: str = "embeddings-reconciler") -> bool:
    stream = await bus.jsm.stream_info(subjects.ARK_WORK)
    consumer = await bus.jsm.consumer_info(subjects.ARK_WORK, durable)
    return stream.state.messages == 0 and not consumer.num_ack_pending


async def test_killed_worker_message_is_completed_by_another_exactly_once(
    bus: Bus, records: Topology, spawn: Spawn, kit: type
) -> None:
    hung: asyncio.Queue[int] = asyncio.Queue()
    skipped: list[str] = []

    async def on_hung(msg: Msg) -> None:
        await hung.put(int(msg.data))

    async def on_skipped(msg: Msg) -> None:
        skipped.append(msg.subject.rsplit(".", 1)[-1])

    await bus.nc.subscribe("test.hung", cb=on_hung)
    await bus.nc.subscribe("test.skipped.>", cb=on_skipped)
    provider = TracerProvider()
    publisher = await Publisher.create(
        bus, telemetry=MessagingTelemetry.create(tracer_provider=provider)
    )

    doomed = await spawn("--hang-after-effect")
    with provider.get_tracer("test").start_as_current_span("submit") as root:
        await publisher.publish(
            subjects.work_embeddings(kit.tenant), kit.request(1), msg_id="job-1"
        )
    assert await asyncio.wait_for(hung.get(), 60) == doomed.pid
    await doomed.kill()  # mid-handler: effect done, ack never sent

    survivor = await spawn()
    await kit.eventually(lambda: _work_done(bus), within=60, what="message completed")
    stats = await survivor.terminate()
    await publisher.close()

    effects = await bus.key_value("effects")
    history = await effects.history("done.job-1")
    assert [entry.value for entry in history] == [str(doomed.pid).encode()]
    attempts = await _attempts(bus)
    assert [a.data for a in attempts] == [str(doomed.pid).encode(), str(survivor.pid).encode()]
    assert [a.headers["delivery"] for a in attempts] == ["1", "2"]  # type: ignore[index]
    # The trace started before publishing continued in both worker processes.
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert {a.headers["trace-id"] for a in attempts} == {trace_id}  # type: ignore[index]
    assert skipped == ["job-1"]
    assert stats["stats"] == {
        "acked": 1,
        "retried": 0,
        "dead_lettered": 0,
        "drained": 0,
        "turned_away": 0,
        "late_heartbeats": 0,
        "fenced": 0,
    }


async def test_sigterm_under_load_loses_nothing_and_handles_nothing_twice(
    bus: Bus, records: Topology, spawn: Spawn, kit: type
) -> None:
    total = 400
    done: set[str] = set()
    skipped: list[str] = []

    async def on_effect(msg: Msg) -> None:
        done.add(msg.subject.rsplit(".", 1)[-1])

    async def on_skipped(msg: Msg) -> None:
        skipped.append(msg.subject)

    await bus.nc.subscribe("$KV.effects.done.>", cb=on_effect)
    await bus.nc.subscribe("test.skipped.>", cb=on_skipped)
    options = ("--slots", "4", "--work-min", "0.01", "--work-max", "0.04", "--grace", "20")
    workers = [await spawn(*options) for _ in range(3)]

    publisher = await Publisher.create(bus)
    subject = subjects.work_embeddings(kit.tenant)

    async def produce() -> None:
        for index in range(total):
            await publisher.publish_nowait(subject, kit.request(index), msg_id=f"job-{index}")
        await publisher.flush(within=60)

    producing = asyncio.create_task(produce())
    await kit.eventually(lambda: len(done) >= total // 4, within=60, what="load running")
    # Two of three replicas are told to stop while work is in flight; a fresh one joins.
    drained = await asyncio.gather(workers[0].terminate(), workers[1].terminate())
    replacement = await spawn(*options)
    await producing
    await kit.eventually(lambda: len(done) == total, within=120, what="every job handled")
    await kit.eventually(lambda: _work_done(bus), within=60, what="stream drained")
    finals = [await workers[2].terminate(), await replacement.terminate()]
    await publisher.close()

    attempts = await _attempts(bus)
    assert len(done) == total  # nothing lost
    assert skipped == []  # nothing handled twice
    assert len(attempts) == total  # every handler ran exactly once
    assert len({a.subject for a in attempts}) == total
    acked = sum(int(r["stats"]["acked"]) for r in (*drained, *finals))  # type: ignore[index]
    assert acked == total
    for result in drained:
        assert result["stats"]["drained"] == 0  # type: ignore[index]
