"""The skeleton every work-queue service shares: one kind of work from ``ARK_WORK``.

The query-, responses- and embeddings-reconciler differ only in what they build around their
handler; the rest is the same and in the same order, so it is written once here. Start:
connect with the tenants' keys, provision or verify the topology, bind the shared durable
consumer of the work kind, create the publisher, let the service build its handler, start the
worker. Readiness: NATS connected, consumer bound, plus the service's own checks (registered
before anything starts, so a probe never passes while starting). Stop: the worker stops pulling
and drains within the grace period, then everything closes in reverse order of opening.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ark_mesh.bus import Bus, BusConfig, DeadLetterNotice, Handler, Publisher, Topology, Worker
from ark_mesh.contracts.subjects import WorkKind
from ark_mesh.service.health import HealthServer, ReadinessCheck
from ark_mesh.telemetry import MessagingTelemetry, get_logger

__all__ = ["WorkHandlers", "WorkQueueService"]

M = TypeVar("M")

log = get_logger(__name__)


@dataclass(frozen=True)
class WorkHandlers(Generic[M]):
    """What a service hands the worker: the handler, and what to do with a dead letter."""

    handle: Handler[M]
    on_dead_letter: Callable[[DeadLetterNotice], Awaitable[None]] | None = None


class WorkQueueService(Generic[M]):
    """Base of a service consuming one work kind; implements :class:`ark_mesh.service.Service`.

    Subclasses set ``name``, ``kind`` and ``message_type`` and implement :meth:`setup`
    (open what the handler needs, registering closers on ``stack``); they may add readiness
    checks with :meth:`checks` and log fields with :meth:`describe`.
    """

    name: str
    kind: WorkKind
    message_type: type[Any]

    def __init__(
        self,
        bus_config: BusConfig,
        *,
        provision: bool = True,
        tenant: str | None = None,
        telemetry: MessagingTelemetry | None = None,
    ) -> None:
        self.bus_config = bus_config
        self.provision = provision
        self.tenant = tenant
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.worker: Worker[M] | None = None
        self._stack = contextlib.AsyncExitStack()

    # -- what a service adds --------------------------------------------------------------------

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[M]:
        raise NotImplementedError

    def checks(self) -> Mapping[str, ReadinessCheck]:
        return {}

    def describe(self) -> Mapping[str, Any]:
        return {}

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, health: HealthServer) -> None:
        health.add_check("nats", lambda: self.bus is not None and self.bus.ready)
        health.add_check("consumer", lambda: self.worker is not None and self.worker.running)
        for check_name, check in self.checks().items():
            health.add_check(check_name, check)
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> None:
        config, stack = self.bus_config, self._stack
        self.bus = bus = await Bus.connect(config.connection, encryption=config.encryption)
        stack.push_async_callback(self._close_bus, bus)
        topology = Topology(config.topology)
        if self.provision:
            await topology.provision(bus)
        binding = topology.work_binding(self.kind, self.tenant)
        self.publisher = publisher = await Publisher.create(bus, telemetry=self.telemetry)
        stack.push_async_callback(publisher.close)
        handlers = await self.setup(bus, publisher, stack)
        self.worker = Worker.for_type(
            bus,
            binding,
            self.message_type,
            handlers.handle,
            settings=config.worker.for_service(self.name),
            publisher=publisher,
            on_dead_letter=handlers.on_dead_letter,
            telemetry=self.telemetry,
        )
        await self.worker.start()
        log.info(
            f"{self.name} ready",
            stream=binding.stream,
            consumer=binding.durable,
            tenant=self.tenant,
            **self.describe(),
        )

    async def stop(self, grace: float) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        await self._stack.aclose()

    @staticmethod
    async def _close_bus(bus: Bus) -> None:
        with contextlib.suppress(Exception):  # closing is best effort; the process is ending
            await bus.close()
