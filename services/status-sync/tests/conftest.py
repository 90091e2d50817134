"""A world for status-sync tests: a real nats-server, the K8s API emulator with the project's
CRDs, and the service started in this process (helpers travel as the ``sync`` fixture, since
test modules cannot import conftest under ``--import-mode=importlib``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ark_mesh.bus import (
    Bus,
    BusConfig,
    ConnectionSettings,
    ConsumerSettings,
    Publisher,
    Topology,
    TopologyConfig,
    WorkerSettings,
)
from ark_mesh.contracts import (
    Condition,
    ObjectMeta,
    Query,
    QueryPhase,
    QueryResponse,
    QuerySpec,
    QueryStatus,
    QueryTarget,
    StatusUpdate,
    TokenUsage,
    subjects,
)
from ark_mesh.kube import KubeClient
from ark_mesh.service import HealthConfig, HealthServer, KubernetesConfig
from ark_mesh.status_sync import StatusSyncConfig, StatusSyncService
from ark_mesh.testing.k8s import KubeEmulator, ObjectTracker
from ark_mesh.testing.nats_server import NatsServer

NAMESPACE = "team-a"

_REASONS = {
    "running": ("False", "QueryRunning"),
    "done": ("True", "QuerySucceeded"),
    "error": ("True", "QueryErrored"),
    "canceled": ("True", "QueryCanceled"),
    "queued": ("False", "QueryQueued"),
}


def status_of(phase: QueryPhase, content: str = "") -> QueryStatus:
    truth, reason = _REASONS.get(phase, ("False", "QueryNotStarted"))
    status = QueryStatus(
        phase=phase,
        conditions=[
            Condition(
                type="Completed",
                status="True" if truth == "True" else "False",
                reason=reason,
                message=f"the query is {phase}",
                last_transition_time="2026-01-01T00:00:00Z",
            )
        ],
    )
    if phase == "done":
        status.response = QueryResponse(
            target=QueryTarget(type="agent", name="helper"), content=content, phase="done"
        )
        status.token_usage = TokenUsage(prompt_tokens=50, completion_tokens=100, total_tokens=150)
        status.duration = "1.5s"
    return status


async def eventually(check: Callable[[], bool], *, within: float = 60.0, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds (a safety net
    for state without an event to wait on, never a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Sync:
    """Helpers shared by the tests (see the module docstring)."""

    nats: NatsServer
    emulator: KubeEmulator
    bus: Bus
    publisher: Publisher
    kube: KubeClient
    root: Path
    services: list[StatusSyncService] = field(default_factory=list)
    healths: list[HealthServer] = field(default_factory=list)
    namespace: str = NAMESPACE
    trackers: dict[str, ObjectTracker] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def config(self, **changes: Any) -> StatusSyncConfig:
        topology = TopologyConfig(
            consumers=(
                ConsumerSettings(
                    stream=subjects.ARK_STATUS,
                    durable="status-sync",
                    filter_subject="ark.*.query.*.status",
                    ack_wait=2.0,
                    max_deliver=5,
                ),
            )
        )
        base = StatusSyncConfig(
            bus=BusConfig(
                connection=ConnectionSettings(
                    servers=(self.nats.url,), connect_attempts=3, insecure=True
                ),
                topology=topology,
                worker=WorkerSettings(
                    slots=8, retry_delay_initial=0.05, retry_delay_max=0.2, grace_period=5.0
                ),
            ),
            kubernetes=KubernetesConfig(kubeconfig=str(self.emulator.kubeconfig_path)),
            health=HealthConfig(host="127.0.0.1", port=0),
            instance="test-replica",
        )
        return msgspec.structs.replace(base, **changes) if changes else base

    def write_config(self, config: StatusSyncConfig, name: str = "config.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(msgspec.to_builtins(config)))
        return path

    async def provision(self) -> None:
        """Create the streams and consumer now (a service does it at start)."""
        await Topology(self.config().bus.topology).provision(self.bus)

    async def start(self, config: StatusSyncConfig | None = None) -> StatusSyncService:
        service = StatusSyncService(config or self.config())
        health = HealthServer(port=0)
        await health.start()
        self.healths.append(health)
        await service.start(health)
        self.services.append(service)
        return service

    async def create_query(self, name: str, **metadata: Any) -> Query:
        """Create a Query and follow its changes at the emulator (``trackers[name]``)."""
        tracker = ObjectTracker(self.emulator, "queries", self.namespace, name)
        tracker.start()
        self.trackers[name] = tracker
        return await self.kube.create(
            Query(
                metadata=ObjectMeta(name=name, namespace=self.namespace, **metadata),
                spec=QuerySpec(input="hi", target=QueryTarget(type="agent", name="helper")),
            )
        )

    def update(
        self,
        query: Query,
        phase: QueryPhase,
        *,
        attempt: int = 1,
        seq: int = 1,
        content: str = "",
        query_id: str | None = None,
    ) -> StatusUpdate:
        return StatusUpdate(
            query_id=query_id or query.metadata.uid or "",
            name=query.metadata.name,
            namespace=self.namespace,
            tenant=self.namespace,
            attempt=attempt,
            seq=seq,
            phase=phase,
            status=status_of(phase, content),
            timestamp=datetime.now(UTC).isoformat(),
            reconciler="test",
        )

    async def publish(self, update: StatusUpdate) -> None:
        """Publish like a reconciler; every publish is a new message (no deduplication)."""
        await self.publisher.publish(
            subjects.query_status(update.tenant, update.query_id),
            update,
            msg_id=f"{update.query_id}:{update.attempt}:{update.seq}:{next(self._ids)}",
        )

    async def current(self, query: Query) -> Query:
        return await self.kube.get(Query, self.namespace, query.metadata.name)

    def acked(self) -> int:
        return sum(s.worker.stats.acked for s in self.services if s.worker is not None)

    async def until(self, check: Callable[[], bool], what: str) -> None:
        await eventually(check, what=what)

    async def wait_acked(self, count: int) -> None:
        await eventually(lambda: self.acked() >= count, what=f"{count} acked update(s)")

    def phases(self, query: Query) -> list[str | None]:
        """The status phase after each stored change of the Query, in order."""
        tracker = self.trackers[query.metadata.name]
        return [(c.object.get("status") or {}).get("phase") for c in tracker.changes]

    async def wait_phase(self, query: Query, phase: str) -> Query:
        """Until the Query's stored status has ``phase`` (event-driven, at the emulator)."""
        tracker = self.trackers[query.metadata.name]
        async with asyncio.timeout(60):
            await tracker.wait_for(
                lambda changes: (
                    bool(changes) and (changes[-1].object.get("status") or {}).get("phase") == phase
                )
            )
        return await self.current(query)

    def status_writes(self, query: Query) -> int:
        return self.emulator.activity("queries", self.namespace, query.metadata.name).status_writes

    async def close(self) -> None:
        for tracker in self.trackers.values():
            tracker.stop()
        for service in reversed(self.services):
            await service.stop(5.0)
        for health in self.healths:
            await health.stop()


@pytest.fixture
async def sync(
    nats_server: NatsServer, kube_emulator: KubeEmulator, tmp_path: Path
) -> AsyncIterator[Sync]:
    kube_emulator.ensure_namespace(NAMESPACE)
    bus = await Bus.connect(servers=(nats_server.url,), name="status-sync-test")
    publisher = await Publisher.create(bus)
    kube = await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path))
    world = Sync(
        nats=nats_server,
        emulator=kube_emulator,
        bus=bus,
        publisher=publisher,
        kube=kube,
        root=tmp_path,
    )
    try:
        yield world
    finally:
        await world.close()
        await kube.close()
        await publisher.close()
        await bus.close()
