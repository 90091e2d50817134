"""The chart's NATS, run for real: the rendered nats.conf starts a nats-server, its probe paths
answer, and the rendered bus block provisions the whole topology on it.

Only the addresses (command-line flags, which override the file) and the store directory (the
pod's volume mount, replaced in the copy) differ from the pod, because the test must bind
127.0.0.1 on free ports and write under its own temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
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
async def nats_server(
    conf: Path, cluster: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, str]]:
    """nats-server with ``conf``, on free loopback ports; yields (client URL, monitor URL).

    ``cluster`` (this node's route URL first, then the others') replaces the addresses of the
    file's cluster block, which name the StatefulSet's pods."""
    port, monitor = free_port(), free_port()
    arguments = ["-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
    if cluster:
        arguments += ["--cluster", cluster[0], "--routes", ",".join(cluster[1:])]
    process = await asyncio.create_subprocess_exec(
        find_nats_server(),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=None if env is None else {**os.environ, **env},
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
    # The StatefulSet sets POD_NAME from the downward API; nats.conf names the server after it.
    # GOMEMLIMIT is Go's soft memory limit (nats.goMemLimit): the server runs with it here too.
    env = {e["name"]: e.get("value") for e in container["env"]}
    # With nats.auth (on unless the dev values turn it off) every user's password comes from
    # the Secret into ARK_NATS_PASSWORD_<n>, which nats.conf names; here, made-up ones.
    passwords = _passwords(container)
    assert set(env) == {"POD_NAME", "GOMEMLIMIT", *passwords}
    assert bool(passwords) == (preset is not None)
    assert env["GOMEMLIMIT"] == "400MiB"
    nodes = rendered.get("StatefulSet", rendered.name("nats"))["spec"]["replicas"]
    routes = [f"nats://127.0.0.1:{free_port()}" for _ in range(nodes)]
    assert ("cluster {" in text) == (nodes > 1)
    async with contextlib.AsyncExitStack() as stack:
        urls: list[str] = []
        monitors: list[str] = []
        starts = []
        for index in range(nodes):
            conf = tmp_path / f"nats-{index}.conf"
            conf.write_text(text.replace(store, f"store_dir: {tmp_path / f'store-{index}'}"))
            others = [route for other, route in enumerate(routes) if other != index]
            starts.append(
                stack.enter_async_context(
                    nats_server(
                        conf,
                        [routes[index], *others] if nodes > 1 else (),
                        env={
                            "POD_NAME": f"ark-mesh-nats-{index}",
                            "GOMEMLIMIT": env["GOMEMLIMIT"],
                            **{name: password for name, (_, password) in passwords.items()},
                        },
                    )
                )
            )
        # Together, as podManagementPolicy: Parallel starts them: a node is healthy only once
        # a quorum of the cluster is up.
        for url, monitor_url in await asyncio.gather(*starts):
            urls.append(url)
            monitors.append(monitor_url)
        await _check_node(rendered, container, preset, monitors[0], nodes)
        users = dict(passwords.values())
        await _provision(rendered, urls, nodes, tmp_path, users.get("ark-query-reconciler"))


async def _check_node(
    rendered: Any, container: dict[str, Any], preset: str | None, monitor_url: str, nodes: int
) -> None:
    """Node 0 answers the pod's probes, has the rendered limits and (clustered) sees them all."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{monitor_url}/varz") as response:
            varz = await response.json()
        for path in _probe_paths(container):
            async with http.get(f"{monitor_url}{path}") as response:
                assert response.status == 200, f"probe {path}: {await response.text()}"
        async with http.get(f"{monitor_url}/jsz") as response:
            meta = (await response.json()).get("meta_cluster")

    assert varz["server_name"] == "ark-mesh-nats-0"
    jetstream = varz["jetstream"]["config"]
    expected_file = 1536 if preset else 768  # values.yaml / values-dev.yaml, in MiB
    assert jetstream["max_storage"] == expected_file * 1024 * 1024
    assert jetstream["max_memory"] == 256 * 1024 * 1024
    if nodes > 1:
        assert varz["cluster"]["name"] == rendered.name("nats")
        assert meta["cluster_size"] == nodes
        assert meta["leader"].startswith("ark-mesh-nats-")


def _passwords(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{variable: (user, made-up password)}`` of the NATS users' password variables."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["key"], f"pw{index}x{os.getpid()}")
        for index, e in enumerate(container["env"])
        if e["name"].startswith("ARK_NATS_PASSWORD_")
    }


async def _provision(
    rendered: Any, urls: list[str], nodes: int, tmp_path: Path, password: str | None
) -> None:
    """The rendered bus block provisions the whole topology, replicated on every node, as the
    query-reconciler's NATS user when the release has users."""
    config_file = tmp_path / "query-reconciler.yaml"
    config_file.write_text(rendered.config("query-reconciler"))
    config = load_config(QueryReconcilerConfig, config_file, environ={})
    assert len(config.bus.connection.servers) == nodes
    connection = msgspec.structs.replace(config.bus.connection, servers=tuple(urls))
    if password is not None:
        assert connection.auth.user == "ark-query-reconciler"
        assert connection.auth.password is not None
        assert connection.auth.password.env == "ARK_NATS_PASSWORD"
        os.environ["ARK_NATS_PASSWORD"] = password
    else:
        assert connection.insecure
    try:
        bus = await Bus.connect(connection)
    finally:
        os.environ.pop("ARK_NATS_PASSWORD", None)
    try:
        report = await Topology(config.bus.topology).provision(bus)
        assert report.results, "nothing was provisioned"
        assert {r.action for r in report.results} == {"created"}
        again = await Topology(config.bus.topology).provision(bus)
        assert not again.changed, "provisioning the same topology twice changes nothing"
        info = await bus.jsm.stream_info("ARK_CHUNKS")
        assert info.config.num_replicas == nodes
        consumer = await bus.jsm.consumer_info("ARK_WORK", "query-reconciler")
        followers = consumer.cluster.replicas if consumer.cluster is not None else None
        assert len(followers or []) == nodes - 1
    finally:
        await bus.close()
