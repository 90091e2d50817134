"""A small world for query-reconciler tests: a real nats-server, the fake model server over HTTP,
a real counting HTTP tool server, resources in a manifests directory, and the service itself
started in this process or as a real subprocess (:meth:`Mesh.process`).

Test modules cannot import conftest under ``--import-mode=importlib``, so the helpers travel
as the ``mesh`` fixture.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import yaml
from aiohttp import web

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
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryEvent,
    QueryRequest,
    QuerySpec,
    QueryTarget,
    StatusUpdate,
    decoder_for,
    subjects,
)
from ark_mesh.query_reconciler import MemoryConfig, QueryReconcilerConfig, QueryReconcilerService
from ark_mesh.service import HealthConfig, HealthServer, ResourcesConfig
from ark_mesh.telemetry import MessagingTelemetry
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer, free_port

TENANT = "team-a"
ACK_WAIT = 2.0
MAX_DELIVER = 3


def manifests(base_url: str, *, memory: bool = False) -> list[dict[str, Any]]:
    """A Model on the fake server and an Agent using it (plus a default Memory if asked)."""
    documents: list[dict[str, Any]] = [
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
    ]
    if memory:
        documents.append(
            {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "Memory",
                "metadata": {"name": "default", "namespace": TENANT},
                "spec": {"address": {"value": "http://memory.invalid"}},
            }
        )
    return documents


def tool_manifests(tools_url: str) -> list[dict[str, Any]]:
    """HTTP tools on the counting :class:`ToolServer` and agents using them.

    ``counter`` has a side effect and says nothing about idempotency; ``counter-idem`` carries
    MCP's ``idempotentHint``; agent ``gatekeeper`` must have ``counter`` approved per call.
    """
    schema = {
        "type": "object",
        "properties": {"job": {"type": "string"}, "step": {"type": "string"}},
        "required": ["job", "step"],
    }

    def tool(name: str, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "type": "http",
            "description": "Records a step of a job",
            "inputSchema": schema,
            "http": {"url": f"{tools_url}/call/{{job}}/{{step}}", "method": "POST"},
        }
        if annotations:
            spec["annotations"] = annotations
        return {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Tool",
            "metadata": {"name": name, "namespace": TENANT},
            "spec": spec,
        }

    def agent(name: str, tool_ref: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": name, "namespace": TENANT},
            "spec": {
                "prompt": "You run jobs.",
                "modelRef": {"name": "default"},
                "tools": [tool_ref],
            },
        }

    return [
        tool("counter"),
        tool("counter-idem", {"idempotentHint": True}),
        agent("worker", {"type": "custom", "name": "counter"}),
        agent("careful", {"type": "custom", "name": "counter-idem"}),
        agent(
            "gatekeeper",
            {"type": "custom", "name": "counter", "approval": {"required": True}},
        ),
    ]


async def eventually(check: Callable[[], bool], *, within: float = 60.0, what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds (a safety net
    for state that has no event to wait on, never a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class ToolServer:
    """A real HTTP tool with side effects: ``POST /call/<job>/<step>`` records the call, then
    answers. Calls listed in :attr:`holds` are held on their first arrival until the caller
    goes away (its process killed): a call whose effect happened but whose answer never
    arrived."""

    def __init__(self) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.arrivals: list[tuple[str, str]] = []
        self.holds: set[tuple[str, str]] = set()
        self.on_call: Callable[[tuple[str, str]], Awaitable[None]] | None = None
        """Run on each call's arrival, before it is answered."""
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/call/{job}/{step}", self._call)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _call(self, request: web.Request) -> web.Response:
        key = (request.match_info["job"], request.match_info["step"])
        self.calls[key] += 1
        self.arrivals.append(key)
        count = self.calls[key]
        self._changed.set()
        if self.on_call is not None:
            await self.on_call(key)
        if key in self.holds and count == 1:
            await asyncio.Event().wait()  # cancelled when the caller disconnects
        return web.Response(text=f"{key[0]} step {key[1]} recorded (call {count})")

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Event-driven wait for ``check`` (bound it with ``asyncio.timeout``)."""
        while not check():
            self._changed.clear()
            await self._changed.wait()


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    """Poll ``/readyz`` until 200 (generous bound; fails with the process's log)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if process.returncode is not None:
                raise AssertionError(f"service exited early:\n{tail(log)}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"service never became ready:\n{tail(log)}")


@dataclass
class Outcome:
    """Everything a query published, read back from the streams in order."""

    statuses: list[StatusUpdate]
    chunks: list[Chunk]
    events: list[QueryEvent]
    status_ids: list[str]
    chunk_ids: list[str]

    @property
    def terminal(self) -> list[StatusUpdate]:
        return [update for update in self.statuses if update.terminal]

    @property
    def finals(self) -> list[Chunk]:
        return [chunk for chunk in self.chunks if chunk.is_final]

    @property
    def content(self) -> str:
        return "".join(
            choice.delta.content or ""
            for chunk in self.chunks
            if not chunk.is_final and chunk.ark.system_message is None
            for choice in chunk.choices
        )

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


@dataclass
class Mesh:
    """Helpers shared by the tests (see the module docstring)."""

    nats: NatsServer
    bus: Bus
    publisher: Publisher
    fake: FakeModelServer
    root: Path
    tools: ToolServer
    services: list[QueryReconcilerService] = field(default_factory=list)
    healths: list[HealthServer] = field(default_factory=list)
    tenant: str = TENANT

    def write_manifests(self, *, memory: bool = False) -> Path:
        directory = self.root / ("manifests-memory" if memory else "manifests")
        directory.mkdir(exist_ok=True)
        (directory / "resources.yaml").write_text(
            yaml.safe_dump_all(manifests(self.fake.base_url, memory=memory))
        )
        return directory

    def tool_config(self, *, slots: int = 4) -> QueryReconcilerConfig:
        """The service's configuration with the counting tools and their agents, ``slots``
        queries at once per replica."""
        directory = self.root / "manifests-tools"
        directory.mkdir(exist_ok=True)
        documents = manifests(self.fake.base_url) + tool_manifests(self.tools.base_url)
        (directory / "resources.yaml").write_text(yaml.safe_dump_all(documents))
        config = self.config()
        resources = msgspec.structs.replace(config.resources, manifests=str(directory))
        worker = msgspec.structs.replace(config.bus.worker, slots=slots)
        bus = msgspec.structs.replace(config.bus, worker=worker)
        return msgspec.structs.replace(config, resources=resources, bus=bus)

    def config(self, **changes: Any) -> QueryReconcilerConfig:
        topology = TopologyConfig(
            work_consumers=(
                WorkConsumerSettings(
                    kind="query",
                    durable="query-reconciler",
                    ack_wait=ACK_WAIT,
                    max_deliver=MAX_DELIVER,
                ),
            )
        )
        base = QueryReconcilerConfig(
            bus=BusConfig(
                connection=ConnectionSettings(
                    servers=(self.nats.url,), connect_attempts=3, insecure=True
                ),
                topology=topology,
                worker=WorkerSettings(
                    slots=4,
                    retry_delay_initial=0.05,
                    retry_delay_max=0.2,
                    grace_period=5.0,
                    service="query-reconciler",
                ),
            ),
            instance="test-replica",
            resources=ResourcesConfig(
                source="manifests",
                manifests=str(self.write_manifests()),
                default_namespace=TENANT,
            ),
            health=HealthConfig(host="127.0.0.1", port=0),
        )
        return msgspec.structs.replace(base, **changes) if changes else base

    def memory_config(self) -> QueryReconcilerConfig:
        config = self.config()
        resources = msgspec.structs.replace(
            config.resources, manifests=str(self.write_manifests(memory=True))
        )
        return msgspec.structs.replace(
            config, resources=resources, memory=MemoryConfig(backend="jetstream")
        )

    def write_config(self, config: QueryReconcilerConfig, name: str = "config.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(msgspec.to_builtins(config)))
        return path

    @asynccontextmanager
    async def process(
        self, name: str, config: QueryReconcilerConfig | None = None
    ) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
        """The service as a real process (``python -m ark_mesh.query_reconciler``) with the
        test's configuration; yields the process and its probe URL, kills it at the end."""
        port = free_port()
        config = msgspec.structs.replace(
            config or self.config(),
            health=HealthConfig(host="127.0.0.1", port=port),
            instance=f"process-{name}",
        )
        path = self.write_config(config, f"{name}.yaml")
        log: Path = self.root / f"{name}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ark_mesh.query_reconciler",
                "--config",
                str(path),
                stdout=output,
                stderr=output,
                env={**os.environ, "ARK_LOG_FORMAT": "json"},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(process, url, log)
            yield process, url
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def start(
        self,
        config: QueryReconcilerConfig | None = None,
        *,
        telemetry: MessagingTelemetry | None = None,
    ) -> QueryReconcilerService:
        service = QueryReconcilerService(config or self.config(), telemetry=telemetry)
        health = HealthServer(port=0)
        await health.start()
        self.healths.append(health)
        await service.start(health)
        self.services.append(service)
        return service

    def request(self, name: str = "q", **spec: Any) -> QueryRequest:
        deadline = spec.pop("deadline", None)
        annotations = spec.pop("annotations", None)
        spec.setdefault("input", "Hello there")
        spec.setdefault("target", QueryTarget(type="agent", name="helper"))
        return QueryRequest(
            query_id=str(uuid.uuid4()),
            name=name,
            namespace=TENANT,
            tenant=TENANT,
            spec=QuerySpec(**spec),
            annotations=annotations,
            submitted_at=datetime.now(UTC).isoformat(),
            deadline=deadline,
        )

    async def submit(self, request: QueryRequest, *, msg_id: str | None = None) -> None:
        await self.publisher.publish(
            subjects.work_query(request.tenant), request, msg_id=msg_id or request.msg_id
        )

    def text_chunk(self, request: QueryRequest, text: str, seq: int) -> Chunk:
        """A content chunk as the resolver streams it (``seq`` relative to the attempt)."""
        return Chunk(
            id="chatcmpl-test",
            created=0,
            model="fake-model",
            choices=[ChunkChoice(delta=ChunkDelta(content=text))],
            ark=ArkChunkMetadata(query=request.query_id, target="agent/helper"),
            seq=seq,
        )

    async def eventually(self, check: Callable[[], bool], *, what: str) -> None:
        await eventually(check, what=what)

    async def wait_acked(self, service: QueryReconcilerService, count: int) -> None:
        """Until the replica acked ``count`` work messages."""
        await eventually(
            lambda: service.worker is not None and service.worker.stats.acked >= count,
            what=f"{count} acked work message(s)",
        )

    async def wait_final(self, request: QueryRequest) -> None:
        """Follow the chunk subject live until the final chunk arrives."""
        reader = StreamReader(self.bus, subjects.ARK_CHUNKS)
        async for _ in reader.read(
            subjects.query_chunk(request.tenant, request.query_id),
            decoder=decoder_for(Chunk),
            until=lambda entry: entry.message.is_final,
        ):
            pass

    async def wait_phase(self, request: QueryRequest, phase: str) -> StatusUpdate:
        """Follow the query's status subject live until an update with ``phase``."""
        reader = StreamReader(self.bus, subjects.ARK_STATUS)
        async with asyncio.timeout(60):
            async for entry in reader.read(
                subjects.query_status(request.tenant, request.query_id),
                decoder=decoder_for(StatusUpdate),
                until=lambda entry: entry.message.phase == phase,
            ):
                if entry.message.phase == phase:
                    return entry.message
        raise AssertionError(f"the status subject of {request.name} ended without {phase}")

    async def wait_chunks(self, request: QueryRequest, count: int) -> None:
        reader = StreamReader(self.bus, subjects.ARK_CHUNKS)
        async for _ in reader.read(
            subjects.query_chunk(request.tenant, request.query_id),
            decoder=decoder_for(Chunk),
            limit=count,
        ):
            pass

    async def recorded(self, request: QueryRequest) -> Outcome:
        """What the query's subjects hold right now."""
        statuses = await self._all(
            subjects.query_status(request.tenant, request.query_id), StatusUpdate
        )
        chunks = await self._all(subjects.query_chunk(request.tenant, request.query_id), Chunk)
        events = await self._all(subjects.query_event(request.tenant, request.query_id), QueryEvent)
        return Outcome(
            statuses=[message for message, _ in statuses],
            chunks=[message for message, _ in chunks],
            events=[message for message, _ in events],
            status_ids=[msg_id for _, msg_id in statuses],
            chunk_ids=[msg_id for _, msg_id in chunks],
        )

    async def outcome(self, request: QueryRequest, *, within: float = 60.0) -> Outcome:
        """Wait for the final chunk, then for the replicas to finish their work, then read."""
        async with asyncio.timeout(within):
            await self.wait_final(request)
            await self.settled()
        return await self.recorded(request)

    async def settled(self) -> None:
        """Every in-process replica idle and its windowed publishes acknowledged."""
        for service in self.services:
            if service.worker is not None:
                await service.worker.wait_idle()
            if service.publisher is not None:
                await service.publisher.flush()

    async def _all(self, subject: str, message_type: type[Any]) -> list[tuple[Any, str]]:
        reader = StreamReader(self.bus)
        found: list[tuple[Any, str]] = []
        async for entry in reader.read(
            subject, decoder=decoder_for(message_type), caught_up=True, idle_timeout=10.0
        ):
            found.append((entry.message, entry.headers.get("Nats-Msg-Id", "")))
        return found

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.stop(5.0)
        for health in self.healths:
            await health.stop()


@pytest.fixture
async def mesh(
    nats_server: NatsServer, fake_llm: FakeModelServer, tmp_path: Path
) -> AsyncIterator[Mesh]:
    bus = await Bus.connect(servers=(nats_server.url,), name="query-reconciler-test")
    publisher = await Publisher.create(bus)
    tools = ToolServer()
    await tools.start()
    world = Mesh(
        nats=nats_server, bus=bus, publisher=publisher, fake=fake_llm, root=tmp_path, tools=tools
    )
    try:
        yield world
    finally:
        await world.close()
        await tools.close()
        await publisher.close()
        await bus.close()
