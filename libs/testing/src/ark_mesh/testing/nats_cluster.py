"""A real JetStream *cluster*: N nats-server processes on loopback, routed to each other.

One server proves the mesh's logic; a cluster proves its promises survive what a cluster does —
a node dying, a stream's leader moving, a follower catching up. Each node is a
:class:`~ark_mesh.testing.nats_server.NatsServer` (its own free client, monitor and route
ports, its own store directory, bound to 127.0.0.1) started with a small config file holding
its ``server_name`` and a ``cluster {}`` block that routes to every other node.

The nodes start together (JetStream in a cluster needs a quorum before any of them is healthy),
and :meth:`NatsCluster.start` returns only once every node agrees on a meta leader, so a client
connecting afterwards can create R3 streams at once. A (re)started node counts as up when
JetStream is enabled on it and it agrees on the meta leader; it may still be catching up its
stream replicas then, as a pod that just rejoined does. :meth:`kill` is SIGKILL, as a crashed pod
dies; :meth:`restart` brings the node back on the same ports and store, and it rejoins.

Which node leads a stream (or KV bucket — stream ``KV_<bucket>``) is asked of JetStream itself
(``$JS.API.STREAM.INFO``), whose answer names the leader by server name; :meth:`stream_leader`
maps that back to the node's index, so a chaos test can kill exactly the leader.

Only processes this object started are ever signalled (by PID, through ``NatsServer``).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import nats
import nats.errors
from nats.js.errors import Error as JetStreamError

from ark_mesh.testing.nats_server import (
    NatsServer,
    NatsServerError,
    NatsServerStartTimeoutError,
    find_nats_server,
    free_port,
)

__all__ = ["NatsCluster", "NatsClusterError"]

_LOOPBACK: Final = "127.0.0.1"


class NatsClusterError(NatsServerError):
    """The cluster did not form, or a question about it could not be answered in time."""


class NatsCluster:
    """``with NatsCluster(tmp_path, nodes=3) as cluster:`` — see the module docstring.

    ``cluster_name`` names the cluster (it shows in every server's INFO, which is how the bus
    knows it may ask for replicas). ``extra_args`` are passed to every node.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        nodes: int = 3,
        binary: str | None = None,
        cluster_name: str = "ark-mesh-test",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = Path(base_dir)
        self.binary = binary or find_nats_server()
        self.cluster_name = cluster_name
        self.ready_timeout = ready_timeout
        self.route_ports = [free_port() for _ in range(nodes)]
        self.names = [f"n{index}" for index in range(nodes)]
        self.nodes: list[NatsServer] = []
        for index in range(nodes):
            store = self.base_dir / self.names[index]
            config = store / "node.conf"
            self.nodes.append(
                NatsServer(
                    store,
                    binary=self.binary,
                    extra_args=("-c", str(config), *extra_args),
                    ready_timeout=ready_timeout,
                    # The full /healthz of a restarted node waits until every replicated stream
                    # and consumer on it is current again, which under load can take longer than
                    # the test; "ready" here is: JetStream up, and (below) the meta leader agreed.
                    health_path="/healthz?js-enabled-only=true",
                )
            )

    # -- addresses ------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (hand them all to a client: it fails over between them)."""
        return [node.url for node in self.nodes]

    @property
    def size(self) -> int:
        return len(self.nodes)

    def index_of(self, server_name: str) -> int:
        """The node index of a JetStream server name (``n0``, ``n1``, …)."""
        try:
            return self.names.index(server_name)
        except ValueError:
            raise NatsClusterError(
                f"{server_name!r} is not a node of this cluster ({self.names})"
            ) from None

    def node_config(self, index: int) -> str:
        """The config file text of node ``index`` (name and cluster block; ports come as flags)."""
        routes = ", ".join(
            f'"nats-route://{_LOOPBACK}:{port}"'
            for other, port in enumerate(self.route_ports)
            if other != index
        )
        return (
            f'server_name: "{self.names[index]}"\n'
            "cluster {\n"
            f'  name: "{self.cluster_name}"\n'
            f'  listen: "{_LOOPBACK}:{self.route_ports[index]}"\n'
            f"  routes: [{routes}]\n"
            "}\n"
        )

    # -- lifecycle (blocking) -------------------------------------------------------------------

    def start(self) -> Self:
        """Start every node at once and wait until they agree on a JetStream meta leader."""
        self._write_configs()
        try:
            with ThreadPoolExecutor(max_workers=self.size) as pool:
                for future in [pool.submit(node.start) for node in self.nodes]:
                    future.result()
            self.wait_formed()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop every node gracefully (in parallel: each may wait for the others' goodbyes)."""
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            list(pool.map(lambda node: node.stop(grace), self.nodes))

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its store and ports are kept for :meth:`restart`)."""
        self.nodes[index].kill()

    def restart(self, index: int) -> None:
        """Start node ``index`` again (after :meth:`kill` or a stop) and wait until it rejoined."""
        node = self.nodes[index]
        node.stop()
        node.start()
        self.wait_formed()

    def wait_formed(self, within: float | None = None) -> str:
        """Block until every *running* node reports the same meta leader; return its name."""
        deadline = time.monotonic() + (within if within is not None else self.ready_timeout)
        seen: list[str | None] = []
        while True:
            running = [node for node in self.nodes if node.running]
            seen = [self._meta_leader(node) for node in running]
            if running and seen[0] and all(name == seen[0] for name in seen):
                assert seen[0] is not None
                return seen[0]
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {name}:\n{node.log_tail(10)}"
                    for name, node in zip(self.names, self.nodes, strict=True)
                )
                raise NatsServerStartTimeoutError(
                    f"cluster {self.cluster_name} has no agreed meta leader (seen {seen}); "
                    f"logs:\n{tails}"
                )
            time.sleep(0.1)

    # -- lifecycle (non-blocking twins) ---------------------------------------------------------

    async def astart(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def astop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, grace)

    async def akill(self, index: int) -> None:
        await asyncio.to_thread(self.kill, index)

    async def arestart(self, index: int) -> None:
        await asyncio.to_thread(self.restart, index)

    # -- who leads what -------------------------------------------------------------------------

    async def stream_leader(self, stream: str, *, within: float = 30.0) -> int:
        """Index of the node that leads ``stream`` now, asked of JetStream (``STREAM.INFO``).

        Waits (up to ``within`` seconds) while the stream has no leader, e.g. during an
        election, and while the named leader is a node that is not running.
        """
        deadline = time.monotonic() + within
        last: str = "no answer"
        servers = [node.url for node in self.nodes if node.running]
        client = await nats.connect(
            servers=servers, connect_timeout=2, allow_reconnect=True, max_reconnect_attempts=-1
        )
        try:
            jsm = client.jsm(timeout=2.0)
            while True:
                try:
                    info = await jsm.stream_info(stream)
                    leader = info.cluster.leader if info.cluster is not None else None
                    if leader:
                        index = self.index_of(leader)
                        if self.nodes[index].running:
                            return index
                        last = f"leader {leader} is not running"
                    else:
                        last = "no leader"
                except (JetStreamError, nats.errors.Error, TimeoutError) as error:
                    last = f"{type(error).__name__}: {error}"
                if time.monotonic() > deadline:
                    raise NatsClusterError(f"no live leader for stream {stream}: {last}")
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def bucket_leader(self, bucket: str, *, within: float = 30.0) -> int:
        """Index of the node that leads KV bucket ``bucket`` (its stream ``KV_<bucket>``)."""
        return await self.stream_leader(f"KV_{bucket}", within=within)

    def jsz(self, index: int) -> dict[str, Any]:
        """Node ``index``'s ``/jsz`` monitor document."""
        with urllib.request.urlopen(f"{self.nodes[index].monitor_url}/jsz", timeout=2.0) as reply:
            document: dict[str, Any] = json.loads(reply.read())
            return document

    # -- internals ------------------------------------------------------------------------------

    def _write_configs(self) -> None:
        for index, node in enumerate(self.nodes):
            node.store_dir.mkdir(parents=True, exist_ok=True)
            (node.store_dir / "node.conf").write_text(self.node_config(index))

    def _meta_leader(self, node: NatsServer) -> str | None:
        try:
            with urllib.request.urlopen(f"{node.monitor_url}/jsz", timeout=1.0) as reply:
                document = json.loads(reply.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        meta = document.get("meta_cluster") or {}
        leader = meta.get("leader")
        return str(leader) if leader else None

    # -- context managers -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        states = ", ".join(
            f"{name}={'up' if node.running else 'down'}"
            for name, node in zip(self.names, self.nodes, strict=True)
        )
        return f"NatsCluster({self.cluster_name}: {states})"
