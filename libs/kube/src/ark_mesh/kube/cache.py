"""A watch-backed, read-only view of resources: the resolver's ``ResourceStore`` port.

The resolver reads Agents, Models, Teams… many times per query; asking the API server each
time would put the API server on the hot path of every LLM call. The cache lists and watches
each kind once (lazily, on first use, or up front via ``kinds=``) and answers
``get``/``list`` from memory, decoded into the contracts Structs. It satisfies, structurally::

    class ResourceStore(Protocol):
        async def get(self, kind: type[R], namespace: str, name: str) -> R | None: ...
        async def list(self, kind: type[R], namespace: str,
                       label_selector: Mapping[str, Any] | None = None) -> list[R]: ...

A kind whose watch failed permanently (e.g. RBAC forbids it) raises that error on access
rather than serving stale or empty answers.

Controllers that react to changes (not only read) :meth:`ResourceCache.subscribe` to a kind: they
are told the key of every object the watch delivers, so one watch per kind feeds both the
resolver's reads and every controller's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import msgspec

from ark_mesh.contracts import Resource
from ark_mesh.kube.client import ApiResource, KubeClient
from ark_mesh.kube.selectors import selector_matches
from ark_mesh.kube.watch import ResumableWatch, WatchEvent
from ark_mesh.telemetry import get_logger

__all__ = ["ResourceCache"]

log = get_logger(__name__)

R = TypeVar("R", bound=Resource)

ObjectKey = tuple[str, str]
ChangeListener = Callable[[str, ObjectKey], None]
"""Called with the event type (ADDED, MODIFIED, DELETED) and the (namespace, name) key, after
the cache has applied the change, so a listener that reads the cache sees the new state."""


class _KindCache(Generic[R]):
    def __init__(
        self, client: KubeClient, kind: type[R], namespace: str | None, sync_limit: float
    ) -> None:
        self.kind = kind
        self.sync_limit = sync_limit
        self.objects: dict[tuple[str, str], R] = {}
        self.watch = ResumableWatch(client, ApiResource.of(kind), namespace)
        self.changed = asyncio.Condition()
        self.listeners: list[ChangeListener] = []
        self.failure: BaseException | None = None
        self.task = asyncio.create_task(self._follow(), name=f"cache-{kind.PLURAL}")

    async def _follow(self) -> None:
        try:
            async for event in self.watch:
                self._apply(event)
                for listener in list(self.listeners):
                    listener(event.type, event.key)
                async with self.changed:
                    self.changed.notify_all()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced to readers instead of dying silently
            self.failure = exc
            log.error("resource cache watch failed", kind=self.kind.KIND, error=repr(exc))
            async with self.changed:
                self.changed.notify_all()

    def _apply(self, event: WatchEvent) -> None:
        if event.type == "DELETED":
            self.objects.pop(event.key, None)
            return
        try:
            self.objects[event.key] = msgspec.convert(event.object, self.kind)
        except msgspec.ValidationError as exc:
            # One malformed object must not hide the others; readers see it as absent.
            self.objects.pop(event.key, None)
            log.warning(
                "undecodable object skipped",
                kind=self.kind.KIND,
                name=event.key[1],
                namespace=event.key[0],
                error=str(exc),
            )

    async def ready(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.watch.synced.is_set():
            return
        synced = asyncio.create_task(self.watch.synced.wait())
        try:
            await asyncio.wait(
                {synced, self.task}, timeout=self.sync_limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            synced.cancel()
        if self.failure is not None:
            raise self.failure
        if not self.watch.synced.is_set():
            raise TimeoutError(f"the {self.kind.KIND} cache did not sync within {self.sync_limit}s")


class ResourceCache:
    """See the module docstring. Use ``async with ResourceCache(client) as store:``."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        kinds: Iterable[type[Resource]] = (),
        sync_timeout: float = 30.0,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._initial_kinds = tuple(kinds)
        self._sync_timeout = sync_timeout
        self._kinds: dict[type[Resource], _KindCache[Any]] = {}

    async def start(self) -> None:
        for kind in self._initial_kinds:
            await self._cache_for(kind)

    async def stop(self) -> None:
        caches, self._kinds = list(self._kinds.values()), {}
        for cache in caches:
            cache.task.cancel()
        for cache in caches:
            with contextlib.suppress(asyncio.CancelledError):
                await cache.task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def subscribe(self, kind: type[Resource], listener: ChangeListener) -> Callable[[], None]:
        """Tell ``listener`` about every change of ``kind`` from now on (starting its watch if
        nobody has yet); objects already cached are reported first, as ADDED, so a subscriber
        that arrives late misses nothing. A listener must not block: it runs inside the watch.
        Returns the function that ends the subscription."""
        cache = self._kinds.get(kind)
        if cache is None:
            cache = self._kinds[kind] = _KindCache(
                self._client, kind, self._namespace, self._sync_timeout
            )
        cache.listeners.append(listener)
        for key in list(cache.objects):
            listener("ADDED", key)

        def unsubscribe() -> None:
            if listener in cache.listeners:
                cache.listeners.remove(listener)

        return unsubscribe

    def _check_namespace(self, namespace: str) -> None:
        if self._namespace is not None and namespace != self._namespace:
            raise ValueError(
                f"this cache follows namespace {self._namespace!r}; it cannot answer for "
                f"{namespace!r}"
            )

    async def _cache_for(self, kind: type[R]) -> _KindCache[R]:
        cache = self._kinds.get(kind)
        if cache is None:
            cache = _KindCache(self._client, kind, self._namespace, self._sync_timeout)
            self._kinds[kind] = cache
        await cache.ready()
        return cache

    # --- the ResourceStore port ----------------------------------------------------------

    async def get(self, kind: type[R], namespace: str, name: str) -> R | None:
        self._check_namespace(namespace)
        cache = await self._cache_for(kind)
        return cache.objects.get((namespace if kind.NAMESPACED else "", name))

    async def list(
        self, kind: type[R], namespace: str, label_selector: Mapping[str, Any] | None = None
    ) -> list[R]:
        """Objects of ``kind`` in ``namespace`` matching the LabelSelector, sorted by name."""
        self._check_namespace(namespace)
        cache = await self._cache_for(kind)
        scope = namespace if kind.NAMESPACED else ""
        return [
            obj
            for (ns, _), obj in sorted(cache.objects.items())
            if ns == scope and selector_matches(label_selector, obj.metadata.labels)
        ]

    # --- beyond the port -----------------------------------------------------------------

    async def wait_for(
        self,
        kind: type[R],
        namespace: str,
        name: str,
        predicate: Callable[[R | None], bool],
    ) -> R | None:
        """Until ``predicate`` holds for the cached object (``None``: absent); returns it.

        Bound the wait with ``asyncio.timeout``.
        """
        cache = await self._cache_for(kind)
        key = (namespace if kind.NAMESPACED else "", name)
        async with cache.changed:
            while not predicate(cache.objects.get(key)):
                if cache.failure is not None:
                    raise cache.failure
                await cache.changed.wait()
        return cache.objects.get(key)

    def cached(self, kind: type[R], namespace: str, name: str) -> R | None:
        """The object as cached right now, without waiting for a sync: for change listeners,
        which run inside the watch and must not block (``None`` if absent or not watched)."""
        cache = self._kinds.get(kind)
        if cache is None:
            return None
        found: R | None = cache.objects.get((namespace if kind.NAMESPACED else "", name))
        return found

    def failure(self, kind: type[Resource]) -> BaseException | None:
        cache = self._kinds.get(kind)
        return cache.failure if cache is not None else None
