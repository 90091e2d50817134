"""Resident memory of every service process: what importing it costs, idle, and after queries.

Three figures per service (issue 14, "memory"):

* **import**: a fresh interpreter that imports the service's entry module
  (``ark_mesh.<service>.__main__``) and nothing else — what the code a service loads costs before
  it connects anywhere;
* **idle**: the service running in the whole local mesh (``LocalMesh``, preset ``scale-strict``,
  connected to NATS and the Kubernetes API emulator) a few seconds after it started;
* **after queries**: the same process after ``--queries`` broker-path queries (64 in flight, the
  20-word answer of ``bench/broker.py``), which loads whatever the first queries import.

    uv run python bench/idle_rss.py [--queries 500]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from broker import MeshClient
from harness import machine_line, rss_mib

from ark_mesh.devmesh import LocalMesh
from ark_mesh.telemetry import configure_logging

_IMPORT_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
print(json.dumps(kib / 1024))
"""


def import_rss_mib(module: str) -> float:
    """Resident memory of a fresh interpreter after importing ``module``."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, module],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rss: float = json.loads(out.stdout)
    return rss


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench-idle-rss", log_format="console", level="warning")
    print(f"Run: {machine_line()}.\n")
    words = " ".join(f"word{i}" for i in range(20))
    with tempfile.TemporaryDirectory(prefix="ark-bench-rss-") as directory:
        mesh = LocalMesh(
            preset="scale-strict",
            workdir=Path(directory) / "mesh",
            streaming=True,
            env={"ARK_LOG_FORMAT": "json"},
            overrides={"broker": {"limits": {"maxInFlightPerTenant": 1_000_000}}},
        )
        async with mesh:
            assert mesh.fake_llm is not None
            await mesh.fake_llm.control.add_rule({"reply": {"content": words, "chunk_words": 1}})
            await asyncio.sleep(args.settle)
            idle = {name: rss_mib(service.pid or 0) for name, service in mesh.services.items()}
            port = mesh.services["broker"].config["http"]["port"]
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                client = MeshClient(http, f"http://127.0.0.1:{port}", words)
                for start in range(0, args.queries, 64):
                    batch = min(64, args.queries - start)
                    await asyncio.gather(*(client.one() for _ in range(batch)))
            loaded = {name: rss_mib(service.pid or 0) for name, service in mesh.services.items()}
    print("| service | import MiB | idle MiB | after queries MiB |\n|---|---:|---:|---:|")
    for name in idle:
        module = f"ark_mesh.{name.replace('-', '_')}.__main__"
        print(f"| {name} | {import_rss_mib(module):.0f} | {idle[name]:.0f} | {loaded[name]:.0f} |")
    print(f"\n{args.queries} queries; bare interpreter: {import_rss_mib('json'):.0f} MiB.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the start")
    asyncio.run(main(parser.parse_args()))
