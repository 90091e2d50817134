"""An in-process controller against the K8s emulator and the fake model server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from ark_mesh.contracts import Query
from ark_mesh.controller.config import ControllerConfig, SchedulerConfig
from ark_mesh.controller.service import ControllerService
from ark_mesh.kube import KubeClient, NotFoundError
from ark_mesh.service import HealthConfig, HealthServer, KubernetesConfig
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.k8s.emulator import KubeEmulator

NS = "default"


@dataclass
class Cluster:
    kube: KubeEmulator
    client: KubeClient
    fake: FakeModelServer

    async def wait_phase(self, name: str, *phases: str, within: float = 30.0) -> Query:
        async with asyncio.timeout(within):
            while True:
                query = await self.client.get(Query, NS, name)
                if query.status is not None and query.status.phase in phases:
                    return query
                await asyncio.sleep(0.02)

    async def wait_gone(self, name: str, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while True:
                try:
                    await self.client.get(Query, NS, name)
                except NotFoundError:
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
async def cluster(kube_emulator: KubeEmulator, fake_llm: FakeModelServer) -> AsyncIterator[Cluster]:
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as client:
        await client.create(ark_objects.model("default", NS, fake_llm.base_url))
        await client.create(ark_objects.agent("assistant", NS))
        yield Cluster(kube_emulator, client, fake_llm)


ControllerFactory = Callable[..., Awaitable[ControllerService]]


@pytest.fixture
async def start_controller(kube_emulator: KubeEmulator) -> AsyncIterator[ControllerFactory]:
    running: list[tuple[ControllerService, HealthServer]] = []

    async def start(**overrides: object) -> ControllerService:
        config = ControllerConfig(
            kubernetes=KubernetesConfig(kubeconfig=str(kube_emulator.kubeconfig_path)),
            health=HealthConfig(host="127.0.0.1", port=0),
            scheduler=overrides.pop("scheduler", SchedulerConfig()),  # type: ignore[arg-type]
            **overrides,  # type: ignore[arg-type]
        )
        service = ControllerService(config)
        health = HealthServer(port=0)
        await health.start()
        await service.start(health)
        running.append((service, health))
        return service

    yield start
    for service, health in running:
        await service.stop(grace=5.0)
        await health.stop()
