"""The embeddings-reconciler service: wiring and lifecycle around :class:`EmbeddingsWork`.

Start: connect to NATS (with backoff), provision or verify the topology, open the resource
source (cluster cache synced, or manifests loaded), bind the worker to the shared durable
``embeddings`` consumer. Readiness: NATS connected, consumer bound, resources ready. Stop
(SIGTERM): the worker stops pulling, lets running requests finish within the grace period and
hands the rest back to other replicas, then everything is flushed and closed.
"""

from __future__ import annotations

import contextlib

from ark_mesh.bus import Bus, Publisher, Topology, Worker
from ark_mesh.contracts import EmbeddingsRequest
from ark_mesh.embeddings_reconciler.config import SERVICE_NAME, EmbeddingsReconcilerConfig
from ark_mesh.embeddings_reconciler.handler import EmbeddingsWork
from ark_mesh.embeddings_reconciler.provider import OpenAIEmbeddings
from ark_mesh.query_reconciler import ResourceSource, open_resources
from ark_mesh.service import HealthServer
from ark_mesh.telemetry import MessagingTelemetry, get_logger

__all__ = ["EmbeddingsReconcilerService"]

log = get_logger(__name__)


class EmbeddingsReconcilerService:
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME

    def __init__(
        self, config: EmbeddingsReconcilerConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        self.config = config
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.resources: ResourceSource | None = None
        self.worker: Worker[EmbeddingsRequest] | None = None
        self.embedder: OpenAIEmbeddings | None = None

    def _nats_ready(self) -> bool:
        return self.bus is not None and self.bus.ready

    def _consumer_bound(self) -> bool:
        return self.worker is not None and self.worker.running

    def _resources_ready(self) -> bool:
        return self.resources is not None and self.resources.ready()

    async def start(self, health: HealthServer) -> None:
        # Registered before anything starts: a probe must not pass while starting.
        health.add_check("nats", self._nats_ready)
        health.add_check("consumer", self._consumer_bound)
        health.add_check("resources", self._resources_ready)
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        config = self.config
        self.bus = bus = await Bus.connect(config.bus.connection, encryption=config.bus.encryption)
        topology = Topology(config.bus.topology)
        if config.provision:
            await topology.provision(bus)
        binding = topology.work_binding("embeddings", config.tenant)
        self.resources = await open_resources(config.resources)
        self.publisher = await Publisher.create(bus, telemetry=self.telemetry)
        self.embedder = OpenAIEmbeddings(timeout=config.timeout)
        work = EmbeddingsWork(
            self.publisher, self.resources.store, self.embedder, max_batch=config.max_batch
        )
        self.worker = Worker.for_type(
            bus,
            binding,
            EmbeddingsRequest,
            work.handle,
            settings=config.bus.worker.for_service(SERVICE_NAME),
            publisher=self.publisher,
            on_dead_letter=work.on_dead_letter,
            telemetry=self.telemetry,
        )
        await self.worker.start()
        log.info(
            "embeddings reconciler ready",
            stream=binding.stream,
            consumer=binding.durable,
            tenant=config.tenant,
            resources=self.resources.description,
            max_batch=config.max_batch,
        )

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        await self._close()

    async def _close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        if self.resources is not None:
            await self.resources.close()
        if self.embedder is not None:
            await self.embedder.aclose()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.close()
