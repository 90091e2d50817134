"""A small world for embeddings-reconciler tests: a real nats-server, the fake model server over
HTTP, Models in a manifests directory, and the service started in this process.

Test modules cannot import conftest under ``--import-mode=importlib``, so the helpers travel
as the ``world`` fixture.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
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
    Publisher,
    StreamReader,
    TopologyConfig,
    WorkConsumerSettings,
    WorkerSettings,
)
from ark_mesh.contracts import EmbeddingsRequest, EmbeddingsResult, decoder_for, subjects
from ark_mesh.embeddings_reconciler import EmbeddingsReconcilerConfig, EmbeddingsReconcilerService
from ark_mesh.service import HealthConfig, HealthServer, ResourcesConfig
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer

TENANT = "team-a"
MAX_DELIVER = 3
API_KEY = "sk-from-secret"


def manifests(base_url: str) -> list[dict[str, Any]]:
    """An OpenAI-compatible embeddings Model whose key lives in a Secret, and an Azure one."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "provider-key", "namespace": TENANT},
            "stringData": {"token": API_KEY},
        },
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "embedder", "namespace": TENANT},
            "spec": {
                "model": {"value": "fake-embeddings"},
                "provider": "openai",
                "config": {
                    "openai": {
                        "baseUrl": {"value": base_url},
                        "apiKey": {
                            "valueFrom": {"secretKeyRef": {"name": "provider-key", "key": "token"}}
                        },
                        "headers": [{"name": "X-Tenant-Route", "value": {"value": "blue"}}],
                    }
                },
            },
        },
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "azure-embedder", "namespace": TENANT},
            "spec": {
                "model": {"value": "embed-deployment"},
                "provider": "azure",
                "config": {
                    "azure": {
                        "baseUrl": {"value": base_url.removesuffix("/v1")},
                        "apiKey": {"value": "azure-key"},
                        "apiVersion": {"value": "2024-06-01"},
                    }
                },
            },
        },
    ]


@dataclass
class World:
    """Helpers shared by the tests (see the module docstring)."""

    nats: NatsServer
    bus: Bus
    publisher: Publisher
    fake: FakeModelServer
    root: Path
    services: list[EmbeddingsReconcilerService] = field(default_factory=list)
    healths: list[HealthServer] = field(default_factory=list)
    tenant: str = TENANT

    def write_manifests(self) -> Path:
        directory = self.root / "manifests"
        directory.mkdir(exist_ok=True)
        (directory / "models.yaml").write_text(yaml.safe_dump_all(manifests(self.fake.base_url)))
        return directory

    def config(self, **changes: Any) -> EmbeddingsReconcilerConfig:
        base = EmbeddingsReconcilerConfig(
            bus=BusConfig(
                connection=ConnectionSettings(
                    servers=(self.nats.url,), connect_attempts=3, insecure=True
                ),
                topology=TopologyConfig(
                    work_consumers=(
                        WorkConsumerSettings(
                            kind="embeddings",
                            durable="embeddings-reconciler",
                            ack_wait=5.0,
                            max_deliver=MAX_DELIVER,
                        ),
                    )
                ),
                worker=WorkerSettings(
                    slots=4,
                    retry_delay_initial=0.05,
                    retry_delay_max=0.2,
                    grace_period=5.0,
                    service="embeddings-reconciler",
                ),
            ),
            resources=ResourcesConfig(
                source="manifests",
                manifests=str(self.write_manifests()),
                default_namespace=TENANT,
            ),
            health=HealthConfig(host="127.0.0.1", port=0),
        )
        return msgspec.structs.replace(base, **changes) if changes else base

    def write_config(self, config: EmbeddingsReconcilerConfig, name: str = "config.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(msgspec.to_builtins(config)))
        return path

    async def start(
        self, config: EmbeddingsReconcilerConfig | None = None
    ) -> EmbeddingsReconcilerService:
        service = EmbeddingsReconcilerService(config or self.config())
        health = HealthServer(port=0)
        await health.start()
        self.healths.append(health)
        await service.start(health)
        self.services.append(service)
        return service

    def request(
        self, texts: list[str], *, model: str = "embedder", dimensions: int | None = None
    ) -> EmbeddingsRequest:
        return EmbeddingsRequest(
            request_id=str(uuid.uuid4()),
            tenant=TENANT,
            namespace=TENANT,
            model=model,
            input=texts,
            dimensions=dimensions,
            submitted_at=datetime.now(UTC).isoformat(),
        )

    async def submit(self, request: EmbeddingsRequest) -> None:
        await self.publisher.publish(
            subjects.work_embeddings(request.tenant), request, msg_id=request.request_id
        )

    async def result(self, request: EmbeddingsRequest, *, within: float = 60.0) -> EmbeddingsResult:
        """Wait for the request's result, then for the replicas to settle; fail if the request
        got more than one answer."""
        subject = subjects.query_result(request.tenant, request.request_id)
        async with asyncio.timeout(within):
            async for _ in StreamReader(self.bus).read(
                subject, decoder=decoder_for(EmbeddingsResult), limit=1
            ):
                pass
            for service in self.services:
                if service.worker is not None:
                    await service.worker.wait_idle()
                if service.publisher is not None:
                    await service.publisher.flush()
        results = [
            entry.message
            async for entry in StreamReader(self.bus).read(
                subject, decoder=decoder_for(EmbeddingsResult), caught_up=True, idle_timeout=10.0
            )
        ]
        assert len(results) == 1, f"expected exactly one result, got {results}"
        return results[0]

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.stop(5.0)
        for health in self.healths:
            await health.stop()


@pytest.fixture
async def world(
    nats_server: NatsServer, fake_llm: FakeModelServer, tmp_path: Path
) -> AsyncIterator[World]:
    bus = await Bus.connect(servers=(nats_server.url,), name="embeddings-reconciler-test")
    publisher = await Publisher.create(bus)
    created = World(nats=nats_server, bus=bus, publisher=publisher, fake=fake_llm, root=tmp_path)
    try:
        yield created
    finally:
        await created.close()
        await publisher.close()
        await bus.close()
