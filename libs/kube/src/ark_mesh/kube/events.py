"""EventRecorder: Kubernetes Events about an object, the way ``kubectl describe`` shows them.

Events go to ``events.k8s.io/v1`` (what current Ark emits) with ``regarding`` pointing at the
object; a server that does not serve that API gets a ``core/v1`` Event with the same content
and ``involvedObject`` instead. Either way the event is readable through both APIs and
``kubectl get events --field-selector involvedObject.name=<name>`` finds it.

Recording is best effort, as in client-go: a failure is logged and reported as ``False``,
never raised, because an event must not fail the reconcile that emits it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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


class EventRecorder:
    """Emits events as ``controller`` (e.g. ``ark-mesh/controller``) from ``instance`` (pod)."""

    def __init__(self, client: KubeClient, *, controller: str, instance: str) -> None:
        if not controller or not instance:
            raise ValueError("an EventRecorder needs a controller name and an instance id")
        self._client = client
        self._controller = controller
        self._instance = instance
        self._events_api = True  # until the server shows it does not serve events.k8s.io

    async def record(
        self,
        regarding: Resource | ObjectReference,
        reason: str,
        note: str,
        *,
        type: EventType = "Normal",
        action: str | None = None,
    ) -> bool:
        """Record one event; ``False`` if it could not be stored (already logged)."""
        ref = regarding if isinstance(regarding, ObjectReference) else ObjectReference.of(regarding)
        if not ref.namespace:
            raise ValueError("events about cluster-scoped objects are not supported")
        now = datetime.now(UTC)
        name = f"{ref.name}.{now.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(4)}"
        note = note if len(note) <= _NOTE_LIMIT else note[: _NOTE_LIMIT - 3] + "..."
        try:
            if self._events_api:
                try:
                    await self._client.create_object(
                        EVENTS,
                        ref.namespace,
                        self._events_v1(name, ref, reason, note, type, action or reason, now),
                    )
                    return True
                except NotFoundError as exc:
                    if not _route_missing(exc):
                        raise
                    self._events_api = False
            await self._client.create_object(
                CORE_EVENTS,
                ref.namespace,
                self._core_v1(name, ref, reason, note, type, action or reason, now),
            )
            return True
        except KubeError as exc:
            log.warning(
                "event not recorded",
                reason=reason,
                object=ref.name,
                namespace=ref.namespace,
                error=exc.message,
            )
            return False

    def _events_v1(
        self,
        name: str,
        ref: ObjectReference,
        reason: str,
        note: str,
        type: str,
        action: str,
        now: datetime,
    ) -> dict[str, Any]:
        return {
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

    def _core_v1(
        self,
        name: str,
        ref: ObjectReference,
        reason: str,
        note: str,
        type: str,
        action: str,
        now: datetime,
    ) -> dict[str, Any]:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": ref.to_json(),
            "reason": reason,
            "message": note,
            "type": type,
            "action": action,
            "source": {"component": self._controller},
            "reportingComponent": self._controller,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": _micro_time(now),
            "count": 1,
        }


def _route_missing(exc: NotFoundError) -> bool:
    # "the server could not find the requested resource" (no such API), as opposed to
    # 'namespaces "x" not found', which the core/v1 API would answer the same way.
    return "could not find the requested resource" in exc.message
