"""Checkpoint cost: what one step-log save in KV ``ark-runs`` adds to a run's step.

A durable run stores its :class:`~ark_mesh.contracts.approvals.RunLog` after every model turn
and tool call and waits for the server's acknowledgement before going on, so the latency of one
:meth:`ark_mesh.bus.RunLogStore.save` is added to every step. The log grows with the run (each
save writes the whole log), so the bench saves logs of growing length, with the revision check,
plain and sealed with AES-256-GCM, against one nats-server (file storage, loopback) it starts
itself. ``--concurrency`` runs that many runs side by side, as a replica with that many slots.

Usage: ``uv run python bench/checkpoints.py [--steps 40] [--runs 50] [--concurrency 8]``.
Prints a Markdown table of median and p95 save latency per log length.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid

from ark_mesh.bus import Bus, PayloadCipher, RunLogStore, Topology, TopologyConfig
from ark_mesh.contracts import encode
from ark_mesh.contracts.approvals import ModelStep, RunLog, RunStep, ToolStep
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing.nats_server import NatsServer

TENANT = "bench"
TEXT = "lorem ipsum dolor sit amet " * 20  # ~540 bytes per model turn and tool result


async def one_run(store: RunLogStore, steps: int, latencies: dict[int, list[float]]) -> None:
    """Save the log of a run of ``steps`` steps after each step, as the journal does."""
    query_id = str(uuid.uuid4())
    log = RunLog(query_id=query_id)
    revision = 0
    done: list[RunStep] = []
    for index in range(steps):
        step: RunStep
        if index % 2 == 0:
            step = ModelStep(speaker="agent", message={"role": "assistant", "content": TEXT})
        else:
            step = ToolStep(call_id=f"call-{index}", name="tool", text=TEXT)
        done.append(step)
        log = RunLog(query_id=query_id, steps=list(done), chunk_seq=index)
        started = time.perf_counter()
        revision = await store.save(TENANT, log, revision=revision)
        latencies[index + 1].append(time.perf_counter() - started)
    await store.delete(TENANT, query_id)


async def measure(url: str, args: argparse.Namespace, *, sealed: bool) -> dict[int, list[float]]:
    cipher = PayloadCipher({TENANT: {"bench-1": os.urandom(32)}}) if sealed else None
    bus = await Bus.connect(servers=(url,), name="bench", encryption=cipher)
    store = RunLogStore(bus)
    latencies: dict[int, list[float]] = {n: [] for n in range(1, args.steps + 1)}
    gate = asyncio.Semaphore(args.concurrency)

    async def run() -> None:
        async with gate:
            await one_run(store, args.steps, latencies)

    await asyncio.gather(*(run() for _ in range(args.runs)))
    await bus.close()
    return latencies


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="warning")
    with tempfile.TemporaryDirectory(prefix="ark-bench-") as directory:
        server = NatsServer(directory).start()
        try:
            admin = await Bus.connect(servers=(server.url,), name="bench-admin")
            await Topology(TopologyConfig()).provision(admin)
            await admin.close()
            plain = await measure(server.url, args, sealed=False)
            sealed = await measure(server.url, args, sealed=True)
        finally:
            server.stop()
    print(
        f"{args.runs} runs of {args.steps} steps, {args.concurrency} at once; "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| steps in the log | log size | plain median / p95 | sealed median / p95 |")
    print("|---|---|---|---|")
    for length in sorted({1, 2, 5, 10, 20, args.steps} & set(plain)):
        size = len(
            encode(
                RunLog(
                    query_id=str(uuid.uuid4()),
                    steps=[ToolStep(call_id="c", name="tool", text=TEXT)] * length,
                )
            )
        )
        print(
            f"| {length} | {size / 1024:.1f} KiB "
            f"| {statistics.median(plain[length]) * 1000:.2f} / {_ms(plain[length], 0.95):.2f} ms "
            f"| {statistics.median(sealed[length]) * 1000:.2f} / {_ms(sealed[length], 0.95):.2f} ms |"
        )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
