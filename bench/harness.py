"""What the benches share: a process's CPU and memory read from ``/proc``, the machine line every
result starts with, the Model and Agent the benches query, and a query-reconciler subprocess.

The benches are scripts (``uv run python bench/<name>.py``); Python puts ``bench/`` first on the
import path of a script it runs, so they import this module as ``harness``. Kept here once so a
measurement means the same thing in every table of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import yaml

from ark_mesh.bus import BusConfig, ConnectionSettings, TopologyConfig, WorkerSettings
from ark_mesh.query_reconciler import ChunkStreamConfig, QueryReconcilerConfig
from ark_mesh.service import HealthConfig, ResourcesConfig
from ark_mesh.testing import ark_objects
from ark_mesh.testing.nats_server import free_port

__all__ = [
    "cpu_seconds",
    "machine_line",
    "manifests",
    "peak_rss_mib",
    "reconciler_process",
    "rss_mib",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (``/proc/<pid>/stat`` utime + stime)."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    """Resident memory now (``VmRSS``)."""
    return _status_kib(pid, "VmRSS:") / 1024


def peak_rss_mib(pid: int) -> float:
    """The largest resident memory the process has had (``VmHWM``)."""
    return _status_kib(pid, "VmHWM:") / 1024


def machine_line() -> str:
    """Date, host, cores, Python and the load average: what a result needs to be compared."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )


def manifests(base_url: str, tenant: str) -> list[dict[str, Any]]:
    """The ``default`` Model on ``base_url`` and the ``helper`` Agent, as the file source reads
    them (a reconciler with ``resources.source: manifests`` needs no Kubernetes)."""
    return [
        msgspec.to_builtins(ark_objects.model("default", tenant, base_url, api_key="bench-key")),
        msgspec.to_builtins(ark_objects.agent("helper", tenant, prompt="You are helpful.")),
    ]


@asynccontextmanager
async def reconciler_process(
    root: Path,
    nats_url: str,
    name: str,
    *,
    tenant: str,
    slots: int,
    topology: TopologyConfig | None = None,
    stream_model_calls: bool = False,
    kill_at_exit: bool = False,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A query-reconciler subprocess reading its resources from ``root/manifests``, ready
    (``/readyz``) when entered; stopped at exit with SIGTERM, or SIGKILL with ``kill_at_exit``
    (a bench that kills replicas on purpose does not wait for a drain)."""
    port = free_port()
    config = QueryReconcilerConfig(
        bus=BusConfig(
            connection=ConnectionSettings(servers=(nats_url,)),
            topology=topology or TopologyConfig(),
            worker=WorkerSettings(slots=slots, service="query-reconciler"),
        ),
        instance=name,
        resources=ResourcesConfig(
            source="manifests", manifests=str(root / "manifests"), default_namespace=tenant
        ),
        streaming=ChunkStreamConfig(stream_model_calls=stream_model_calls),
        health=HealthConfig(host="127.0.0.1", port=port),
    )
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(msgspec.to_builtins(config)))
    log_path = root / f"{name}.log"
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ark_mesh.query_reconciler",
        "--config",
        str(path),
        stdout=log,
        stderr=log,
        env={**os.environ, "ARK_LOG_FORMAT": "json", "ARK_LOG_LEVEL": "warning"},
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None:
                    raise RuntimeError(f"{name} exited: {log_path.read_text()[-3000:]}")
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            if kill_at_exit:
                process.kill()
            else:
                process.terminate()
            await process.wait()
        log.close()
