"""The broker service: the HTTP API and the read-model consumer on the shared service skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side: connect, provision or verify the
topology (with the broker's own durable consumer on ``ARK_STATUS``), bind the status worker,
drain on SIGTERM. This adds the in-flight index loaded from ``ark-queries``, Kubernetes when
Query mirrors are configured, and — once the worker runs — the HTTP port. Readiness: NATS
connected, the status consumer bound, the in-flight index loaded. Stop (SIGTERM): the HTTP port
closes first (running streams get the grace period), then the worker drains, then the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ark_mesh.broker.api import build_app
from ark_mesh.broker.approvals import ToolApprovals
from ark_mesh.broker.catalog import Catalog, ResourceReader
from ark_mesh.broker.config import SERVICE_NAME, BrokerConfig
from ark_mesh.broker.conversations import ResponseStore
from ark_mesh.broker.embeddings import EmbeddingsBroker
from ark_mesh.broker.errors import UnavailableError
from ark_mesh.broker.memory_api import ConversationMemory
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import InFlight, ReadModel, RecordCodec
from ark_mesh.broker.responses_bus import ResponsesBroker
from ark_mesh.broker.sessions import SessionIndex, SessionStore
from ark_mesh.broker.sessions_api import Sessions
from ark_mesh.broker.tenancy import TenantResolver
from ark_mesh.bus import (
    Bus,
    CancelChannel,
    Fanout,
    MessageContext,
    Publisher,
    StreamReader,
    Topology,
    TopologyConfig,
    TransientError,
    Worker,
)
from ark_mesh.contracts import QueryEvent, StatusUpdate, subjects
from ark_mesh.kube import KubeClient, ResourceCache
from ark_mesh.service import (
    HealthServer,
    ReadinessCheck,
    ResourceSource,
    WorkHandlers,
    WorkQueueService,
    open_resources,
)
from ark_mesh.telemetry import MessagingTelemetry

__all__ = ["BrokerService"]


class BrokerService(WorkQueueService[StatusUpdate]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    message_type = StatusUpdate

    def __init__(
        self, config: BrokerConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        super().__init__(config.bus, provision=config.provision, telemetry=telemetry)
        self.config = config.validate()
        self.kube: KubeClient | None = None
        self.read_model: ReadModel | None = None
        self.in_flight: InFlight | None = None
        self.broker: QueryBroker | None = None
        self.fanout: Fanout | None = None
        self._api: tuple[QueryBroker, EmbeddingsBroker, ResponsesBroker] | None = None
        self.approvals: ToolApprovals | None = None
        self.memory: ConversationMemory | None = None
        self.sessions: Sessions | None = None
        self.sessions_worker: Worker[QueryEvent] | None = None
        self.resources: ResourceSource | None = None
        self.catalog = Catalog(None)
        self.port: int = config.http.port
        self.app: web.Application | None = None
        """The HTTP application once serving (its routes are what ``/openapi.json`` documents)."""

    @property
    def url(self) -> str:
        host = self.config.http.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def topology(self) -> TopologyConfig:
        return self.config.topology()

    def binding(self, topology: Topology) -> tuple[str, str]:
        consumer = self.config.status_consumer()
        return consumer.stream, consumer.durable

    def checks(self) -> Mapping[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {
            "read_model": lambda: self.in_flight is not None and self.in_flight.synced,
            "sessions": lambda: (
                self.sessions is not None
                and self.sessions.index.synced
                and self.sessions_worker is not None
                and self.sessions_worker.running
            ),
        }
        if self.config.resources is not None:
            checks["resources"] = lambda: self.resources is not None and self.resources.ready()
        return checks

    def describe(self) -> Mapping[str, Any]:
        return {
            "url": self.url,
            "auth": self.config.auth.mode,
            "kubernetes": self.config.kubernetes is not None,
            "catalog": self.resources.description if self.resources is not None else None,
        }

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[StatusUpdate]:
        config = self.config
        kv = await bus.key_value(subjects.QUERIES_BUCKET)
        codec = RecordCodec(bus.cipher)
        self.read_model = read_model = ReadModel(kv, codec)
        self.in_flight = in_flight = InFlight(kv, codec)
        await in_flight.start()
        stack.push_async_callback(in_flight.stop)
        if config.kubernetes is not None:
            self.kube = kube = await config.kubernetes.connect()
            stack.push_async_callback(kube.close)
        self.catalog = Catalog(await self._resource_reader(stack))
        # One shared live feed per stream for every SSE route of this replica.
        reader = StreamReader(bus, create_within=config.streaming.read_within_seconds)
        self.fanout = fanout = Fanout(reader, buffer=config.streaming.follower_buffer)
        stack.push_async_callback(fanout.close)
        self.broker = queries = QueryBroker(
            config,
            publisher=publisher,
            reader=reader,
            fanout=fanout,
            read_model=read_model,
            in_flight=in_flight,
            cancels=CancelChannel(bus),
            kube=self.kube,
        )
        responses = ResponsesBroker(
            publisher=publisher,
            reader=reader,
            cancels=CancelChannel(bus),
            store=ResponseStore(bus),
            fanout=fanout,
        )
        self._api = (
            queries,
            EmbeddingsBroker(publisher=publisher, reader=StreamReader(bus)),
            responses,
        )
        self.approvals = approvals = ToolApprovals(
            queries, redispatch_after=config.approvals.redispatch_seconds
        )
        self.memory = ConversationMemory(
            bus, publisher, allow_ttl=bool(config.bus.topology.memory.allow_msg_ttl)
        )
        await self._start_sessions(bus, publisher, stack)
        assert self.sessions is not None
        self.memory.on_append = self.sessions.apply_message
        sweeps = asyncio.create_task(
            approvals.run_sweeps(config.approvals.sweep_seconds), name="broker-approval-sweeps"
        )
        stack.push_async_callback(_stop_task, sweeps)
        return WorkHandlers(self._apply)

    async def _start_sessions(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> None:
        """The sessions read model: its index (a watch of ``ark-sessions``) and the worker of
        the ``broker-sessions`` consumer every replica shares (see :mod:`.sessions` for why one
        shared consumer and compare-and-set writes)."""
        store = SessionStore(await bus.key_value(subjects.SESSIONS_BUCKET), bus.cipher)
        index = SessionIndex(store)
        await index.start()
        stack.push_async_callback(index.stop)
        self.sessions = Sessions(store=store, index=index)
        consumer = self.config.sessions_consumer()
        self.sessions_worker = worker = Worker.for_type(
            bus,
            (consumer.stream, consumer.durable),
            QueryEvent,
            store.handle,
            settings=self.config.bus.worker.for_service(f"{self.name}-sessions"),
            publisher=publisher,
            telemetry=self.telemetry,
        )
        await worker.start()
        stack.push_async_callback(worker.stop)

    async def _resource_reader(self, stack: contextlib.AsyncExitStack) -> ResourceReader | None:
        """The store ``/v1/agents``… read: the ``resources`` section (as the reconcilers
        read it), else a lazy watch cache over the ``kubernetes`` connection, else none."""
        if self.config.resources is not None:
            self.resources = source = await open_resources(self.config.resources)
            stack.push_async_callback(source.close)
            return source.store
        if self.kube is not None:
            assert self.config.kubernetes is not None
            cache = ResourceCache(self.kube, namespace=self.config.kubernetes.namespace)
            stack.push_async_callback(cache.stop)
            return cache
        return None

    async def serve(self, health: HealthServer, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        assert self._api is not None  # setup built it
        queries, embeddings, responses = self._api
        self.app = app = build_app(
            queries,
            embeddings,
            TenantResolver(config.auth),
            health,
            heartbeat=config.streaming.heartbeat_seconds,
            completion_wait=config.limits.completion_wait_seconds,
            max_body_bytes=config.limits.max_body_bytes,
            catalog=self.catalog,
            approvals=self.approvals,
            responses=responses,
            memory=self.memory,
            sessions=self.sessions,
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.grace_period)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, config.http.host, config.http.port).start()
        if config.http.port == 0:
            self.port = int(runner.addresses[0][1])

    async def _apply(self, update: StatusUpdate, _: MessageContext) -> None:
        assert self.read_model is not None
        try:
            await self.read_model.apply(update)
        except UnavailableError as exc:
            raise TransientError(str(exc)) from exc  # the bucket is away: later, with backoff


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
