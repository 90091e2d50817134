"""The chart's NATS, run for real: the rendered nats.conf starts a nats-server, its probe paths
answer, and the rendered bus block provisions the whole topology on it.

Only the addresses (command-line flags, which override the file) and the store directory (the
pod's volume mount, replaced in the copy) differ from the pod, because the test must bind
127.0.0.1 on free ports and write under its own temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from ark_mesh.bus import Bus, Topology
from ark_mesh.query_reconciler.config import QueryReconcilerConfig
from ark_mesh.service import load_config
from ark_mesh.testing.nats_server import find_nats_server, free_port

from .conftest import REPO, Chart

DEV_VALUES = REPO / "tilt" / "values-dev.yaml"


@contextlib.asynccontextmanager
async def nats_server(conf: Path) -> AsyncIterator[tuple[str, str]]:
    """nats-server with ``conf``, on free loopback ports; yields (client URL, monitor URL)."""
    port, monitor = free_port(), free_port()
    arguments = ["-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
    process = await asyncio.create_subprocess_exec(
        find_nats_server(),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = asyncio.create_task(process.communicate())
    monitor_url = f"http://127.0.0.1:{monitor}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while not output.done():
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{monitor_url}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.05)
        if output.done():
            stdout, _ = output.result()
            pytest.fail(f"nats-server exited with {process.returncode}:\n{stdout.decode()}")
        yield f"nats://127.0.0.1:{port}", monitor_url
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(15):
                await output
        except TimeoutError:
            process.kill()
            await output


def _probe_paths(container: dict[str, Any]) -> set[str]:
    return {
        container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }


@pytest.mark.parametrize(
    ("preset", "files"), [("scale-flexible", ()), ("scale-strict", ()), (None, (DEV_VALUES,))]
)
async def test_rendered_nats_runs_and_takes_the_rendered_topology(
    chart: Chart,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    preset: str | None,
    files: tuple[Path, ...],
) -> None:
    rendered = chart.render(preset, files=files)
    container = rendered.container("nats")
    assert container["args"] == ["--config", "/etc/nats/nats.conf"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    text = rendered.get("ConfigMap", rendered.name("nats"))["data"]["nats.conf"]
    store = f"store_dir: {mounts['data']}"
    assert text.count(store) == 1, "JetStream must store on the persistent volume"
    conf = tmp_path / "nats.conf"
    conf.write_text(text.replace(store, f"store_dir: {tmp_path / 'store'}"))
    # The StatefulSet sets POD_NAME from the downward API; nats.conf names the server after it.
    # GOMEMLIMIT is Go's soft memory limit (nats.goMemLimit): the server runs with it here too.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) == {"POD_NAME", "GOMEMLIMIT"}
    assert env["GOMEMLIMIT"] == "400MiB"
    monkeypatch.setenv("POD_NAME", "ark-mesh-nats-0")
    monkeypatch.setenv("GOMEMLIMIT", env["GOMEMLIMIT"])

    async with nats_server(conf) as (url, monitor_url):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{monitor_url}/varz") as response:
                varz = await response.json()
            for path in _probe_paths(container):
                async with http.get(f"{monitor_url}{path}") as response:
                    assert response.status == 200, f"probe {path}: {await response.text()}"

        assert varz["server_name"] == "ark-mesh-nats-0"
        jetstream = varz["jetstream"]["config"]
        expected_file = 1536 if preset else 768  # values.yaml / values-dev.yaml, in MiB
        assert jetstream["max_storage"] == expected_file * 1024 * 1024
        assert jetstream["max_memory"] == 256 * 1024 * 1024

        config_file = tmp_path / "query-reconciler.yaml"
        config_file.write_text(rendered.config("query-reconciler"))
        config = load_config(QueryReconcilerConfig, config_file, environ={})
        connection = msgspec.structs.replace(config.bus.connection, servers=(url,))
        bus = await Bus.connect(connection)
        try:
            report = await Topology(config.bus.topology).provision(bus)
            assert report.results, "nothing was provisioned"
            assert {r.action for r in report.results} == {"created"}
            again = await Topology(config.bus.topology).provision(bus)
            assert not again.changed, "provisioning the same topology twice changes nothing"
        finally:
            await bus.close()
