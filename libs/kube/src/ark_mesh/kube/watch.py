"""List-then-watch that survives dropped connections and expired resourceVersions.

A plain watch loses events whenever its connection drops and it restarts from "now", and
repeats events when it restarts from an older list. :class:`ResumableWatch` keeps two things
instead: the resourceVersion of the last event (or bookmark) delivered, and the last
delivered version of every object. Then:

* a cut connection, a server-side timeout or a 5xx/429 → watch again *from that
  resourceVersion* (after a jittered backoff for errors): the server replays exactly what
  came after, so nothing is lost and nothing repeats;
* ``410 Expired`` (the history no longer reaches back that far) → list again and deliver the
  difference to what was delivered before as ADDED / MODIFIED / DELETED events marked
  ``synthetic`` — intermediate versions are gone, but the final state of every object
  arrives exactly once;
* an event whose object version was already delivered is dropped (belt and braces against
  servers that replay the boundary event).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ark_mesh.kube.client import ApiResource, KubeClient
from ark_mesh.kube.errors import (
    ResourceExpiredError,
    TooManyRequestsError,
    TransientKubeError,
    error_from_status,
)
from ark_mesh.kube.retry import Backoff, RetryPolicy
from ark_mesh.telemetry import get_logger

__all__ = ["ResumableWatch", "WatchEvent"]

log = get_logger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ObjectKey = tuple[str, str]
_CHANGE_TYPES: dict[str, EventType] = {
    "ADDED": "ADDED",
    "MODIFIED": "MODIFIED",
    "DELETED": "DELETED",
}


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]
    synthetic: bool = field(default=False)  # from a relist after 410, not the server's stream

    @property
    def key(self) -> ObjectKey:
        return _key(self.object)


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class ResumableWatch:
    """``async for event in ResumableWatch(client, resource, namespace): …`` — see module doc.

    ``synced`` is set once the consumer has taken every event of the initial list (the
    generator resumes only when the consumer asks for the next event). ``relists`` and
    ``reconnects`` count recoveries, for tests and metrics.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: ApiResource,
        namespace: str | None = None,
        *,
        label_selector: Mapping[str, Any] | str | None = None,
        timeout_seconds: int = 300,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._selector = label_selector
        self._timeout = timeout_seconds
        self._backoff = Backoff(retry or RetryPolicy(initial=0.05, maximum=5.0))
        self._known: dict[ObjectKey, dict[str, Any]] = {}
        self.resource_version: str | None = None
        self.synced = asyncio.Event()
        self.relists = 0
        self.reconnects = 0

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._run()

    async def _run(self) -> AsyncIterator[WatchEvent]:
        for event in await self._list_until_done():
            yield event
        self.synced.set()
        while True:
            try:
                async for event in self._watch_once():
                    yield event
            except ResourceExpiredError as exc:
                log.info(
                    "watch expired, relisting", resource=self._resource.plural, error=exc.message
                )
                self.relists += 1
                for event in await self._list_until_done():
                    yield event
            except TransientKubeError as exc:
                self.reconnects += 1
                floor = exc.retry_after if isinstance(exc, TooManyRequestsError) else 0.0
                log.info(
                    "watch interrupted, resuming",
                    resource=self._resource.plural,
                    resource_version=self.resource_version,
                    error=exc.message,
                )
                await self._backoff.sleep(floor)

    async def _list_until_done(self) -> list[WatchEvent]:
        while True:
            try:
                listed = await self._client.list_objects(
                    self._resource, self._namespace, label_selector=self._selector
                )
            except TransientKubeError as exc:
                floor = exc.retry_after if isinstance(exc, TooManyRequestsError) else 0.0
                await self._backoff.sleep(floor)
                continue
            self._backoff.reset()
            events = self._diff(listed.items, synthetic=self.synced.is_set())
            self.resource_version = listed.resource_version
            return events

    def _diff(self, items: list[dict[str, Any]], *, synthetic: bool) -> list[WatchEvent]:
        current = {_key(obj): obj for obj in items}
        events: list[WatchEvent] = []
        for key, obj in current.items():
            before = self._known.get(key)
            if before is None:
                events.append(WatchEvent("ADDED", obj, synthetic))
            elif _rv(before) != _rv(obj):
                events.append(WatchEvent("MODIFIED", obj, synthetic))
        for key, obj in self._known.items():
            if key not in current:
                events.append(WatchEvent("DELETED", obj, synthetic))
        self._known = current
        return events

    async def _watch_once(self) -> AsyncIterator[WatchEvent]:
        async with self._client.watch_stream(
            self._resource,
            self._namespace,
            resource_version=self.resource_version,
            label_selector=self._selector,
            timeout_seconds=self._timeout,
            bookmarks=True,
        ) as stream:
            async for raw in stream:
                self._backoff.reset()
                if raw.type == "BOOKMARK":
                    self.resource_version = _rv(raw.object) or self.resource_version
                    continue
                if raw.type == "ERROR":
                    code = raw.object.get("code")
                    raise error_from_status(int(code) if isinstance(code, int) else 500, raw.object)
                event_type = _CHANGE_TYPES.get(raw.type)
                if event_type is None:
                    continue
                key, version = _key(raw.object), _rv(raw.object)
                before = self._known.get(key)
                if event_type == "DELETED":
                    if before is None:
                        continue  # already delivered (e.g. by a relist diff)
                    del self._known[key]
                else:
                    if before is not None and _rv(before) == version:
                        continue  # this version was delivered already
                    self._known[key] = raw.object
                self.resource_version = version or self.resource_version
                yield WatchEvent(event_type, raw.object)
