"""The controller process: watch Queries, reconcile them on a keyed queue, behind a Lease.

Wiring only: the decisions are in :mod:`ark_mesh.controller.reconcile`. With no ``bus``
section the process never imports a NATS connection into its life (the simple preset).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

from ark_mesh.bus import Bus, CancelChannel, Publisher, Topology
from ark_mesh.contracts import (
    A2ATask,
    Chunk,
    Query,
    QueryEvent,
    QueryStatus,
    StatusUpdate,
    subjects,
)
from ark_mesh.contracts.approvals import RunLog
from ark_mesh.contracts.ark import FINALIZER
from ark_mesh.controller.admission.server import AdmissionServer, serve_admission
from ark_mesh.controller.config import ControllerConfig
from ark_mesh.controller.dispatch import InControllerDispatcher, StandaloneDispatcher
from ark_mesh.controller.keyqueue import KeyQueue
from ark_mesh.controller.reconcile import Reconciler, tenant_of
from ark_mesh.controller.resource_controllers import (
    ApprovalTasks,
    ResourceControllers,
    ark_handlers,
)
from ark_mesh.controller.scheduler import FairScheduler
from ark_mesh.kube import (
    ApiResource,
    EventRecorder,
    KubeClient,
    KubeError,
    LeaderElectionConfig,
    LeaderElector,
    NotFoundError,
    ResourceCache,
    ResumableWatch,
    StatusGuard,
    StatusWriter,
    TerminalPhaseError,
    open_approval_task,
)
from ark_mesh.resolver import QueryResolver
from ark_mesh.service import HealthServer, instance_id
from ark_mesh.telemetry import get_logger

__all__ = ["ControllerService"]

log = get_logger("ark_mesh.controller")
QUERIES = ApiResource.of(Query)
Key = tuple[str, str]

# Operation events that become Kubernetes Events when there is no bus to carry them. The
# per-call ones (LLMCall*, ToolCall*) would turn every query into dozens of API writes.
KUBERNETES_EVENT_PREFIXES = ("QueryExecution",)


class KubeQueries:
    """The controller's metadata writes, each guarded by the object's resourceVersion."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def add_finalizer(self, query: Query) -> None:
        finalizers = [*(query.metadata.finalizers or []), FINALIZER]
        await self._patch_finalizers(query, finalizers)

    async def remove_finalizer(self, query: Query) -> None:
        finalizers = [f for f in query.metadata.finalizers or [] if f != FINALIZER]
        await self._patch_finalizers(query, finalizers)

    async def _patch_finalizers(self, query: Query, finalizers: list[str]) -> None:
        await self._patch_metadata(query, {"finalizers": finalizers})

    async def set_annotation(self, query: Query, key: str, value: str | None) -> None:
        """Set (``None``: remove) one annotation, as a merge patch on this resourceVersion."""
        await self._patch_metadata(query, {"annotations": {key: value}})

    async def _patch_metadata(self, query: Query, fields: dict[str, Any]) -> None:
        meta = query.metadata
        body = {"metadata": {**fields, "resourceVersion": meta.resource_version}}
        with contextlib.suppress(NotFoundError):
            await self._client.patch_object(QUERIES, meta.namespace, meta.name, body)

    async def delete(self, query: Query) -> None:
        meta = query.metadata
        with contextlib.suppress(NotFoundError):
            await self._client.delete_object(QUERIES, meta.namespace, meta.name, uid=meta.uid)


class KubeStatus:
    """Status subresource writes; a vanished or already-final Query is not an error."""

    def __init__(self, writer: StatusWriter) -> None:
        self._writer = writer
        self.writes = 0

    async def write(
        self, query: Query, status: QueryStatus, *, guard: StatusGuard | None = None
    ) -> bool:
        meta = query.metadata
        try:
            result = await self._writer.write(
                Query, meta.namespace or "default", meta.name, status, guard=guard
            )
        except NotFoundError:
            return False
        except TerminalPhaseError as exc:
            log.info("status not written: query already final", query=meta.name, reason=str(exc))
            return False
        if result.written:
            self.writes += 1
        return result.written


class KubeApprovals:
    """Opens an in-controller run's approval A2ATask, with the run's log in it."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def open(self, query: Query, update: StatusUpdate, run_log: RunLog | None) -> None:
        assert update.approval is not None
        meta = query.metadata
        await open_approval_task(
            self._client,
            namespace=meta.namespace or "default",
            query_name=meta.name,
            query_uid=meta.uid or update.query_id,
            approval=update.approval,
            conversation_id=update.status.conversation_id,
            run_log=run_log,
        )


class KubeEvents:
    """Query-level operation events as Kubernetes Events (Ark's fallback without a broker)."""

    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    async def record(self, query: Query, event: QueryEvent) -> None:
        if not event.reason.startswith(KUBERNETES_EVENT_PREFIXES):
            return
        await self._recorder.record(query, event.reason, event.message, type=event.event_type)


class ControllerService:
    """Implements :class:`ark_mesh.service.Service`."""

    name = "controller"

    def __init__(self, config: ControllerConfig) -> None:
        config.validate()
        self.config = config
        self._tasks: list[asyncio.Task[Any]] = []
        self._client: KubeClient | None = None
        self._bus: Bus | None = None
        self._publisher: Publisher | None = None
        self._cache: ResourceCache | None = None
        self._in_controller: InControllerDispatcher | None = None
        self._resolver: QueryResolver | None = None
        self._queue: KeyQueue[Key] = KeyQueue()
        self._latest: dict[Key, dict[str, Any]] = {}
        self._watch: ResumableWatch | None = None
        self.status: KubeStatus | None = None
        self.resources: ResourceControllers | None = None
        self.admission: AdmissionServer | None = None

    async def start(self, health: HealthServer) -> None:
        cfg = self.config
        self._client = client = await cfg.kubernetes.connect()
        self.status = status = KubeStatus(StatusWriter(client))
        if cfg.webhook.enabled:  # every replica serves admission, leader or not
            self.admission = admission = await serve_admission(
                client, cfg.webhook, fallback_query_ttl=cfg.default_query_ttl
            )
            health.add_check("admission-webhook", lambda: admission.serving)
        identity = instance_id(self.name, cfg.instance)
        recorder = EventRecorder(client, controller="ark-mesh-controller", instance=identity)
        events = KubeEvents(recorder)
        modes = cfg.reconciliation.allowed_modes

        standalone: StandaloneDispatcher | None = None
        chunks = None
        if cfg.bus is not None:
            self._bus = bus = await Bus.connect(cfg.bus.connection, encryption=cfg.bus.encryption)
            await Topology(cfg.bus.topology).provision(bus)
            self._publisher = publisher = await Publisher(bus).start()
            standalone = StandaloneDispatcher(publisher, CancelChannel(bus))
            health.add_check("nats", lambda: bus.ready)

            async def publish_chunk(query: Query, chunk: Chunk) -> None:
                # Watchers of in-controller queries read the same subjects as standalone ones.
                subject = subjects.query_chunk(tenant_of(query), chunk.ark.query)
                await publisher.publish_nowait(subject, chunk)

            chunks = publish_chunk
        else:
            standalone = None

        # One cache for the resolver, the resource controllers and the approval tasks the
        # Query controller follows (paused queries resume from them).
        self._cache = cache = ResourceCache(client, namespace=cfg.kubernetes.namespace)
        await cache.start()
        if "inController" in modes:
            self._resolver = QueryResolver(cache, reconciler_id=f"controller/{identity}")
            self._in_controller = InControllerDispatcher(
                self._resolver,
                FairScheduler(cfg.scheduler.max_concurrent_queries),
                status,
                events,
                chunks=chunks,
                approvals=KubeApprovals(client),
            )
        self.resources = self._resource_controllers(client, recorder)

        async def task_lookup(namespace: str, name: str) -> A2ATask | None:
            return await cache.get(A2ATask, namespace, name)

        reconciler = Reconciler(
            cfg,
            KubeQueries(client),
            status,
            self._in_controller,
            standalone,
            tasks=task_lookup,
        )
        health.add_check(
            "queries-watch", lambda: self._watch is not None and self._watch.synced.is_set()
        )

        async def lead() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._run(client, reconciler))
                if self.resources is not None:
                    group.create_task(self.resources.run())

        if cfg.leader_election.enabled:
            le = cfg.leader_election
            elector = LeaderElector(
                client,
                LeaderElectionConfig(
                    namespace=le.lease_namespace,
                    name=le.lease_name,
                    identity=identity,
                    lease_duration=le.lease_duration,
                    renew_deadline=le.renew_deadline,
                    retry_period=le.retry_period,
                ),
            )
            self._tasks.append(asyncio.create_task(elector.run(lead), name="leader"))
        else:
            self._tasks.append(asyncio.create_task(lead(), name="controller"))

    def _resource_controllers(
        self, client: KubeClient, recorder: EventRecorder
    ) -> ResourceControllers:
        """Ark's resource controllers, reading through the same cache as the resolver (one
        watch per kind for both). With ``resource_controllers.enabled`` off, only the approval
        tasks' controller runs: paused queries depend on it to be decided or to time out."""
        assert self._cache is not None
        rc = self.config.resource_controllers
        handlers = ark_handlers(probe_timeout=rc.probe_timeout) if rc.enabled else [ApprovalTasks()]
        return ResourceControllers(
            client,
            self._cache,
            recorder,
            handlers,
            workers=rc.workers,
            check_limit=rc.probe_concurrency,
            check_timeout=rc.probe_timeout,
        )

    def _task_changed(self, event_type: str, key: tuple[str, str]) -> None:
        """An A2ATask changed: reconcile its Query (Ark maps each task to ``spec.queryRef``),
        so a decision resumes the paused query at once."""
        if event_type == "DELETED" or self._cache is None:
            return
        task = self._cache.cached(A2ATask, *key)
        if task is None:
            return
        ref = task.spec.query_ref
        query_key = (ref.namespace or key[0], ref.name)
        if query_key in self._latest:
            self._queue.add(query_key)

    async def _run(self, client: KubeClient, reconciler: Reconciler) -> None:
        self._watch = watch = ResumableWatch(client, QUERIES, self.config.kubernetes.namespace)
        workers = [
            asyncio.create_task(self._work(reconciler), name=f"reconcile-{i}")
            for i in range(max(1, self.config.scheduler.max_concurrent_reconciles))
        ]
        unsubscribe = (
            self._cache.subscribe(A2ATask, self._task_changed) if self._cache is not None else None
        )
        try:
            async for event in watch:
                key = event.key
                if event.type == "DELETED":
                    self._latest.pop(key, None)
                    self._queue.forget(key)
                    if self._in_controller is not None:
                        uid = (event.object.get("metadata") or {}).get("uid", "")
                        await self._in_controller.abandon(uid)
                    continue
                self._latest[key] = event.object
                self._queue.add(key)
        finally:
            if unsubscribe is not None:
                unsubscribe()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, reconciler: Reconciler) -> None:
        failures: dict[Key, int] = {}
        while True:
            key = await self._queue.get()
            try:
                raw = self._latest.get(key)
                if raw is None:
                    continue
                try:
                    query = msgspec.convert(raw, Query)
                except msgspec.ValidationError as exc:
                    log.warning(
                        "undecodable Query skipped", query=f"{key[0]}/{key[1]}", error=str(exc)
                    )
                    continue
                delay = await reconciler.reconcile(query)
                failures.pop(key, None)
                if delay is not None:
                    self._queue.add_after(key, delay)
            except KubeError as exc:
                count = failures[key] = failures.get(key, 0) + 1
                log.warning(
                    "reconcile failed; retrying", query=f"{key[0]}/{key[1]}", error=str(exc)
                )
                self._queue.add_after(key, min(0.05 * 2**count, 30.0))
            except Exception:
                count = failures[key] = failures.get(key, 0) + 1
                log.exception("reconcile crashed; retrying", query=f"{key[0]}/{key[1]}")
                self._queue.add_after(key, min(0.05 * 2**count, 30.0))
            finally:
                self._queue.done(key)

    async def stop(self, grace: float) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.admission is not None:
            await self.admission.stop()
        self._queue.close()
        if self._in_controller is not None:
            await self._in_controller.close(grace)
        if self._resolver is not None:
            await self._resolver.aclose()
        if self.resources is not None:
            await self.resources.aclose()
        if self._cache is not None:
            await self._cache.stop()
        if self._publisher is not None:
            await self._publisher.close(within=grace)
        if self._bus is not None:
            await self._bus.close()
        if self._client is not None:
            await self._client.close()
