"""The status-sync service: :class:`StatusApplier` on the shared service skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side (connect, provision or verify the
topology, bind the shared durable consumer on ``ARK_STATUS``, drain on SIGTERM: finish or hand
back what is in flight); this adds the Kubernetes client, the Event recorder and the newest-update
lookup. Readiness: NATS connected, consumer bound, the API server answering.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ark_mesh.bus import Bus, ConsumerSettings, Publisher, Topology, TopologyConfigError
from ark_mesh.contracts import StatusUpdate
from ark_mesh.kube import EventRecorder, KubeClient
from ark_mesh.service import ReadinessCheck, WorkHandlers, WorkQueueService
from ark_mesh.status_sync.applier import StatusApplier
from ark_mesh.status_sync.config import SERVICE_NAME, StatusSyncConfig
from ark_mesh.status_sync.newest import NewestPublished
from ark_mesh.telemetry import MessagingTelemetry

__all__ = ["StatusSyncService"]


class StatusSyncService(WorkQueueService[StatusUpdate]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    message_type = StatusUpdate

    def __init__(
        self, config: StatusSyncConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        super().__init__(config.bus, provision=config.provision, telemetry=telemetry)
        self.config = config
        self.consumer = _consumer(config)
        self.client: KubeClient | None = None
        self.applier: StatusApplier | None = None

    def binding(self, topology: Topology) -> tuple[str, str]:
        return self.consumer.stream, self.consumer.durable

    def checks(self) -> Mapping[str, ReadinessCheck]:
        return {"kubernetes": lambda: self.applier is not None and self.applier.api_reachable}

    def describe(self) -> Mapping[str, Any]:
        return {"filter": self.consumer.filter_subject, "events": self.config.events.enabled}

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[StatusUpdate]:
        config = self.config
        self.client = client = await config.kubernetes.connect()
        stack.push_async_callback(client.close)
        events = (
            EventRecorder(client, controller=config.events.controller, instance=config.identity())
            if config.events.enabled
            else None
        )
        self.applier = applier = StatusApplier(
            client,
            events=events,
            newest=NewestPublished(bus, self.consumer.stream) if config.check_newest else None,
        )
        return WorkHandlers(applier.handle)


def _consumer(config: StatusSyncConfig) -> ConsumerSettings:
    for consumer in config.bus.topology.consumers:
        if consumer.durable == config.durable:
            return consumer
    known = [consumer.durable for consumer in config.bus.topology.consumers]
    raise TopologyConfigError(
        f"durable {config.durable!r} is not among bus.topology.consumers ({known})"
    )
