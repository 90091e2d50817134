"""Direct queries through the broker: Query resources, written the way Ark's ark-api writes them.

``reconciliation: direct`` (or ``inController``/``standalone``) on ``POST /v1/queries`` creates a
Query resource instead of publishing the work itself; from then on the query is the
controller's, exactly as if ``kubectl`` or Ark's API had created it (the admission webhooks see
it, the controller picks its mode). Reads, updates, cancels and deletes by name reach the
resource. Objects are kept as the API server returns them (plain JSON), so ``status`` is
passed through as ark-api passes it: raw.

Query mirrors of broker-mode queries (label :data:`~ark_mesh.contracts.ark.BROKER_MIRROR_LABEL`)
are not direct queries: the broker's read model answers for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ark_mesh.broker.bodies import is_name
from ark_mesh.broker.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnavailableError,
)
from ark_mesh.broker.responses import QueryDetailResponse, QueryResponse
from ark_mesh.contracts import Query
from ark_mesh.contracts.ark import BROKER_MIRROR_LABEL
from ark_mesh.kube import (
    AlreadyExistsError,
    ApiResource,
    InvalidError,
    KubeClient,
    KubeError,
    PermanentKubeError,
)
from ark_mesh.kube import ConflictError as KubeConflictError
from ark_mesh.kube import (
    NotFoundError as KubeNotFoundError,
)
from ark_mesh.telemetry import get_logger

__all__ = ["DirectQueries", "detail", "is_mirror", "summary"]

_log = get_logger(__name__)

_QUERIES = ApiResource.of(Query)
_API_VERSION = "ark.mckinsey.com/v1alpha1"
_SPEC_FIELDS = (
    "memory",
    "parameters",
    "selector",
    "serviceAccount",
    "sessionId",
    "conversationId",
    "target",
    "timeout",
    "ttl",
    "cancel",
    "overrides",
)


def is_mirror(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(BROKER_MIRROR_LABEL) == "true"


def _api_error(exc: KubeError, *, name: str) -> ApiError:
    """What the API server said, as the broker's error (4xx naming the field when it can)."""
    if isinstance(exc, KubeNotFoundError):
        return NotFoundError(f"query {name!r} not found", field="name")
    if isinstance(exc, AlreadyExistsError):
        return ConflictError(f"a Query named {name!r} already exists", field="name")
    if isinstance(exc, InvalidError):
        field = exc.causes[0].field if exc.causes else None
        if field and field.startswith("spec."):
            field = field[len("spec.") :]
        return BadRequestError(f"the Query was refused: {exc}", field=field or "body")
    if isinstance(exc, KubeConflictError):
        return ConflictError(f"query {name!r} changed meanwhile; retry: {exc}", field="name")
    if isinstance(exc, PermanentKubeError):
        # Forbidden (RBAC), a webhook's denial, a namespace that does not exist …
        status = exc.code if exc.code is not None and 400 <= exc.code < 500 else 422
        return BadRequestError(f"the API server refused: {exc}", field="body", status=status)
    return UnavailableError(f"Kubernetes is unavailable: {exc}")


def summary(obj: Mapping[str, Any]) -> QueryResponse:
    """ark-api's ``QueryResponse`` of a Query resource."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind = spec.get("type") or "user"
    return QueryResponse(
        id=str(meta.get("uid") or ""),
        reconciliation="direct",
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or ""),
        type="messages" if kind == "messages" else "user",
        input=spec.get("input", "" if kind == "user" else []),
        memory=spec.get("memory"),
        session_id=spec.get("sessionId"),
        conversation_id=spec.get("conversationId"),
        status=obj.get("status"),
        creation_timestamp=meta.get("creationTimestamp"),
    )


def detail(obj: Mapping[str, Any]) -> QueryDetailResponse:
    """ark-api's ``QueryDetailResponse`` of a Query resource. A spec field the API server holds
    in a shape this broker does not read (an older or newer CRD) is left out rather than
    failing the answer; ``metadata`` and ``status`` are passed through raw."""
    meta, spec = dict(obj.get("metadata") or {}), obj.get("spec") or {}
    kind = spec.get("type") or "user"
    values = {field: spec.get(field) for field in _SPEC_FIELDS if spec.get(field) is not None}
    base = {
        "id": str(meta.get("uid") or ""),
        "reconciliation": "direct",
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "type": "messages" if kind == "messages" else "user",
        "input": spec.get("input", "" if kind == "user" else []),
        "metadata": meta,
        "status": obj.get("status"),
    }
    for field in list(values):
        try:
            msgspec.convert({**base, field: values[field]}, QueryDetailResponse)
        except msgspec.ValidationError as exc:
            _log.warning("query field not shown", name=base["name"], field=field, error=str(exc))
            del values[field]
    return msgspec.convert({**base, **values}, QueryDetailResponse)


class DirectQueries:
    """Query resources of the caller's namespace (= its tenant), through ``kube``."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def create(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        annotations: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        if labels:
            metadata["labels"] = dict(labels)
        body = {"apiVersion": _API_VERSION, "kind": "Query", "metadata": metadata, "spec": spec}
        try:
            return await self.kube.create_object(_QUERIES, namespace, body)
        except KubeError as exc:
            raise _api_error(exc, name=name) from exc

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Query, or ``None`` (also for a broker mirror, and a name that cannot be one)."""
        if not is_name(name):
            return None
        try:
            obj = await self.kube.get_object(_QUERIES, namespace, name)
        except KubeNotFoundError:
            return None
        except PermanentKubeError:
            return None  # a name the API server refuses as a name: no such query
        except KubeError as exc:
            raise _api_error(exc, name=name) from exc
        return None if is_mirror(obj) else obj

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        try:
            found = await self.kube.list_objects(_QUERIES, namespace)
        except KubeError as exc:
            raise _api_error(exc, name="*") from exc
        return [obj for obj in found.items if not is_mirror(obj)]

    async def update(
        self,
        namespace: str,
        name: str,
        changes: Mapping[str, Any],
        *,
        annotations: Mapping[str, str],
    ) -> dict[str, Any]:
        """Replace the spec fields in ``changes`` (ark-api's PUT: read, change, write back;
        a write that lost to another is a 409 the client retries)."""
        current = await self.get(namespace, name)
        if current is None:
            raise NotFoundError(f"query {name!r} not found", field="name")
        current.setdefault("spec", {}).update(changes)
        if annotations:
            meta = current.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
        try:
            return await self.kube.replace_object(_QUERIES, namespace, name, current)
        except KubeError as exc:
            raise _api_error(exc, name=name) from exc

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]:
        if await self.get(namespace, name) is None:
            raise NotFoundError(f"query {name!r} not found", field="name")
        try:
            return await self.kube.patch_object(
                _QUERIES, namespace, name, {"spec": {"cancel": True}}
            )
        except KubeError as exc:
            raise _api_error(exc, name=name) from exc

    async def delete(self, namespace: str, name: str) -> None:
        if await self.get(namespace, name) is None:
            raise NotFoundError(f"query {name!r} not found", field="name")
        try:
            await self.kube.delete_object(_QUERIES, namespace, name)
        except KubeError as exc:
            raise _api_error(exc, name=name) from exc
