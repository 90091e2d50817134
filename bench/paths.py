"""Throughput and Kubernetes API writes per query for each resolution path.

Runs the whole mesh locally (every part a real process: nats-server, the K8s API emulator, the
fake model with zero latency, the services), creates N Query resources as fast as the API takes
them, and measures the time until every one of them is terminal. For each query it then reads
the emulator's counters: status writes (status subresource), metadata/spec writes (updates) and
generation bumps.

    uv run python bench/paths.py [--queries 200] [--paths simple,standalone] [--out FILE]

Paths:
  simple-1     Direct + in-controller, one reconcile worker (Ark's published 2.85 q/s setup)
  simple       Direct + in-controller, ten reconcile workers (Ark: about 12 q/s)
  standalone   Direct + standalone: controller -> JetStream -> query-reconciler -> status-sync

Everything runs on loopback; the run is bounded by --queries and --timeout and stops itself.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ark_mesh.contracts import Query
from ark_mesh.devmesh import LocalMesh, Preset
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing import ark_objects

ARK_BASELINE = (
    "Ark (one controller, mock LLM): 2.85 q/s with one reconcile worker, ~12 q/s with ten"
)


@dataclass(frozen=True)
class PathSpec:
    name: str
    preset: Preset
    controller: dict[str, Any]


PATHS = {
    "simple-1": PathSpec("simple-1", "simple", {"scheduler": {"maxConcurrentReconciles": 1}}),
    "simple": PathSpec("simple", "simple", {"scheduler": {"maxConcurrentReconciles": 10}}),
    "standalone": PathSpec("standalone", "scale-strict", {}),
}


@dataclass
class Result:
    path: str
    queries: int
    seconds: float
    done: int
    status_writes: list[int]
    metadata_writes: list[int]
    generation_bumps: int

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


async def run_path(spec: PathSpec, count: int, within: float, workdir: Path) -> Result:
    mesh = LocalMesh(
        preset=spec.preset, workdir=workdir / spec.name, overrides={"controller": spec.controller}
    )
    async with mesh:
        assert mesh.kube is not None
        names = [f"bench-{i:05d}" for i in range(count)]
        async with await mesh.client() as client:
            started = time.perf_counter()
            for name in names:
                await client.create(ark_objects.query(name, mesh.namespace, f"bench {name}"))
            pending = set(names)
            async with asyncio.timeout(within):
                while pending:
                    for query in await client.list(Query, mesh.namespace):
                        phase = query.status.phase if query.status else None
                        if phase in ("done", "error", "canceled"):
                            pending.discard(query.metadata.name)
                    if pending:
                        await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            done = sum(
                1
                for q in await client.list(Query, mesh.namespace)
                if q.status and q.status.phase == "done"
            )
        status_writes, metadata_writes, bumps = [], [], 0
        for name in names:
            activity = await mesh.kube.activity("queries", mesh.namespace, name)
            status_writes.append(activity.status_writes)
            metadata_writes.append(activity.updates)
            bumps += activity.generation_bumps
    return Result(spec.name, count, seconds, done, status_writes, metadata_writes, bumps)


def table(results: list[Result], count: int) -> str:
    lines = [
        f"Run: {time.strftime('%Y-%m-%d')}, {platform.machine()}, Python "
        f"{platform.python_version()}, {count} queries per path, zero-latency fake model.",
        "",
        "| path | queries/s | done | status writes / query (median, max) | "
        "metadata writes / query | generation bumps |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.path} | {r.rate:.1f} | {r.done}/{r.queries} | "
            f"{statistics.median(r.status_writes):.0f}, {max(r.status_writes)} | "
            f"{statistics.median(r.metadata_writes):.0f} | {r.generation_bumps} |"
        )
    lines += ["", f"Baseline: {ARK_BASELINE}."]
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-paths"))
    args = parser.parse_args(argv)
    configure_logging("bench-paths", log_format="console", level="warning")
    results = []
    for name in args.paths.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(await run_path(PATHS[name], args.queries, args.timeout, args.workdir))
    print(table(results, args.queries))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
