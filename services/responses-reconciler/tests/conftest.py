"""A small world for responses-reconciler tests: a real nats-server, the fake model server over
HTTP, resources in a manifests directory, and the service started in this process.

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
from ark_mesh.contracts import Chunk, ResponsesRequest, ResponsesResult, decoder_for, subjects
from ark_mesh.responses_reconciler import ResponsesReconcilerConfig, ResponsesReconcilerService
from ark_mesh.service import HealthConfig, HealthServer, ResourcesConfig
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer

TENANT = "team-a"
MAX_DELIVER = 3


def manifests(base_url: str) -> list[dict[str, Any]]:
    """A Model on the fake server and an Agent using it."""
    return [
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "default", "namespace": TENANT},
            "spec": {
                "model": {"value": "fake-model"},
                "provider": "openai",
                "config": {
                    "openai": {"baseUrl": {"value": base_url}, "apiKey": {"value": "test-key"}}
                },
            },
        },
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "helper", "namespace": TENANT},
            "spec": {"prompt": "You are helpful.", "modelRef": {"name": "default"}},
        },
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "gatekeeper", "namespace": TENANT},
            "spec": {
                "prompt": "You ask before acting.",
                "modelRef": {"name": "default"},
                "tools": [{"type": "built-in", "name": "noop", "approval": {"required": True}}],
            },
        },
    ]


@dataclass
class World:
    nats: NatsServer
    bus: Bus
    publisher: Publisher
    fake: FakeModelServer
    root: Path
    services: list[ResponsesReconcilerService] = field(default_factory=list)
    healths: list[HealthServer] = field(default_factory=list)

    def config(self) -> ResponsesReconcilerConfig:
        directory = self.root / "manifests"
        directory.mkdir(exist_ok=True)
        (directory / "resources.yaml").write_text(yaml.safe_dump_all(manifests(self.fake.base_url)))
        return ResponsesReconcilerConfig(
            bus=BusConfig(
                connection=ConnectionSettings(
                    servers=(self.nats.url,), connect_attempts=3, insecure=True
                ),
                topology=TopologyConfig(
                    work_consumers=(
                        WorkConsumerSettings(
                            kind="responses",
                            durable="responses-reconciler",
                            ack_wait=2.0,
                            max_deliver=MAX_DELIVER,
                        ),
                    )
                ),
                worker=WorkerSettings(
                    slots=4,
                    retry_delay_initial=0.05,
                    retry_delay_max=0.2,
                    grace_period=5.0,
                    service="responses-reconciler",
                ),
            ),
            instance="test-replica",
            resources=ResourcesConfig(
                source="manifests", manifests=str(directory), default_namespace=TENANT
            ),
            health=HealthConfig(host="127.0.0.1", port=0),
        )

    def write_config(self, config: ResponsesReconcilerConfig, name: str) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(msgspec.to_builtins(config)))
        return path

    async def start(self) -> ResponsesReconcilerService:
        service = ResponsesReconcilerService(self.config())
        health = HealthServer(port=0)
        await health.start()
        self.healths.append(health)
        await service.start(health)
        self.services.append(service)
        return service

    def request(
        self, target: str, messages: list[dict[str, Any]], **fields: Any
    ) -> ResponsesRequest:
        return ResponsesRequest(
            request_id=str(uuid.uuid4()),
            tenant=TENANT,
            namespace=TENANT,
            target=target,
            messages=messages,
            submitted_at=datetime.now(UTC).isoformat(),
            **fields,
        )

    async def submit(self, request: ResponsesRequest) -> None:
        await self.publisher.publish(
            subjects.work_responses(request.tenant), request, msg_id=request.request_id
        )

    async def result(self, request: ResponsesRequest, *, within: float = 60.0) -> ResponsesResult:
        """Follow the result subject live until the one result arrives."""
        reader = StreamReader(self.bus, subjects.ARK_STATUS)
        async with asyncio.timeout(within):
            async for entry in reader.read(
                subjects.query_result(request.tenant, request.request_id),
                decoder=decoder_for(ResponsesResult),
                limit=1,
            ):
                result: ResponsesResult = entry.message
                return result
        raise AssertionError("the result subject ended without a result")

    async def recorded(self, subject: str, message_type: type[Any]) -> list[Any]:
        """Everything ``subject`` holds right now."""
        reader = StreamReader(self.bus)
        return [
            entry.message
            async for entry in reader.read(
                subject, decoder=decoder_for(message_type), caught_up=True, idle_timeout=10.0
            )
        ]

    async def chunks(self, request: ResponsesRequest) -> list[Chunk]:
        return await self.recorded(subjects.query_chunk(request.tenant, request.request_id), Chunk)

    async def results(self, request: ResponsesRequest) -> list[ResponsesResult]:
        return await self.recorded(
            subjects.query_result(request.tenant, request.request_id), ResponsesResult
        )

    async def settled(self) -> None:
        for service in self.services:
            if service.worker is not None:
                await service.worker.wait_idle()
            if service.publisher is not None:
                await service.publisher.flush()

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.stop(5.0)
        for health in self.healths:
            await health.stop()


@pytest.fixture
async def world(
    nats_server: NatsServer, fake_llm: FakeModelServer, tmp_path: Path
) -> AsyncIterator[World]:
    bus = await Bus.connect(servers=(nats_server.url,), name="responses-reconciler-test")
    publisher = await Publisher.create(bus)
    state = World(nats=nats_server, bus=bus, publisher=publisher, fake=fake_llm, root=tmp_path)
    try:
        yield state
    finally:
        await state.close()
        await publisher.close()
        await bus.close()
