"""The reconcile skeleton every resource controller shares, in the spirit of kopf.

A *handler* knows one kind: from an object and what it depends on, it computes the status the
object should have (:class:`Observed`). It never writes. The skeleton does everything else, the
same way for every kind:

* **Triggers.** One watch per kind (the :class:`~ark_mesh.kube.ResourceCache`'s, shared with
  in-controller query resolution) feeds one :class:`~ark_mesh.controller.keyqueue.KeyQueue`.
  A change of a handled object queues it; a change of *any* watched object also queues every
  object whose last reconcile said it depends on it (``Observed.depends_on``, kept as an index
  dependency → dependents), so an Agent turns Available as soon as its Model does, without a
  resync and without listing Agents on every Model event.
* **Writes.** Only the status subresource, only when the result differs from what is stored. A
  condition keeps its ``lastTransitionTime`` unless its status changes, so recomputing the same
  verdict is a no-op. Fields the kind's status schema does not declare are never sent (the API
  server would prune them and every reconcile would try again).
* **Events** of an outcome are recorded only together with the status write that records that
  outcome: they describe changes, like Ark's (``TeamCreated``, ``ModelUnavailable`` …).
* **Polling.** ``Observed.requeue_after`` (a kind's ``pollInterval``) queues the object again.
* **Slow checks** (a model probe, an MCP tool listing, an agent card) run as
  :class:`BackgroundChecks`: bounded by a semaphore, off the reconcile workers, memoised per
  object until the spec changes or the poll interval passes; when one finishes its object is
  queued again. So a slow provider never holds a worker, and a status write of ours (which comes
  back as a watch event) does not cause another probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from ark_mesh.contracts import Condition, DurationError, Resource, parse_duration
from ark_mesh.controller.keyqueue import KeyQueue
from ark_mesh.kube import (
    AlreadyExistsError,
    ApiResource,
    EventRecorder,
    KubeClient,
    KubeError,
    NotFoundError,
    ResourceCache,
    StatusWriter,
    merge_patch,
)
from ark_mesh.telemetry import get_logger

__all__ = [
    "BackgroundChecks",
    "Event",
    "KindHandler",
    "Observed",
    "ReconcileContext",
    "Ref",
    "ResourceControllers",
    "condition",
    "condition_is_true",
    "find_condition",
    "inherited_annotations",
    "owner_reference",
    "poll_interval",
]

ARK_ANNOTATION_PREFIX = "ark.mckinsey.com/"
DEFAULT_POLL_INTERVAL = 60.0
"""Ark's ``pollInterval`` default (1m) for Models, MCP servers and A2A servers."""

log = get_logger("ark_mesh.controller.resources")

R = TypeVar("R", bound=Resource)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    """One object: its ``kind`` (``Model``, ``Agent`` …), namespace and name."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Resource) -> Ref:
        return cls(type(obj).KIND, obj.metadata.namespace or "", obj.metadata.name)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Event:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True)
class Observed:
    """What a handler concluded about one object.

    ``status``: status fields in wire form (a ``None`` value removes the field); fields left out
    stay as they are. ``conditions``: conditions to set (others are kept), without times — the
    skeleton stamps ``lastTransitionTime`` and ``observedGeneration``. ``events`` go out with the
    status write that records this outcome, never without one.
    """

    status: Mapping[str, Any] = field(default_factory=dict)
    conditions: Sequence[Condition] = ()
    events: Sequence[Event] = ()
    depends_on: Iterable[Ref] = ()
    requeue_after: float | None = None


def condition(
    type_: str, status: Literal["True", "False", "Unknown"], reason: str, message: str
) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message=message)


def find_condition(obj: Resource, type_: str) -> Condition | None:
    """The condition ``type_`` of ``obj``'s status, if it has one."""
    status = getattr(obj, "status", None)
    for existing in getattr(status, "conditions", None) or ():
        if isinstance(existing, Condition) and existing.type == type_:
            return existing
    return None


def poll_interval(text: str | None) -> float:
    """Seconds of a ``pollInterval`` (Go duration); unset, invalid or not positive: the 1m default."""
    if not text:
        return DEFAULT_POLL_INTERVAL
    try:
        seconds = parse_duration(text).total_seconds()
    except DurationError:
        return DEFAULT_POLL_INTERVAL
    return seconds if seconds > 0 else DEFAULT_POLL_INTERVAL


def inherited_annotations(owner: Resource) -> dict[str, str]:
    """The owner's ``ark.mckinsey.com/`` annotations, which Ark copies onto what it creates."""
    annotations = owner.metadata.annotations or {}
    return {k: v for k, v in annotations.items() if k.startswith(ARK_ANNOTATION_PREFIX)}


def condition_is_true(obj: Resource | None, type_: str) -> bool:
    found = find_condition(obj, type_) if obj is not None else None
    return found is not None and found.status == "True"


def owner_reference(owner: Resource, *, controller: bool) -> dict[str, Any]:
    """An ownerReference to ``owner`` (``controller``: the one controller of the child, which
    also blocks the owner's foreground deletion until the child is gone, as Kubernetes does)."""
    reference: dict[str, Any] = {
        "apiVersion": owner.api_version or type(owner).api_version_string(),
        "kind": type(owner).KIND,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid or "",
    }
    if controller:
        reference |= {"controller": True, "blockOwnerDeletion": True}
    return reference


@dataclass(frozen=True, slots=True)
class _Result(Generic[T]):
    value: T
    fingerprint: Hashable
    finished: float


class BackgroundChecks:
    """Slow checks of objects (network calls), run beside the reconcile workers.

    :meth:`latest` answers at once with the last result for the object (``None`` before the
    first one) and starts a new check when there is none yet, when ``fingerprint`` (what the
    check depends on: the spec's generation, the resolved address …) changed, or when the last
    result is older than ``interval``. At most ``limit`` checks run at a time; each is cut off
    after ``timeout`` seconds (``on_timeout`` gives the result then). When a check ends, its
    object is queued again so the new result reaches the status.
    """

    def __init__(self, *, limit: int, timeout: float, requeue: Callable[[Ref], None]) -> None:
        self._slots = asyncio.Semaphore(max(1, limit))
        self._timeout = timeout
        self._requeue = requeue
        self._results: dict[Ref, _Result[Any]] = {}
        self._running: dict[Ref, asyncio.Task[None]] = {}

    def latest(
        self,
        ref: Ref,
        fingerprint: Hashable,
        interval: float,
        check: Callable[[], Awaitable[T]],
        on_timeout: Callable[[float], T],
    ) -> T | None:
        result: _Result[T] | None = self._results.get(ref)
        fresh = (
            result is not None
            and result.fingerprint == fingerprint
            and time.monotonic() - result.finished < interval
        )
        if not fresh and ref not in self._running:
            self._running[ref] = asyncio.create_task(
                self._run(ref, fingerprint, check, on_timeout), name=f"check {ref}"
            )
        return result.value if result is not None else None

    async def _run(
        self,
        ref: Ref,
        fingerprint: Hashable,
        check: Callable[[], Awaitable[T]],
        on_timeout: Callable[[float], T],
    ) -> None:
        try:
            async with self._slots:
                try:
                    async with asyncio.timeout(self._timeout):
                        value = await check()
                except TimeoutError:
                    value = on_timeout(self._timeout)
            self._results[ref] = _Result(value, fingerprint, time.monotonic())
        except Exception:
            # A check maps the failures it expects to results; anything else is a bug, logged
            # here and not requeued: the object's own poll (or its next change) tries again.
            log.exception("background check crashed", object=str(ref))
            return
        finally:
            self._running.pop(ref, None)
        self._requeue(ref)

    def forget(self, ref: Ref) -> None:
        self._results.pop(ref, None)
        task = self._running.pop(ref, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._running.values())
        self._running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class ReconcileContext:
    """What a handler may use: the shared cache (read), the API client (child objects only;
    status goes through the skeleton), the background checks, and the object's own ref."""

    ref: Ref
    store: ResourceCache
    client: KubeClient
    checks: BackgroundChecks

    async def lookup(self, kind: type[R], ref: Ref) -> tuple[R | None, str | None]:
        """The object ``ref`` from the cache, or the reason it could not be read (its kind is
        not served, RBAC forbids it, another namespace than the one watched …)."""
        try:
            return await self.store.get(kind, ref.namespace, ref.name), None
        except (KubeError, ValueError, TimeoutError) as exc:
            return None, str(exc)

    async def sync_children(
        self,
        owner: Resource,
        kind: type[R],
        label: str,
        desired: Sequence[Mapping[str, Any]],
        *,
        same: Callable[[Mapping[str, Any], Mapping[str, Any]], bool],
        update: Callable[[dict[str, Any], Mapping[str, Any]], None],
    ) -> list[Ref]:
        """Make the ``kind`` objects labelled ``label=<owner name>`` exactly ``desired``.

        Missing ones are created, ones that are not ``same`` as their desired body are updated
        (``update(stored, desired)`` edits the stored object, which is then replaced, guarded by
        its resourceVersion), and the others are deleted. Returns the refs of the children, for
        ``depends_on``: deleting a child by hand re-triggers its owner.
        """
        namespace = owner.metadata.namespace or ""
        resource = ApiResource.of(kind)
        existing = {
            child.metadata.name: child
            for child in await self.store.list(
                kind, namespace, {"matchLabels": {label: owner.metadata.name}}
            )
        }
        for body in desired:
            name = str(body["metadata"]["name"])
            stored = existing.pop(name, None)
            if stored is None:
                with contextlib.suppress(AlreadyExistsError):
                    await self.client.create_object(resource, namespace, body)
                continue
            if same(msgspec.to_builtins(stored), body):
                continue
            current = await self.client.get_object(resource, namespace, name)
            update(current, body)
            await self.client.replace_object(resource, namespace, name, current)
        for name in existing:
            with contextlib.suppress(NotFoundError):
                await self.client.delete_object(resource, namespace, name)
        return [Ref(kind.KIND, namespace, str(body["metadata"]["name"])) for body in desired]


class KindHandler(Protocol[R]):
    """One kind's controller logic. ``watches``: other kinds whose changes can change this
    kind's status (the index maps their objects to the dependents a reconcile reported)."""

    kind: type[R]
    watches: tuple[type[Resource], ...]

    async def reconcile(self, obj: R, ctx: ReconcileContext) -> Observed: ...

    async def aclose(self) -> None: ...


def _status_fields(kind: type[Resource]) -> frozenset[str] | None:
    """Wire names the kind's status schema declares (the CRDs are generated from these Structs);
    ``None`` when the status is free-form."""
    for info in msgspec.structs.fields(kind):
        if info.name != "status":
            continue
        for candidate in typing.get_args(info.type) or (info.type,):
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                return frozenset(f.encode_name for f in msgspec.structs.fields(candidate))
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(
    stored: Sequence[Mapping[str, Any]], wanted: Sequence[Condition], generation: int | None
) -> list[dict[str, Any]]:
    """``stored`` with ``wanted`` set by type (as ``meta.SetStatusCondition`` does): a condition
    whose status is unchanged keeps its ``lastTransitionTime``."""
    merged = [dict(c) for c in stored]
    for want in wanted:
        at = next((i for i, c in enumerate(merged) if c.get("type") == want.type), None)
        before = merged[at] if at is not None else None
        entry: dict[str, Any] = msgspec.to_builtins(want)
        if before is not None and before.get("status") == want.status:
            entry["lastTransitionTime"] = before.get("lastTransitionTime") or _now()
        else:
            entry["lastTransitionTime"] = _now()
        if generation is not None:
            entry["observedGeneration"] = generation
        if at is None:
            merged.append(entry)
        else:
            merged[at] = entry
    return merged


class ResourceControllers:
    """Runs the handlers; see the module docstring. ``run()`` until cancelled (leadership)."""

    def __init__(
        self,
        client: KubeClient,
        store: ResourceCache,
        recorder: EventRecorder,
        handlers: Sequence[KindHandler[Any]],
        *,
        workers: int = 4,
        check_limit: int = 4,
        check_timeout: float = 30.0,
    ) -> None:
        self._client = client
        self._store = store
        self._recorder = recorder
        self._writer = StatusWriter(client)
        self._handlers: dict[str, KindHandler[Any]] = {h.kind.KIND: h for h in handlers}
        self._status_fields = {name: _status_fields(h.kind) for name, h in self._handlers.items()}
        self._workers = max(1, workers)
        self._queue: KeyQueue[Ref] = KeyQueue()
        self.checks = BackgroundChecks(
            limit=check_limit, timeout=check_timeout, requeue=self._queue.add
        )
        self._dependents: dict[Ref, set[Ref]] = {}
        self._dependencies: dict[Ref, frozenset[Ref]] = {}
        self.reconciled: Counter[Ref] = Counter()
        """Finished reconciles per object (for tests and metrics); ``status_writes`` counts
        the ones that changed a status."""
        self.status_writes = 0

    # --- triggers -------------------------------------------------------------------------

    def _kinds(self) -> dict[str, type[Resource]]:
        kinds: dict[str, type[Resource]] = {}
        for handler in self._handlers.values():
            for kind in (handler.kind, *handler.watches):
                kinds.setdefault(kind.KIND, kind)
        return kinds

    def _changed(self, kind: str, event_type: str, key: tuple[str, str]) -> None:
        ref = Ref(kind, *key)
        if kind in self._handlers:
            if event_type == "DELETED":
                self._queue.forget(ref)
                self.checks.forget(ref)
                self._index(ref, ())
            else:
                self._queue.add(ref)
        for dependent in self._dependents.get(ref, ()):
            self._queue.add(dependent)

    def _index(self, dependent: Ref, dependencies: Iterable[Ref]) -> None:
        new = frozenset(dependencies)
        old = self._dependencies.get(dependent, frozenset())
        for gone in old - new:
            users = self._dependents.get(gone)
            if users is not None:
                users.discard(dependent)
                if not users:
                    del self._dependents[gone]
        for added in new - old:
            self._dependents.setdefault(added, set()).add(dependent)
        if new:
            self._dependencies[dependent] = new
        else:
            self._dependencies.pop(dependent, None)

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        subscriptions = []
        for name, kind in self._kinds().items():

            def listener(event_type: str, key: tuple[str, str], name: str = name) -> None:
                self._changed(name, event_type, key)

            subscriptions.append(self._store.subscribe(kind, listener))
        workers = [
            asyncio.create_task(self._work(), name=f"resource-reconcile-{i}")
            for i in range(self._workers)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for unsubscribe in subscriptions:
                unsubscribe()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.checks.close()
            self._queue.close()

    async def aclose(self) -> None:
        for handler in self._handlers.values():
            await handler.aclose()

    async def _work(self) -> None:
        failures: dict[Ref, int] = {}
        while True:
            ref = await self._queue.get()
            try:
                await self._reconcile(ref)
                failures.pop(ref, None)
            except Exception as exc:
                count = failures[ref] = failures.get(ref, 0) + 1
                if isinstance(exc, KubeError):
                    log.warning(
                        "resource reconcile failed; retrying", object=str(ref), error=str(exc)
                    )
                else:
                    log.exception("resource reconcile crashed; retrying", object=str(ref))
                self._queue.add_after(ref, min(0.05 * 2**count, 30.0))
            finally:
                self._queue.done(ref)

    async def _reconcile(self, ref: Ref) -> None:
        handler = self._handlers[ref.kind]
        obj = await self._store.get(handler.kind, ref.namespace, ref.name)
        if obj is None:
            return  # deleted (or undecodable: the cache logged it)
        context = ReconcileContext(ref, self._store, self._client, self.checks)
        observed = await handler.reconcile(obj, context)
        self._index(ref, observed.depends_on)
        await self._record(handler, obj, observed)
        if observed.requeue_after is not None:
            self._queue.add_after(ref, observed.requeue_after)
        self.reconciled[ref] += 1

    async def _record(self, handler: KindHandler[Any], obj: Resource, observed: Observed) -> None:
        status = getattr(obj, "status", None)
        stored: dict[str, Any] = msgspec.to_builtins(status) if status is not None else {}
        patch = dict(observed.status)
        if observed.conditions:
            patch["conditions"] = _conditions(
                stored.get("conditions") or [], observed.conditions, obj.metadata.generation
            )
        allowed = self._status_fields[handler.kind.KIND]
        if allowed is not None:
            patch = {key: value for key, value in patch.items() if key in allowed}
        if not patch or merge_patch(stored, patch) == stored:
            return
        meta = obj.metadata
        try:
            result = await self._writer.write_object(
                ApiResource.of(handler.kind), meta.namespace or "", meta.name, patch
            )
        except NotFoundError:
            return
        if not result.written:
            return
        self.status_writes += 1
        for event in observed.events:
            await self._recorder.record(obj, event.reason, event.message, type=event.type)
