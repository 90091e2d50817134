"""A small world for broker tests: a real nats-server, the fake model server over HTTP, the real
query-reconciler (resources from a manifests directory) and the broker, both started in this
process, and an aiohttp client speaking to the broker over a real socket.

Test modules cannot import conftest under ``--import-mode=importlib``, so helpers travel as the
``world`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import yaml

from ark_mesh.broker import (
    AuthConfig,
    BrokerConfig,
    BrokerService,
    HttpConfig,
    LimitsConfig,
    SSEConfig,
    TenantToken,
    hash_token,
)
from ark_mesh.bus import BusConfig, ConnectionSettings, WorkerSettings
from ark_mesh.embeddings_reconciler import EmbeddingsReconcilerConfig, EmbeddingsReconcilerService
from ark_mesh.query_reconciler import QueryReconcilerConfig, QueryReconcilerService
from ark_mesh.responses_reconciler import ResponsesReconcilerConfig, ResponsesReconcilerService
from ark_mesh.service import HealthConfig, HealthServer, ResourcesConfig
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer

TENANT_A = "team-a"
TENANT_B = "team-b"
TOKENS = {TENANT_A: "token-of-team-a", TENANT_B: "token-of-team-b"}
TERMINAL = ("done", "error", "canceled")


def manifests(base_url: str) -> list[dict[str, Any]]:
    """Per tenant namespace: a Model on the fake server and an Agent ``helper`` using it.

    Team A's namespace streams model calls (Ark's ``ark-config-streaming`` ConfigMap), so its
    query streams carry tokens as they come; team B's does not, so a model call there streams
    only when the client asks to.
    """
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ark-config-streaming", "namespace": TENANT_A},
            "data": {"enabled": "true"},
        }
    ]
    for namespace in (TENANT_A, TENANT_B):
        documents += [
            {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "default", "namespace": namespace},
                "spec": {
                    "model": {"value": "fake-model"},
                    "provider": "openai",
                    "config": {
                        "openai": {"baseUrl": {"value": base_url}, "apiKey": {"value": "k"}}
                    },
                },
            },
            {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "Agent",
                "metadata": {"name": "helper", "namespace": namespace},
                "spec": {"prompt": "You are helpful.", "modelRef": {"name": "default"}},
            },
        ]
    return documents


@dataclass
class SseEvent:
    id: int | None
    data: str


@dataclass
class World:
    nats: NatsServer
    fake: FakeModelServer
    root: Path
    http: aiohttp.ClientSession
    brokers: list[BrokerService] = field(default_factory=list)
    reconcilers: list[QueryReconcilerService] = field(default_factory=list)
    embedders: list[EmbeddingsReconcilerService] = field(default_factory=list)
    responders: list[ResponsesReconcilerService] = field(default_factory=list)
    healths: list[HealthServer] = field(default_factory=list)

    def bus(self) -> BusConfig:
        return BusConfig(
            connection=ConnectionSettings(
                servers=(self.nats.url,), connect_attempts=3, insecure=True
            ),
            worker=WorkerSettings(slots=4, retry_delay_initial=0.05, grace_period=5.0),
        )

    def manifests_dir(self) -> Path:
        """The tenants' resources as manifests (what the reconcilers and the broker read)."""
        directory = self.root / "manifests"
        directory.mkdir(exist_ok=True)
        (directory / "resources.yaml").write_text(yaml.safe_dump_all(manifests(self.fake.base_url)))
        return directory

    def resources(self) -> ResourcesConfig:
        return ResourcesConfig(
            source="manifests", manifests=str(self.manifests_dir()), default_namespace=TENANT_A
        )

    def broker_config(self, **changes: Any) -> BrokerConfig:
        base = BrokerConfig(
            bus=self.bus(),
            http=HttpConfig(host="127.0.0.1", port=0),
            health=HealthConfig(host="127.0.0.1", port=0),
            auth=AuthConfig(
                mode="token",
                tokens=tuple(
                    TenantToken(tenant=tenant, sha256=hash_token(token))
                    for tenant, token in TOKENS.items()
                ),
            ),
            limits=LimitsConfig(max_in_flight_per_tenant=50),
            streaming=SSEConfig(heartbeat_seconds=0.5),
            resources=self.resources(),
            grace_period=5.0,
        )
        return msgspec.structs.replace(base, **changes) if changes else base

    async def _health(self) -> HealthServer:
        health = HealthServer(port=0)
        await health.start()
        self.healths.append(health)
        return health

    async def start_reconciler(self) -> QueryReconcilerService:
        config = QueryReconcilerConfig(
            bus=self.bus(),
            instance="test-replica",
            resources=self.resources(),
            health=HealthConfig(host="127.0.0.1", port=0),
        )
        service = QueryReconcilerService(config)
        await service.start(await self._health())
        self.reconcilers.append(service)
        return service

    async def start_embeddings_reconciler(
        self, models: list[dict[str, Any]], **changes: Any
    ) -> EmbeddingsReconcilerService:
        """An embeddings-reconciler whose Models are ``models`` (manifests)."""
        directory = self.root / "embedding-models"
        directory.mkdir(exist_ok=True)
        (directory / "models.yaml").write_text(yaml.safe_dump_all(models))
        config = EmbeddingsReconcilerConfig(
            bus=self.bus(),
            resources=ResourcesConfig(
                source="manifests", manifests=str(directory), default_namespace=TENANT_A
            ),
            health=HealthConfig(host="127.0.0.1", port=0),
            **changes,
        )
        service = EmbeddingsReconcilerService(config)
        await service.start(await self._health())
        self.embedders.append(service)
        return service

    async def start_responses_reconciler(self) -> ResponsesReconcilerService:
        """A responses-reconciler on the tenants' resources (chat on ``model/…`` and the
        Responses API go to it)."""
        config = ResponsesReconcilerConfig(
            bus=self.bus(),
            resources=self.resources(),
            health=HealthConfig(host="127.0.0.1", port=0),
        )
        service = ResponsesReconcilerService(config)
        await service.start(await self._health())
        self.responders.append(service)
        return service

    async def start_broker(self, config: BrokerConfig | None = None) -> BrokerService:
        service = BrokerService(config or self.broker_config())
        await service.start(await self._health())
        self.brokers.append(service)
        return service

    @property
    def url(self) -> str:
        return self.brokers[0].url

    @staticmethod
    def auth(tenant: str = TENANT_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[tenant]}"}

    async def post(
        self, body: Any, *, tenant: str = TENANT_A, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        async with self.http.post(
            f"{self.url}/v1/queries",
            data=data,
            headers={**self.auth(tenant), "Content-Type": "application/json", **(headers or {})},
        ) as response:
            return response.status, await response.json(), response.headers

    async def get(self, path: str, *, tenant: str = TENANT_A) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", headers=self.auth(tenant)) as response:
            return response.status, await response.json()

    async def submit(self, text: str = "Hello there", **extra: Any) -> str:
        status, body, _ = await self.post(
            {"input": text, "target": {"type": "agent", "name": "helper"}, **extra}
        )
        assert status == 202, body
        return str(body["id"])

    async def wait_phase(
        self, query_id: str, *phases: str, tenant: str = TENANT_A, within: float = 60.0
    ) -> dict[str, Any]:
        """Poll the broker's GET until the read model shows one of ``phases`` (a safety net
        with a generous bound, never a timing assertion)."""
        async with asyncio.timeout(within):
            while True:
                status, body = await self.get(f"/v1/queries/{query_id}", tenant=tenant)
                assert status == 200, body
                if body["status"].get("phase") in (phases or TERMINAL):
                    return dict(body)
                await asyncio.sleep(0.05)

    async def sse(
        self,
        path: str,
        *,
        tenant: str = TENANT_A,
        last_event_id: int | None = None,
        stop_after: int | None = None,
    ) -> tuple[list[SseEvent], list[str]]:
        """Read an SSE stream to its end (or ``stop_after`` events); returns events and
        comment lines."""
        headers = self.auth(tenant)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        events: list[SseEvent] = []
        comments: list[str] = []
        async with self.http.get(f"{self.url}{path}", headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            event_id: int | None = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    comments.append(line[1:].strip())
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    events.append(SseEvent(event_id, line[6:]))
                    event_id = None
                    if stop_after is not None and len(events) >= stop_after:
                        break
        return events, comments

    async def close(self) -> None:
        for broker in reversed(self.brokers):
            await broker.stop(5.0)
        for reconciler in reversed(self.reconcilers):
            await reconciler.stop(5.0)
        for embedder in reversed(self.embedders):
            await embedder.stop(5.0)
        for responder in reversed(self.responders):
            await responder.stop(5.0)
        for health in self.healths:
            await health.stop()


@pytest.fixture
async def world(
    nats_server: NatsServer, fake_llm: FakeModelServer, tmp_path: Path
) -> AsyncIterator[World]:
    async with aiohttp.ClientSession() as http:
        state = World(nats=nats_server, fake=fake_llm, root=tmp_path, http=http)
        try:
            yield state
        finally:
            await state.close()


@pytest.fixture
async def running(world: World) -> World:
    """The broker and one reconciler replica, started."""
    await world.start_reconciler()
    await world.start_broker()
    return world
