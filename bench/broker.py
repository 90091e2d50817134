"""Cost per query on the broker path, against two floors in the same run (issue 14).

Three sides answer the same query — a 20-word answer streamed one word per chunk by the fake
model (zero latency, its own process) — and are measured alike, in interleaved rounds:

* **ark-mesh**: the whole mesh as processes (``LocalMesh``, preset ``scale-strict``: nats-server,
  the Kubernetes API emulator, the fake model, every service). A query is ``POST /v1/queries``
  (``reconciliation: broker``) and then ``GET /v1/queries/{id}/stream`` read to ``[DONE]``, as
  a client of the broker does it. The broker's admission limit is raised out of the way (what
  is measured is the cost of a query, not the 429s).
* **raw-nats**: raw nats-py moving the same messages: the bench publishes a work message of the
  mesh's work message's size to a work-queue stream; a responder process (this script with
  ``bench/floor_responder.py``) takes it from a durable consumer and publishes as many chunk messages, of
  the same sizes, as the mesh stores on the query's chunk subject, to a chunk stream (file
  storage, as the mesh's); the bench reads them with one core subscription. No model call.
* **model-floor**: the same, plus the model: the responder streams the same answer from the
  same fake model over HTTP with a plain aiohttp client and publishes a chunk per event it
  reads (the rest of the chunks after the stream ended).

The message sizes are taken from one query through the mesh before the rounds (calibration).
Each round runs every side (in a rotating order): ``--queries`` queries with ``--in-flight`` of
them open at once (queries/s, CPU-ms per query of every process from ``/proc/<pid>/stat``,
messages into nats-server per query from ``/varz``), then ``--latency-queries`` one at a time
(submit → first content chunk, p50 and p99). Resident memory of each process is read after each
round (``VmRSS``) and at the end (peak, ``VmHWM``). Medians of the rounds are reported.

    uv run python bench/broker.py [--queries 1000] [--latency-queries 200] [--rounds 3]
    make bench BENCH_ARGS="--queries 2000 --rounds 5"

It starts and stops everything itself and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from floor_responder import FLOOR_CHUNK_STREAM, FLOOR_CHUNKS, FLOOR_WORK, FLOOR_WORK_STREAM
from harness import cpu_seconds, machine_line, peak_rss_mib, rss_mib
from nats.aio.msg import Msg
from nats.js import api

from ark_mesh.contracts import subjects
from ark_mesh.devmesh import LocalMesh
from ark_mesh.telemetry import configure_logging

TENANT = "default"  # LocalMesh's namespace; auth "none" maps every caller to it


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------ the shape


@dataclass(frozen=True)
class Shape:
    """What one query moves on the mesh: its work message's size, its chunk messages' sizes
    in order, and the position of the first one that carries content."""

    work_bytes: int
    chunk_bytes: tuple[int, ...]
    first_content: int


def _has_content(data: bytes) -> bool:
    try:
        chunk = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    choices = chunk.get("choices") or [] if isinstance(chunk, dict) else []
    return any((c.get("delta") or {}).get("content") for c in choices)


# ---------------------------------------------------------------------------------------- sides


@dataclass
class Side:
    """One way of answering a query: ``one()`` runs a query and returns the seconds from its
    submission to its first content chunk; ``pids`` are the processes it costs."""

    name: str
    one: Callable[[], Awaitable[float]]
    pids: dict[str, int]
    counted: tuple[str, ...]
    """The processes whose CPU is the side's own (not the model's, not the bench client's)."""


class MeshClient:
    """A client of the broker: POST the query, read its stream to ``[DONE]``."""

    def __init__(self, http: aiohttp.ClientSession, base: str, words: str) -> None:
        self.http = http
        self.base = base
        self.body = {
            "input": words,
            "target": {"type": "agent", "name": "assistant"},
            "reconciliation": "broker",
        }
        self.refused = 0

    async def one(self) -> float:
        started = time.perf_counter()
        while True:
            async with self.http.post(f"{self.base}/v1/queries", json=self.body) as response:
                if response.status == 429:
                    self.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                if response.status != 202:
                    raise RuntimeError(f"POST answered {response.status}: {await response.text()}")
                query_id = (await response.json())["id"]
                break
        first: float | None = None
        async with self.http.get(f"{self.base}/v1/queries/{query_id}/stream") as response:
            if response.status != 200:
                raise RuntimeError(f"stream answered {response.status}: {await response.text()}")
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                if line.startswith(b"data: [DONE]"):
                    if first is None:
                        raise RuntimeError(f"query {query_id} streamed no content")
                    return first - started
                if first is None and _has_content(line[6:]):
                    first = time.perf_counter()
        raise RuntimeError(f"query {query_id}: the stream ended without [DONE]")


class FloorClient:
    """Submits work messages to the floor's responder and waits for its chunks, on one core
    subscription for every query (the cheapest way for raw nats-py to read them)."""

    def __init__(self, nc: Any, shape: Shape, model: bool) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.shape = shape
        self.model = model
        self.waiting: dict[str, _Waiter] = {}

    @staticmethod
    async def subscribe(nc: Any, clients: list[FloorClient]) -> None:
        waiting: dict[str, _Waiter] = {}
        for client in clients:
            client.waiting = waiting

        async def on_chunk(msg: Msg) -> None:
            query_id = msg.subject.split(".")[2]
            waiter = waiting.get(query_id)
            if waiter is not None:
                waiter.arrived(time.perf_counter())

        await nc.subscribe(FLOOR_CHUNKS, cb=on_chunk)

    async def one(self) -> float:
        query_id = uuid.uuid4().hex
        head = json.dumps({"id": query_id, "model": self.model}).encode()
        payload = head + b" " * max(0, self.shape.work_bytes - len(head))
        waiter = _Waiter(len(self.shape.chunk_bytes), self.shape.first_content)
        self.waiting[query_id] = waiter
        started = time.perf_counter()
        try:
            await self.js.publish(FLOOR_WORK, payload)
            async with asyncio.timeout(60):
                await waiter.done
        finally:
            del self.waiting[query_id]
        assert waiter.first is not None
        return waiter.first - started


class _Waiter:
    def __init__(self, expected: int, first_content: int) -> None:
        self.expected = expected
        self.first_content = first_content
        self.count = 0
        self.first: float | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def arrived(self, at: float) -> None:
        if self.count == self.first_content:
            self.first = at
        self.count += 1
        if self.count == self.expected and not self.done.done():
            self.done.set_result(None)


# ----------------------------------------------------------------------------------- measuring


@dataclass
class Round:
    seconds: float
    queries: int
    cpu_ms: dict[str, float]
    """CPU-ms per query of each process."""
    in_msgs: float
    """Messages into nats-server per query."""
    first_chunk: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.queries / self.seconds


async def _in_msgs(http: aiohttp.ClientSession, monitor_url: str) -> int:
    async with http.get(f"{monitor_url}/varz") as response:
        return int((await response.json())["in_msgs"])


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    own = {"bench client": time.process_time()}
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, **own}


async def measure(
    side: Side, queries: int, in_flight: int, latency_queries: int, monitor: str
) -> Round:
    async with aiohttp.ClientSession() as http:
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < queries:
                next_index += 1
                await side.one()

        messages = await _in_msgs(http, monitor)
        cpu = _cpu(side.pids)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        seconds = time.perf_counter() - started
        after = _cpu(side.pids)
        messages = await _in_msgs(http, monitor) - messages
    result = Round(
        seconds=seconds,
        queries=queries,
        cpu_ms={name: (after[name] - cpu[name]) * 1000 / queries for name in cpu},
        in_msgs=messages / queries,
    )
    for _ in range(latency_queries):
        result.first_chunk.append(await side.one())
    return result


def _kind(subject: str, reply: str, query_id: str) -> str:
    """A subject with what differs per query or per consumer folded, to count messages by kind;
    a message JetStream delivers to a consumer shows its stored subject and a ``$JS.ACK``
    reply subject."""
    if reply.startswith("$JS.ACK."):
        stream = reply.split(".")[2]
        return f"{_kind(subject, '', query_id)} delivered from {stream}"
    parts = subject.replace(query_id, "<id>").split(".")
    if parts[0].startswith("_INBOX"):
        return "_INBOX.… (replies: publish acks, KV and API answers, consumer deliveries)"
    if parts[:2] == ["$JS", "ACK"]:
        return f"$JS.ACK.{parts[2]}.… (acks of consumed messages)"
    if parts[:2] == ["$JS", "API"]:
        return ".".join(parts[: 5 if parts[2] in ("CONSUMER", "STREAM") else 4]) + ".…"
    if parts[0] == "$KV":
        return ".".join(parts[:2]) + ".…"
    return ".".join(parts)


async def calibrate(mesh: LocalMesh, client: MeshClient) -> tuple[Shape, dict[str, int]]:
    """One query through the mesh, every message on NATS watched: the query's work message and
    chunk messages (their sizes are what the floors move), and the count of every kind of
    message the query caused (a subscriber on ``>``; the mesh's idle traffic included)."""
    nc = await nats.connect(mesh.nats_urls, name="bench-calibration")
    seen: list[tuple[str, str, bytes]] = []

    async def record(msg: Msg) -> None:
        seen.append((msg.subject, msg.reply, msg.data))

    await nc.subscribe(">", cb=record)
    await nc.flush()
    await client.one()
    await asyncio.sleep(0.5)  # the last status and chunk acks
    await nc.close()
    published = [(s, data) for s, reply, data in seen if not reply.startswith("$JS.ACK.")]
    work = [data for subject, data in published if subject == subjects.work_query(TENANT)]
    chunk_subjects = {
        s for s, _ in published if s.startswith(f"{subjects.ROOT}.") and s.endswith(".chunk")
    }
    if len(work) != 1 or len(chunk_subjects) != 1:
        raise RuntimeError(f"calibration saw {len(work)} work messages, chunks on {chunk_subjects}")
    (chunk_subject,) = chunk_subjects
    query_id = chunk_subject.split(".")[3]
    chunks = [data for subject, data in published if subject == chunk_subject]
    first = next(index for index, data in enumerate(chunks) if _has_content(data))
    kinds: dict[str, int] = {}
    for subject, reply, _ in seen:
        kind = _kind(subject, reply, query_id)
        kinds[kind] = kinds.get(kind, 0) + 1
    return Shape(len(work[0]), tuple(len(data) for data in chunks), first), kinds


async def _floor_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url, name="bench-floor-setup")
    js = nc.jetstream()
    await js.add_stream(
        name=FLOOR_WORK_STREAM,
        subjects=[FLOOR_WORK],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
    )
    await js.add_stream(
        name=FLOOR_CHUNK_STREAM,
        subjects=[FLOOR_CHUNKS],
        storage=api.StorageType.FILE,
        max_bytes=256 * 2**20,
    )
    await nc.close()


async def _start_responder(
    root: Path, nats_url: str, model_url: str, shape: Shape
) -> asyncio.subprocess.Process:
    shape_path = root / "shape.json"
    shape_path.write_text(json.dumps(msgspec.to_builtins(shape)))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("floor_responder.py")),
        nats_url,
        model_url,
        str(shape_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        line = await process.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"the floor responder did not start: {line!r}")
    return process


# ----------------------------------------------------------------------------------- reporting

SIDES = ("raw-nats", "model-floor", "ark-mesh")


def report(
    args: argparse.Namespace,
    shape: Shape,
    rounds: dict[str, list[Round]],
    sides: dict[str, Side],
    rss: dict[str, list[float]],
    peak: dict[str, float],
    refused: int,
    before: str,
) -> str:
    def median(side: str, value: Callable[[Round], float]) -> float:
        return statistics.median(value(r) for r in rounds[side])

    def total(side: str, r: Round) -> float:
        return sum(r.cpu_ms[name] for name in sides[side].counted)

    rate = {s: median(s, lambda r: r.rate) for s in SIDES}
    p50 = {s: median(s, lambda r: _percentile(r.first_chunk, 0.5) * 1000) for s in SIDES}
    p99 = {s: median(s, lambda r: _percentile(r.first_chunk, 0.99) * 1000) for s in SIDES}
    cpu = {s: statistics.median(total(s, r) for r in rounds[s]) for s in SIDES}
    msgs = {s: median(s, lambda r: r.in_msgs) for s in SIDES}
    mesh = "ark-mesh"
    lines = [
        f"Run: {before}.",
        f"{args.rounds} interleaved rounds; per side and round {args.queries} queries with "
        f"{args.in_flight} in flight, then {args.latency_queries} one at a time. A query: "
        f"{len(shape.chunk_bytes)} chunk messages ({sum(shape.chunk_bytes)} bytes) and a work "
        f"message of {shape.work_bytes} bytes; {args.words}-word answer, one word per chunk.",
        "",
        "| metric | raw-nats floor | model-inclusive floor | ark-mesh | mesh ÷ raw | "
        "mesh ÷ model floor |",
        "|---|---:|---:|---:|---:|---:|",
        f"| queries/s, {args.in_flight} in flight | {rate['raw-nats']:.0f} | "
        f"{rate['model-floor']:.0f} | {rate[mesh]:.1f} | {rate[mesh] / rate['raw-nats']:.3f} | "
        f"{rate[mesh] / rate['model-floor']:.3f} |",
        f"| submit → first content chunk p50, 1 in flight | {p50['raw-nats']:.2f} ms | "
        f"{p50['model-floor']:.2f} ms | {p50[mesh]:.2f} ms | {p50[mesh] / p50['raw-nats']:.1f}x | "
        f"{p50[mesh] / p50['model-floor']:.1f}x |",
        f"| submit → first content chunk p99 | {p99['raw-nats']:.2f} ms | "
        f"{p99['model-floor']:.2f} ms | {p99[mesh]:.2f} ms | {p99[mesh] / p99['raw-nats']:.1f}x | "
        f"{p99[mesh] / p99['model-floor']:.1f}x |",
        f"| CPU-ms per query (model and bench client not counted) | {cpu['raw-nats']:.2f} | "
        f"{cpu['model-floor']:.2f} | {cpu[mesh]:.2f} | {cpu[mesh] / cpu['raw-nats']:.1f}x | "
        f"{cpu[mesh] / cpu['model-floor']:.1f}x |",
        f"| messages into nats-server per query | {msgs['raw-nats']:.1f} | "
        f"{msgs['model-floor']:.1f} | {msgs[mesh]:.1f} | | |",
        "",
        "Per round (q/s): "
        + "; ".join(f"{s} " + ", ".join(f"{r.rate:.1f}" for r in rounds[s]) for s in SIDES)
        + (f". The broker answered 429 {refused} times (retried)." if refused else "."),
        "",
        "CPU-ms per query by process (64-in-flight phase, median of rounds) and resident memory"
        " (median after the rounds / peak):",
        "",
        "| process | raw-nats | model floor | ark-mesh | RSS MiB | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = list(dict.fromkeys(n for s in SIDES for n in rounds[s][0].cpu_ms))
    for name in names:
        cells = []
        for s in SIDES:
            if name in rounds[s][0].cpu_ms:
                cells.append(f"{statistics.median(r.cpu_ms[name] for r in rounds[s]):.2f}")
            else:
                cells.append("")
        memory = f"{statistics.median(rss[name]):.0f} | {peak[name]:.0f}" if name in rss else " | "
        lines.append(f"| {name} | {' | '.join(cells)} | {memory} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench-broker", log_format="console", level="warning")
    before = machine_line()
    words = " ".join(f"word{i}" for i in range(args.words))
    with tempfile.TemporaryDirectory(prefix="ark-bench-broker-") as directory:
        root = Path(directory)
        mesh = LocalMesh(
            preset="scale-strict",
            workdir=root / "mesh",
            streaming=True,
            env={"ARK_LOG_FORMAT": "json"},
            overrides={"broker": {"limits": {"maxInFlightPerTenant": 1_000_000}}},
        )
        _progress("starting the mesh ...")
        async with mesh:
            assert mesh.fake_llm is not None
            assert mesh.nats is not None
            assert mesh.kube is not None
            await mesh.fake_llm.control.add_rule({"reply": {"content": words, "chunk_words": 1}})
            port = mesh.services["broker"].config["http"]["port"]
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                client = MeshClient(http, f"http://127.0.0.1:{port}", words)
                # Warm first, so the calibration query shows no one-time lookups (bucket and
                # stream handles each process caches on first use).
                await asyncio.gather(*(client.one() for _ in range(8)))
                shape, kinds = await calibrate(mesh, client)
                _progress(f"calibrated: {shape}")
                await _floor_streams(mesh.nats.url)
                responder_process = await _start_responder(
                    root, mesh.nats.url, mesh.fake_llm.base_url, shape
                )
                nc = await nats.connect(mesh.nats.url, name="bench-floor")
                try:
                    raw = FloorClient(nc, shape, model=False)
                    modelled = FloorClient(nc, shape, model=True)
                    await FloorClient.subscribe(nc, [raw, modelled])
                    mesh_pids = {
                        "nats-server": mesh.nats.pid or 0,
                        "kubernetes-api": mesh.kube.pid,
                        **{name: s.pid or 0 for name, s in mesh.services.items()},
                        "fake-model": mesh.fake_llm.pid,
                    }
                    floor_pids = {
                        "nats-server": mesh.nats.pid or 0,
                        "responder": responder_process.pid,
                        "fake-model": mesh.fake_llm.pid,
                    }
                    mesh_own = tuple(n for n in mesh_pids if n != "fake-model")
                    sides = {
                        "raw-nats": Side(
                            "raw-nats", raw.one, floor_pids, ("nats-server", "responder")
                        ),
                        "model-floor": Side(
                            "model-floor", modelled.one, floor_pids, ("nats-server", "responder")
                        ),
                        "ark-mesh": Side("ark-mesh", client.one, mesh_pids, mesh_own),
                    }
                    _progress("warming up ...")
                    for side in sides.values():
                        await asyncio.gather(*(side.one() for _ in range(args.in_flight)))
                    client.refused = 0
                    rounds: dict[str, list[Round]] = {name: [] for name in sides}
                    rss: dict[str, list[float]] = {}
                    order = list(SIDES)
                    for number in range(args.rounds):
                        for name in order:
                            _progress(f"round {number + 1}: {name} ...")
                            rounds[name].append(
                                await measure(
                                    sides[name],
                                    args.queries,
                                    args.in_flight,
                                    args.latency_queries,
                                    mesh.nats.monitor_url,
                                )
                            )
                        order = order[1:] + order[:1]
                        for name, pid in {**mesh_pids, "responder": responder_process.pid}.items():
                            rss.setdefault(name, []).append(rss_mib(pid))
                    peak = {
                        name: peak_rss_mib(pid)
                        for name, pid in {**mesh_pids, "responder": responder_process.pid}.items()
                    }
                    refused = client.refused
                finally:
                    await nc.close()
                    assert responder_process.stdin is not None
                    responder_process.stdin.close()
                    try:
                        async with asyncio.timeout(10):
                            await responder_process.wait()
                    except TimeoutError:
                        responder_process.kill()
                        await responder_process.wait()
    print(report(args, shape, rounds, sides, rss, peak, refused, before))
    print(f"\nMessages seen on NATS during the calibration query ({sum(kinds.values())}):\n")
    print("| subject | messages |\n|---|---:|")
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"| `{kind}` | {count} |")
    print(f"\nLoad average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=1000, help="per side and round")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-queries", type=int, default=200, help="one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--words", type=int, default=20, help="chunks of the answer")
    asyncio.run(main(parser.parse_args()))
