"""EventRecorder: Kubernetes Events about an object, the way ``kubectl describe`` shows them.

Events go to ``events.k8s.io/v1`` (what current Ark emits, through client-go's
``tools/events`` recorder) with ``regarding`` pointing at the object; a server that does not
serve that API gets a ``core/v1`` Event shaped as client-go's older ``tools/record`` recorder
writes it (``firstTimestamp``, ``lastTimestamp``, ``count``, ``source.component``,
``reportingComponent``/``reportingInstance``). Either way the event is readable through both
APIs and ``kubectl get events --field-selector involvedObject.name=<name>`` finds it.

Repeats are folded into the first event instead of piling up, as both client-go recorders do:

* ``events.k8s.io/v1``: a repeat of the same ``action``/``reason``/``regarding`` within six
  minutes of the last sighting patches the first event's ``series`` (``count`` from 2 up,
  ``lastObservedTime``). That API refuses ``deprecatedCount``/``deprecatedLastTimestamp`` on
  create, so a series is the only way to say "it happened again"; ``kubectl get events``
  shows its count and last sighting. (client-go patches the first repeat and then only every
  30 minutes; this recorder patches each repeat, which costs the write a new event would.)
* ``core/v1``: a repeat with the same message patches ``count`` and ``lastTimestamp``, like
  client-go's event correlator.

A patch that finds the event gone (expired or deleted) records a new one. Recording is best
effort, as in client-go: a failure is logged and reported as ``False``, never raised, because
an event must not fail the reconcile that emits it.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from ark_mesh.contracts import Resource
from ark_mesh.kube.client import CORE_EVENTS, EVENTS, KubeClient
from ark_mesh.kube.errors import KubeError, NotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["EventRecorder", "ObjectReference"]

log = get_logger(__name__)

EventType = Literal["Normal", "Warning"]
_NOTE_LIMIT = 1024  # events.k8s.io rejects longer notes


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """What an event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None

    @classmethod
    def of(cls, obj: Resource) -> ObjectReference:
        meta = obj.metadata
        return cls(
            api_version=obj.api_version or type(obj).api_version_string(),
            kind=obj.kind or type(obj).KIND,
            namespace=meta.namespace or "",
            name=meta.name,
            uid=meta.uid,
            resource_version=meta.resource_version,
        )

    def to_json(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            ref["uid"] = self.uid
        if self.resource_version:
            ref["resourceVersion"] = self.resource_version
        return ref


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_SERIES_WINDOW: Final = timedelta(minutes=6)  # client-go ends a series after 6 idle minutes
_REMEMBERED: Final = 4096  # events remembered for folding repeats (client-go's cache size)


@dataclass(slots=True)
class _Recorded:
    """An event this recorder stored, kept to fold repeats into it."""

    name: str
    namespace: str
    core: bool  # stored through core/v1 (count/lastTimestamp) rather than events.k8s.io/v1
    count: int
    last_seen: datetime


class EventRecorder:
    """Emits events as ``controller`` (e.g. ``ark-mesh/controller``) from ``instance`` (pod)."""

    def __init__(self, client: KubeClient, *, controller: str, instance: str) -> None:
        if not controller or not instance:
            raise ValueError("an EventRecorder needs a controller name and an instance id")
        self._client = client
        self._controller = controller
        self._instance = instance
        self._events_api = True  # until the server shows it does not serve events.k8s.io
        self._recorded: OrderedDict[str, _Recorded] = OrderedDict()

    async def record(
        self,
        regarding: Resource | ObjectReference,
        reason: str,
        note: str,
        *,
        type: EventType = "Normal",
        action: str | None = None,
    ) -> bool:
        """Record one event (or fold a repeat into it); ``False`` if it could not be stored."""
        ref = regarding if isinstance(regarding, ObjectReference) else ObjectReference.of(regarding)
        if not ref.namespace:
            raise ValueError("events about cluster-scoped objects are not supported")
        now = datetime.now(UTC)
        note = note if len(note) <= _NOTE_LIMIT else note[: _NOTE_LIMIT - 3] + "..."
        action = action or reason
        try:
            if self._events_api:
                try:
                    return await self._record_events_v1(ref, reason, note, type, action, now)
                except NotFoundError as exc:
                    if not _route_missing(exc):
                        raise
                    self._events_api = False
            return await self._record_core_v1(ref, reason, note, type, now)
        except KubeError as exc:
            log.warning(
                "event not recorded",
                reason=reason,
                object=ref.name,
                namespace=ref.namespace,
                error=exc.message,
            )
            return False

    async def _record_events_v1(
        self, ref: ObjectReference, reason: str, note: str, type: str, action: str, now: datetime
    ) -> bool:
        # client-go's key for "the same event": not the note, not the type
        key = json.dumps(["events.k8s.io", action, reason, ref.to_json()], sort_keys=True)
        earlier = self._repeat_of(key, now)
        if earlier is not None and not earlier.core:
            earlier.count += 1
            series = {"count": earlier.count, "lastObservedTime": _micro_time(now)}
            if await self._patch(earlier, {"series": series}):
                return True
        name = _event_name(ref)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.namespace},
            "eventTime": _micro_time(now),
            "reportingController": self._controller,
            "reportingInstance": self._instance,
            "action": action,
            "reason": reason,
            "note": note,
            "type": type,
            "regarding": ref.to_json(),
        }
        await self._client.create_object(EVENTS, ref.namespace, body)
        self._remember(key, _Recorded(name, ref.namespace, False, 1, now))
        return True

    async def _record_core_v1(
        self, ref: ObjectReference, reason: str, note: str, type: str, now: datetime
    ) -> bool:
        # the correlator's key: source, object, type, reason and message
        key = json.dumps(["core", type, reason, note, ref.to_json()], sort_keys=True)
        earlier = self._repeat_of(key, now)
        if earlier is not None and earlier.core:
            earlier.count += 1
            if await self._patch(earlier, {"count": earlier.count, "lastTimestamp": _time(now)}):
                return True
        name = _event_name(ref)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": ref.to_json(),
            "reason": reason,
            "message": note,
            "type": type,
            "source": {"component": self._controller},
            "reportingComponent": self._controller,
            "reportingInstance": self._instance,
            "firstTimestamp": _time(now),
            "lastTimestamp": _time(now),
            "count": 1,
        }
        await self._client.create_object(CORE_EVENTS, ref.namespace, body)
        self._remember(key, _Recorded(name, ref.namespace, True, 1, now))
        return True

    def _repeat_of(self, key: str, now: datetime) -> _Recorded | None:
        earlier = self._recorded.get(key)
        if earlier is None:
            return None
        if now - earlier.last_seen > _SERIES_WINDOW:
            del self._recorded[key]
            return None
        earlier.last_seen = now
        self._recorded.move_to_end(key)
        return earlier

    def _remember(self, key: str, recorded: _Recorded) -> None:
        self._recorded[key] = recorded
        while len(self._recorded) > _REMEMBERED:
            self._recorded.popitem(last=False)

    async def _patch(self, earlier: _Recorded, patch: dict[str, Any]) -> bool:
        """Fold a repeat into ``earlier``; ``False`` when it is gone and a new one is needed."""
        resource = CORE_EVENTS if earlier.core else EVENTS
        try:
            await self._client.patch_object(resource, earlier.namespace, earlier.name, patch)
        except NotFoundError as exc:
            if _route_missing(exc):
                raise
            return False
        return True


def _event_name(ref: ObjectReference) -> str:
    # client-go's naming: the object's name and the time in nanoseconds, in hex
    return f"{ref.name}.{time.time_ns():x}"


def _route_missing(exc: NotFoundError) -> bool:
    # "the server could not find the requested resource" (no such API), as opposed to
    # 'namespaces "x" not found', which the core/v1 API would answer the same way.
    return "could not find the requested resource" in exc.message
