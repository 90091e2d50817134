"""nats-server memory over many queries: is it flat once retention holds (issue 12, acceptance 4)?

One nats-server (file storage, loopback, started here) with the mesh's topology as configured
(the project's defaults, or ``--config`` with a YAML ``TopologyConfig`` with the
(camelCase) keys of the chart's ``bus.topology``), the
fake model in this process (streamed answers of ``--words`` words, one chunk per word) and a
real query-reconciler subprocess with ``--slots`` slots. The bench plays the broker's part on
the bus: it publishes each query's work message (``ARK_WORK``), puts the query's read-model
entry in KV ``ark-queries`` when it is accepted and again when it ends, and waits for the final
chunk. So every query writes what it writes in broker mode: the work message and its ack,
``running`` and ``done`` on ``ARK_STATUS``, the events, the streamed chunks and the final chunk
on ``ARK_CHUNKS``, the step log saved and deleted in ``ark-runs`` and the read model. (The
broker's HTTP and SSE side costs no server memory beyond its reads, and would make 10k queries
take far longer on 2 cores; it is not run.)

``--queries`` is a list of checkpoints (default ``1000,10000``): at each the bench records
nats-server's resident memory (``VmRSS`` from ``/proc/<pid>/status``) right away and after
``--settle`` idle seconds, plus what the streams hold (``/jsz``).

Usage: ``uv run python bench/nats_memory.py [--queries 1000,10000] [--in-flight 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import yaml
from harness import manifests, reconciler_process, rss_mib

from ark_mesh.bus import (
    Bus,
    Publisher,
    Topology,
    TopologyConfig,
)
from ark_mesh.contracts import Chunk, QueryRequest, QuerySpec, QueryTarget, decoder_for, subjects
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer, free_port

TENANT = "bench"
_chunk = decoder_for(Chunk)


def _topology(path: str | None) -> TopologyConfig:
    if path is None:
        return TopologyConfig()
    return msgspec.convert(yaml.safe_load(Path(path).read_text()), TopologyConfig)


def _save(path: str | None, checkpoint: int, text: str) -> None:
    if path is not None:
        Path(path % checkpoint).write_text(text)


async def live_heap(profile_port: int) -> tuple[float, str]:
    """nats-server's live Go heap after a forced GC (``/debug/pprof/heap?gc=1``): HeapAlloc in
    MiB, and the profile. Unlike RSS it does not wait for the runtime to hand memory back."""
    url = f"http://127.0.0.1:{profile_port}/debug/pprof/heap?gc=1&debug=1"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    stats: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# ") and " = " in line:
            name, _, value = line[2:].partition(" = ")
            stats[name] = value
    return int(stats["HeapAlloc"]) / 2**20, text


async def stream_state(server: NatsServer) -> dict[str, tuple[int, int, int]]:
    """Per stream: messages, bytes, subjects (``/jsz``)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.monitor_url}/jsz?streams=true") as response,
    ):
        data = await response.json()
    found: dict[str, tuple[int, int, int]] = {}
    for account in data.get("account_details", []):
        for stream in account.get("stream_detail", []):
            state = stream["state"]
            found[stream["name"]] = (
                state["messages"],
                state["bytes"],
                state.get("num_subjects", 0),
            )
    return found


class Runner:
    """Submits queries as the broker does and waits for their final chunks."""

    def __init__(self, bus: Bus, publisher: Publisher, in_flight: int) -> None:
        self.bus = bus
        self.publisher = publisher
        self.gate = asyncio.Semaphore(in_flight)
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.done = 0

    async def start(self) -> None:
        async def on_chunk(msg: Any) -> None:
            chunk = _chunk(msg.data)
            if chunk.is_final:
                future = self.waiting.pop(chunk.ark.query, None)
                if future is not None and not future.done():
                    future.set_result(None)

        await self.bus.nc.subscribe(f"ark.{TENANT}.query.*.chunk", cb=on_chunk)
        self.kv = await self.bus.js.key_value(subjects.QUERIES_BUCKET)

    async def one(self, index: int) -> None:
        async with self.gate:
            request = QueryRequest(
                query_id=str(uuid.uuid4()),
                name=f"q-{index}",
                namespace=TENANT,
                tenant=TENANT,
                spec=QuerySpec(
                    input=f"question {index}", target=QueryTarget(type="agent", name="helper")
                ),
                submitted_at=datetime.now(UTC).isoformat(),
            )
            finished = asyncio.get_running_loop().create_future()
            self.waiting[request.query_id] = finished
            key = f"{TENANT}.{request.query_id}"
            await self.kv.put(key, b'{"phase":"pending","name":"%s"}' % request.name.encode())
            await self.publisher.publish(
                subjects.work_query(TENANT), request, msg_id=request.msg_id
            )
            async with asyncio.timeout(120):
                await finished
            await self.kv.put(key, b'{"phase":"done","name":"%s"}' % request.name.encode())
            self.done += 1

    async def run(self, start: int, stop: int) -> None:
        await asyncio.gather(*(self.one(index) for index in range(start, stop)))


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="warning")
    checkpoints = [int(value) for value in args.queries.split(",")]
    topology = _topology(args.config)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs")
    print(f"# load before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="ark-bench-") as directory:
        root = Path(directory)
        (root / "nats").mkdir()
        (root / "manifests").mkdir()
        profile_port = free_port()
        if args.gomemlimit:
            # Inherited by nats-server: Go's soft memory limit (the GC and the scavenger work
            # harder near it), what a container memory limit should come with.
            os.environ["GOMEMLIMIT"] = args.gomemlimit
        server = NatsServer(root / "nats", extra_args=("--profile", str(profile_port))).start()
        fake = FakeModelServer()
        await fake.start()
        fake.add_rule({"reply": {"content": " ".join(["token"] * args.words)}})
        (root / "manifests" / "resources.yaml").write_text(
            yaml.safe_dump_all(manifests(fake.base_url, TENANT))
        )
        try:
            assert server.pid is not None
            pid = server.pid
            bus = await Bus.connect(servers=(server.url,), name="bench-memory")
            await Topology(topology).provision(bus)
            publisher = await Publisher.create(bus)
            print(
                f"# nats-server {server.binary}, GOMEMLIMIT={args.gomemlimit or 'unset'}; "
                f"RSS at start {rss_mib(pid):.1f} MiB"
            )
            async with reconciler_process(
                root,
                server.url,
                "bench-reconciler",
                tenant=TENANT,
                slots=args.slots,
                topology=topology,
                stream_model_calls=True,
            ):
                runner = Runner(bus, publisher, args.in_flight)
                await runner.start()
                done = 0
                print(
                    "| queries | s | RSS now MiB | RSS after settle MiB | live heap MiB | "
                    "stream: msgs / MiB / subjects |"
                )
                print("|---:|---:|---:|---:|---:|---|")
                began = time.monotonic()
                for checkpoint in checkpoints:
                    await runner.run(done, checkpoint)
                    done = checkpoint
                    elapsed = time.monotonic() - began
                    now = rss_mib(pid)
                    await asyncio.sleep(args.settle)
                    settled = rss_mib(pid)
                    heap, profile = await live_heap(profile_port)
                    _save(args.heap_dump, checkpoint, profile)
                    state = await stream_state(server)
                    held = ", ".join(
                        f"{name} {m} / {b / 2**20:.1f} / {s}"
                        for name, (m, b, s) in sorted(state.items())
                        if m
                    )
                    print(
                        f"| {done} | {elapsed:.0f} | {now:.1f} | {settled:.1f} | {heap:.1f} "
                        f"| {held} |"
                    )
            await publisher.close()
            await bus.close()
        finally:
            await fake.stop()
            server.stop()
    print(f"# load after: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", default="1000,10000", help="checkpoints, comma-separated")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--words", type=int, default=20, help="streamed chunks per answer")
    parser.add_argument("--settle", type=float, default=15.0, help="idle seconds before RSS")
    parser.add_argument("--gomemlimit", help="GOMEMLIMIT for nats-server, e.g. 64MiB")
    parser.add_argument("--heap-dump", help="save each heap profile here (%%d: the checkpoint)")
    parser.add_argument(
        "--config", help="YAML TopologyConfig (the chart's camelCase keys) instead of defaults"
    )
    asyncio.run(main(parser.parse_args()))
