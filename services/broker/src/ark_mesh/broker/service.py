"""The broker service: wiring and lifecycle around the HTTP API and the read-model consumer.

Start: connect to NATS, provision or verify the topology (with the broker's own durable
consumer on ``ARK_STATUS``), load the in-flight index from ``ark-queries``, open Kubernetes if
mirrors are enabled, bind the status worker, then open the HTTP port. Readiness: NATS
connected, the status consumer bound, the in-flight index loaded. Stop (SIGTERM): close the
HTTP port (running streams get the grace period), drain the worker, close.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from ark_mesh.broker.api import build_app
from ark_mesh.broker.config import SERVICE_NAME, BrokerConfig
from ark_mesh.broker.embeddings import EmbeddingsBroker
from ark_mesh.broker.queries import QueryBroker
from ark_mesh.broker.readmodel import InFlight, ReadModel, RecordCodec
from ark_mesh.broker.tenancy import TenantResolver
from ark_mesh.bus import (
    Bus,
    CancelChannel,
    MessageContext,
    Publisher,
    StreamReader,
    Topology,
    Worker,
)
from ark_mesh.contracts import StatusUpdate, subjects
from ark_mesh.kube import KubeClient
from ark_mesh.service import HealthServer
from ark_mesh.telemetry import MessagingTelemetry, get_logger

__all__ = ["BrokerService"]

log = get_logger(__name__)


class BrokerService:
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME

    def __init__(
        self, config: BrokerConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        self.config = config.validate()
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.kube: KubeClient | None = None
        self.read_model: ReadModel | None = None
        self.in_flight: InFlight | None = None
        self.worker: Worker[StatusUpdate] | None = None
        self.broker: QueryBroker | None = None
        self._runner: web.AppRunner | None = None
        self.port: int = config.http.port

    @property
    def url(self) -> str:
        host = self.config.http.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def _nats_ready(self) -> bool:
        return self.bus is not None and self.bus.ready

    def _consumer_bound(self) -> bool:
        return self.worker is not None and self.worker.running

    def _read_model_loaded(self) -> bool:
        return self.in_flight is not None and self.in_flight.synced

    async def start(self, health: HealthServer) -> None:
        health.add_check("nats", self._nats_ready)
        health.add_check("consumer", self._consumer_bound)
        health.add_check("read_model", self._read_model_loaded)
        try:
            await self._start(health)
        except BaseException:
            await self._close()
            raise

    async def _start(self, health: HealthServer) -> None:
        config = self.config
        consumer = config.status_consumer()
        self.bus = bus = await Bus.connect(config.bus.connection, encryption=config.bus.encryption)
        if config.provision:
            await Topology(config.topology()).provision(bus)
        kv = await bus.key_value(subjects.QUERIES_BUCKET)
        codec = RecordCodec(bus.cipher)
        self.read_model = ReadModel(kv, codec)
        self.in_flight = InFlight(kv, codec)
        await self.in_flight.start()
        if config.kubernetes.enabled:
            kube = config.kubernetes
            if kube.kubeconfig:
                self.kube = await KubeClient.from_kubeconfig(kube.kubeconfig, context=kube.context)
            else:
                self.kube = KubeClient.in_cluster()
        self.publisher = await Publisher.create(bus, telemetry=self.telemetry)
        self.broker = QueryBroker(
            config,
            publisher=self.publisher,
            reader=StreamReader(bus),
            read_model=self.read_model,
            in_flight=self.in_flight,
            cancels=CancelChannel(bus),
            kube=self.kube,
        )
        self.worker = Worker.for_type(
            bus,
            (consumer.stream, consumer.durable),
            StatusUpdate,
            self._apply,
            settings=config.bus.worker.for_service(SERVICE_NAME),
            publisher=self.publisher,
            telemetry=self.telemetry,
        )
        await self.worker.start()
        app = build_app(
            self.broker,
            EmbeddingsBroker(publisher=self.publisher, reader=StreamReader(bus)),
            TenantResolver(config.auth),
            health,
            heartbeat=config.streaming.heartbeat_seconds,
            completion_wait=config.limits.completion_wait_seconds,
            max_body_bytes=config.limits.max_body_bytes,
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.grace_period)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.http.host, config.http.port)
        await site.start()
        if config.http.port == 0:
            self.port = int(self._runner.addresses[0][1])
        log.info(
            "broker ready",
            url=self.url,
            auth=config.auth.mode,
            consumer=consumer.durable,
            mirrors=config.kubernetes.enabled,
        )

    async def _apply(self, update: StatusUpdate, _: MessageContext) -> None:
        assert self.read_model is not None
        await self.read_model.apply(update)

    async def stop(self, grace: float) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.worker is not None:
            await self.worker.stop(grace)
        await self._close()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.in_flight is not None:
            await self.in_flight.stop()
        if self.publisher is not None:
            await self.publisher.close()
        if self.kube is not None:
            await self.kube.close()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
