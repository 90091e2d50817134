"""The status-sync service: wiring and lifecycle around :class:`StatusApplier`.

Start: connect to NATS, provision or verify the topology, open the Kubernetes client, bind the
worker to the shared durable consumer on ``ARK_STATUS``. Readiness: NATS connected, consumer
bound, the API server answering. Stop (SIGTERM): stop pulling, finish or hand back what is in
flight, close.
"""

from __future__ import annotations

import contextlib

from ark_mesh.bus import (
    Bus,
    ConsumerSettings,
    Publisher,
    Topology,
    TopologyConfigError,
    Worker,
)
from ark_mesh.contracts import StatusUpdate
from ark_mesh.kube import EventRecorder, KubeClient
from ark_mesh.service import HealthServer
from ark_mesh.status_sync.applier import StatusApplier
from ark_mesh.status_sync.config import SERVICE_NAME, StatusSyncConfig
from ark_mesh.status_sync.newest import NewestPublished
from ark_mesh.telemetry import MessagingTelemetry, get_logger

__all__ = ["StatusSyncService"]

log = get_logger(__name__)


class StatusSyncService:
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME

    def __init__(
        self, config: StatusSyncConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        self.config = config
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.client: KubeClient | None = None
        self.applier: StatusApplier | None = None
        self.worker: Worker[StatusUpdate] | None = None

    def _nats_ready(self) -> bool:
        return self.bus is not None and self.bus.ready

    def _consumer_bound(self) -> bool:
        return self.worker is not None and self.worker.running

    def _api_reachable(self) -> bool:
        return self.applier is not None and self.applier.api_reachable

    async def start(self, health: HealthServer) -> None:
        # Registered first: the probe server is already up and must not pass during start.
        health.add_check("nats", self._nats_ready)
        health.add_check("consumer", self._consumer_bound)
        health.add_check("kubernetes", self._api_reachable)
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        config = self.config
        consumer = _consumer(config)
        self.bus = bus = await Bus.connect(config.bus.connection, encryption=config.bus.encryption)
        if config.provision:
            await Topology(config.bus.topology).provision(bus)
        kube = config.kubernetes
        if kube.kubeconfig:
            self.client = await KubeClient.from_kubeconfig(kube.kubeconfig, context=kube.context)
        else:
            self.client = KubeClient.in_cluster()
        events = (
            EventRecorder(
                self.client, controller=config.events.controller, instance=config.identity()
            )
            if config.events.enabled
            else None
        )
        self.applier = StatusApplier(
            self.client,
            events=events,
            newest=NewestPublished(bus, consumer.stream) if config.check_newest else None,
        )
        self.publisher = await Publisher.create(bus, telemetry=self.telemetry)
        self.worker = Worker.for_type(
            bus,
            (consumer.stream, consumer.durable),
            StatusUpdate,
            self.applier.handle,
            settings=config.bus.worker.for_service(SERVICE_NAME),
            publisher=self.publisher,
            telemetry=self.telemetry,
        )
        await self.worker.start()
        log.info(
            "status sync ready",
            stream=consumer.stream,
            consumer=consumer.durable,
            filter=consumer.filter_subject,
            events=config.events.enabled,
        )

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        await self._close()

    async def _close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        if self.client is not None:
            await self.client.close()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()


def _consumer(config: StatusSyncConfig) -> ConsumerSettings:
    for consumer in config.bus.topology.consumers:
        if consumer.durable == config.durable:
            return consumer
    known = [consumer.durable for consumer in config.bus.topology.consumers]
    raise TopologyConfigError(
        f"durable {config.durable!r} is not among bus.topology.consumers ({known})"
    )
