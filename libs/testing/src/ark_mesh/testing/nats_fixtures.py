"""pytest fixtures for the nats test infrastructure.

Every fixture here is function-scoped: each test gets a fresh ``nats-server`` with its own
store directory and free ports, so a test that kills or restarts the broker (or fills a stream)
cannot disturb another. Starting one takes a few tens of milliseconds.

* ``nats_server`` — a running :class:`~ark_mesh.testing.nats_server.NatsServer`; tests may
  ``stop()``/``start()``/``restart()``/``kill()`` it (same port and store across restarts).
* ``nats_url`` — its client URL, e.g. to hand to a service started as a subprocess.
* ``nats_client`` — a connected nats-py client (closed after the test).
* ``nats_server_factory`` — start more servers (e.g. with extra arguments); all are stopped
  after the test.
* ``nats_cluster`` — a formed 3-node JetStream cluster
  (:class:`~ark_mesh.testing.nats_cluster.NatsCluster`); tests may ``kill(i)``/``restart(i)``
  nodes and ask which node leads a stream. Stopped after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from ark_mesh.testing.nats_cluster import NatsCluster
from ark_mesh.testing.nats_server import NatsServer

__all__ = ["nats_client", "nats_cluster", "nats_server", "nats_server_factory", "nats_url"]

NatsServerFactory = Callable[..., NatsServer]


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[NatsServerFactory]:
    started: list[NatsServer] = []

    def start(*, extra_args: Sequence[str] = (), name: str | None = None) -> NatsServer:
        store = tmp_path / (name or f"nats-{len(started)}")
        server = NatsServer(store, extra_args=extra_args)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def nats_server(nats_server_factory: NatsServerFactory) -> NatsServer:
    return nats_server_factory(name="nats")


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest_asyncio.fixture
async def nats_client(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, name="test-client", connect_timeout=5)
    try:
        yield client
    finally:
        if not client.is_closed:
            await client.close()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats-cluster", nodes=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
