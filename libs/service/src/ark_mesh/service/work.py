"""The skeleton of every long-running service: bindings + handler + lifecycle.

Every service that pulls from JetStream — the query-, responses- and embeddings-reconciler on
their ``ARK_WORK`` kind, status-sync and the broker on their own durable of ``ARK_STATUS`` —
does the same things in the same order, so they are written once here. Start: connect with the
tenants' keys, provision or verify the topology, bind a durable consumer, create the publisher,
open the resolver's resource store (reconcilers), let the service build its handler, start the
worker, then let the service open what serves the outside (the broker's HTTP port). Readiness: NATS connected, consumer bound, plus the service's
own checks (registered before anything starts, so a probe never passes while starting). Stop:
first what serves the outside closes, then the worker stops pulling and drains within the grace
period, then everything closes in reverse order of opening.

Work that names a tenant is checked here too, once for every service: its ids must be usable
as subject tokens and its tenant must be the tenant of the subject it arrived on — otherwise
answering it would publish into another tenant's subjects. A dead letter goes through the same
check before the service ends it (answers the caller, fails the query), so a caller waiting on
its subjects always hears back and nobody hears from another tenant's work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ark_mesh.bus import (
    Bus,
    BusConfig,
    DeadLetterNotice,
    Handler,
    MessageContext,
    PermanentError,
    Publisher,
    Topology,
    TopologyConfig,
    WorkBinding,
    Worker,
)
from ark_mesh.contracts import DeadLetter, SubjectError, subjects
from ark_mesh.contracts.subjects import WorkKind
from ark_mesh.resolver import ResourceStore
from ark_mesh.service.health import HealthServer, ReadinessCheck
from ark_mesh.service.resources import ResourcesConfig, ResourceSource, open_resources
from ark_mesh.telemetry import MessagingTelemetry, get_logger

__all__ = [
    "ReconcilerService",
    "ReconcilerSettings",
    "WorkHandlers",
    "WorkIdentity",
    "WorkQueueService",
    "check_identity",
    "subject_tenant",
]

M = TypeVar("M")

log = get_logger(__name__)


@dataclass(frozen=True)
class WorkIdentity:
    """The ids of a work message that become subject tokens: its tenant and its own id."""

    tenant: str
    id: str
    id_name: str = "request id"
    """What the id is called in error messages (``query id``, ``request id``)."""


def subject_tenant(subject: str) -> str:
    """The tenant token of ``subject``; ``""`` when it has none, which matches no tenant, so
    work that cannot be attributed is never reported anywhere."""
    try:
        return subjects.parse(subject).tenant
    except SubjectError:
        return ""


def check_identity(what: str, identity: WorkIdentity, arrived_on: str) -> None:
    """Refuse (:class:`~ark_mesh.bus.PermanentError`, so the bus dead-letters it) work whose ids
    cannot name subjects, or that names another tenant than ``arrived_on``, the tenant of the
    subject it came in on: answering it would publish into another tenant's subjects."""
    try:
        subjects.validate_token(identity.tenant, "tenant")
        subjects.validate_token(identity.id, identity.id_name)
    except SubjectError as exc:
        raise PermanentError(f"unusable {what}: {exc}") from exc
    if identity.tenant != arrived_on:
        raise PermanentError(
            f"{what} for tenant {identity.tenant!r} arrived on tenant {arrived_on!r}'s work "
            "subject; refusing to publish into another tenant's subjects"
        )


@dataclass(frozen=True)
class WorkHandlers(Generic[M]):
    """What a service hands the skeleton.

    ``handle`` runs each delivery. With ``identify``, every delivery (and every dead letter) is
    checked with :func:`check_identity` first. With ``end``, a dead letter is ended by the
    service (fail the query, answer the caller); ``recover`` salvages the message from a letter
    whose body did not decode, where the service can.
    """

    handle: Handler[M]
    identify: Callable[[M], WorkIdentity] | None = None
    end: Callable[[M, DeadLetterNotice], Awaitable[None]] | None = None
    recover: Callable[[DeadLetter], M | None] | None = None


class WorkQueueService(Generic[M]):
    """Base of a service consuming one durable consumer; implements :class:`ark_mesh.service.Service`.

    Subclasses set ``name`` and ``message_type`` and implement :meth:`setup` (open what the
    handler needs, registering closers on ``stack``). Given ``resources``, the skeleton opens the
    resolver's resource store before :meth:`setup` (readiness ``resources``: synced or loaded)
    and :attr:`store` hands it out. A reconciler sets ``kind`` and pulls the
    shared durable of that work kind; another service overrides :meth:`binding` (and
    :meth:`topology`, to add its own consumer). They may add readiness checks with
    :meth:`checks`, log fields with :meth:`describe`, and open what serves the outside with
    :meth:`serve`.
    """

    name: str
    message_type: type[M]
    kind: WorkKind | None = None

    def __init__(
        self,
        bus_config: BusConfig,
        *,
        provision: bool = True,
        tenant: str | None = None,
        resources: ResourcesConfig | None = None,
        telemetry: MessagingTelemetry | None = None,
    ) -> None:
        self.bus_config = bus_config
        self.provision = provision
        self.tenant = tenant
        self.resources_config = resources
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.resources: ResourceSource | None = None
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.worker: Worker[M] | None = None
        self._handlers: WorkHandlers[M] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._front = contextlib.AsyncExitStack()

    # -- what a service adds --------------------------------------------------------------------

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[M]:
        """Open what the handler needs (closers on ``stack``) and return the handlers."""
        raise NotImplementedError

    async def serve(self, health: HealthServer, stack: contextlib.AsyncExitStack) -> None:
        """Open what serves the outside once the worker runs; ``stack`` closes first at stop."""

    def topology(self) -> TopologyConfig:
        """The topology to provision or verify (by default the configured one)."""
        return self.bus_config.topology

    def binding(self, topology: Topology) -> WorkBinding | tuple[str, str]:
        """The consumer to pull from: by default the shared durable of ``kind``."""
        if self.kind is None:
            raise NotImplementedError(f"{type(self).__name__} sets no kind and no binding")
        return topology.work_binding(self.kind, self.tenant)

    def checks(self) -> Mapping[str, ReadinessCheck]:
        return {}

    @property
    def store(self) -> ResourceStore:
        """The opened resource store; there is one from :meth:`setup` on when ``resources``
        was given."""
        if self.resources is None:
            raise RuntimeError(f"{self.name} has no resource store (no resources, or not started)")
        return self.resources.store

    def describe(self) -> Mapping[str, Any]:
        return {}

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, health: HealthServer) -> None:
        health.add_check("nats", lambda: self.bus is not None and self.bus.ready)
        health.add_check("consumer", lambda: self.worker is not None and self.worker.running)
        if self.resources_config is not None:
            health.add_check(
                "resources", lambda: self.resources is not None and self.resources.ready()
            )
        for check_name, check in self.checks().items():
            health.add_check(check_name, check)
        try:
            await self._start(health)
        except BaseException:
            await self._front.aclose()
            await self._stack.aclose()
            raise

    async def _start(self, health: HealthServer) -> None:
        config, stack = self.bus_config, self._stack
        # Sharded by tenant: only that tenant's keys (every service holding every key is the
        # blast radius issue 13 names).
        encryption = config.encryption.serving(self.tenant)
        self.bus = bus = await Bus.connect(config.connection, encryption=encryption)
        stack.push_async_callback(self._close_bus, bus)
        topology = Topology(self.topology())
        if self.provision:
            await topology.provision(bus)
        binding = self.binding(topology)
        self.publisher = publisher = await Publisher.create(bus, telemetry=self.telemetry)
        stack.push_async_callback(publisher.close)
        if self.resources_config is not None:
            self.resources = resources = await open_resources(self.resources_config)
            stack.push_async_callback(resources.close)
        self._handlers = handlers = await self.setup(bus, publisher, stack)
        self.worker = Worker.for_type(
            bus,
            binding,
            self.message_type,
            self._handle if handlers.identify is not None else handlers.handle,
            settings=config.worker.for_service(self.name),
            publisher=publisher,
            on_dead_letter=self.dead_letter if handlers.end is not None else None,
            telemetry=self.telemetry,
        )
        await self.worker.start()
        await self.serve(health, self._front)
        stream, durable = (
            (binding.stream, binding.durable) if isinstance(binding, WorkBinding) else binding
        )
        described = self.resources.description if self.resources is not None else None
        log.info(
            f"{self.name} ready",
            stream=stream,
            consumer=durable,
            tenant=self.tenant,
            **({"resources": described} if described else {}),
            **self.describe(),
        )

    async def stop(self, grace: float) -> None:
        await self._front.aclose()
        if self.worker is not None:
            await self.worker.stop(grace)
        await self._stack.aclose()

    @staticmethod
    async def _close_bus(bus: Bus) -> None:
        with contextlib.suppress(Exception):  # closing is best effort; the process is ending
            await bus.close()

    # -- what every delivery and dead letter goes through ---------------------------------------

    @property
    def _what(self) -> str:
        return self.message_type.__name__

    async def _handle(self, message: M, context: MessageContext) -> None:
        handlers = self._handlers
        assert handlers is not None
        assert handlers.identify is not None
        check_identity(self._what, handlers.identify(message), context.tenant or "")
        await handlers.handle(message, context)

    async def dead_letter(self, notice: DeadLetterNotice) -> None:
        """What the worker calls when it gives up on a message: recover the message if the
        letter's body did not decode, check its identity, then let the service end it."""
        handlers = self._handlers
        assert handlers is not None
        assert handlers.end is not None
        message: M | None = (
            notice.message if isinstance(notice.message, self.message_type) else None
        )
        if message is None and handlers.recover is not None:
            message = handlers.recover(notice.letter)
        if message is None:
            # Without the message there is no id, so no subject to end anything on.
            log.error(
                f"dead-lettered work names no recoverable {self._what}; nothing can be ended",
                subject=notice.letter.subject,
                dlq=notice.dlq_subject,
                reason=notice.letter.reason,
            )
            return
        if handlers.identify is not None:
            try:
                check_identity(
                    self._what,
                    handlers.identify(message),
                    subject_tenant(notice.letter.subject),
                )
            except PermanentError as exc:
                log.error("dead-lettered work cannot be ended", reason=str(exc))
                return
        await handlers.end(message, notice)


class ReconcilerSettings(Protocol):
    """The sections every reconciler's config has, read by :class:`ReconcilerService`."""

    @property
    def bus(self) -> BusConfig: ...

    @property
    def provision(self) -> bool: ...

    @property
    def tenant(self) -> str | None: ...

    @property
    def resources(self) -> ResourcesConfig: ...


C = TypeVar("C", bound=ReconcilerSettings)


class ReconcilerService(WorkQueueService[M], Generic[M, C]):
    """A work reconciler: the skeleton wired from its config's ``bus``, ``provision``,
    ``tenant`` and ``resources`` sections, so a reconciler only adds its handler (:meth:`setup`).
    """

    def __init__(self, config: C, *, telemetry: MessagingTelemetry | None = None) -> None:
        super().__init__(
            config.bus,
            provision=config.provision,
            tenant=config.tenant,
            resources=config.resources,
            telemetry=telemetry,
        )
        self.config = config
