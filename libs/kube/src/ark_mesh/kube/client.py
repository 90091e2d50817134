"""Typed access to Kubernetes objects: contracts Structs in, contracts Structs out.

Two levels on one class. The *object* level (``get_object``, ``patch_object``…) speaks plain
JSON-ready dicts for any resource (Leases, Events); the *typed* level (``get``, ``list``,
``create``…) takes a contracts resource type such as ``Query`` and decodes answers with msgspec
straight from the bytes. Errors are the adapter's (:mod:`ark_mesh.kube.errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import msgspec

from ark_mesh.contracts import Resource
from ark_mesh.kube.errors import UndecodableError, error_from_status
from ark_mesh.kube.selectors import selector_to_query
from ark_mesh.kube.transport import ApiClientTransport, HttpResponse, Query, Transport

__all__ = [
    "CORE_EVENTS",
    "EVENTS",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "ApiResource",
    "KubeClient",
    "ObjectList",
    "RawWatchEvent",
]

R = TypeVar("R", bound=Resource)

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"


@dataclass(frozen=True, slots=True)
class ApiResource:
    """REST coordinates of a resource type."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @classmethod
    def of(cls, kind: type[Resource]) -> ApiResource:
        return cls(kind.GROUP, kind.VERSION, kind.PLURAL, kind.KIND, kind.NAMESPACED)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            if not name:
                raise ValueError(f"an empty name addresses no {self.kind}")
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


LEASES: Final = ApiResource("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS: Final = ApiResource("events.k8s.io", "v1", "events", "Event")
CORE_EVENTS: Final = ApiResource("", "v1", "events", "Event")


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[dict[str, Any]]
    resource_version: str


class RawWatchEvent(msgspec.Struct, frozen=True):
    """One line of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."""

    type: str
    object: dict[str, Any]


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 (wire name)
    # ``continue`` is a Python keyword, hence the rename
    continue_: str | None = msgspec.field(default=None, name="continue")


class _RawList(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] | None = None


_EVENT_DECODER: Final = msgspec.json.Decoder(RawWatchEvent)
_LIST_DECODER: Final = msgspec.json.Decoder(_RawList)


class KubeClient:
    """The adapter's API client; see the module docstring."""

    def __init__(self, transport: Transport, *, page_size: int = 500) -> None:
        self.transport = transport
        self._page_size = page_size

    @classmethod
    async def from_kubeconfig(
        cls, path: str | None = None, *, context: str | None = None
    ) -> KubeClient:
        return cls(await ApiClientTransport.from_kubeconfig(path, context=context))

    @classmethod
    def in_cluster(cls) -> KubeClient:
        return cls(ApiClientTransport.in_cluster())

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> HttpResponse:
        response = await self.transport.request(
            method, path, query=query, body=body, content_type=content_type
        )
        if response.status >= 300:
            try:
                status = response.json()
            except ValueError:
                status = {"message": response.body.decode(errors="replace")[:500]}
            raise error_from_status(
                response.status,
                status if isinstance(status, Mapping) else None,
                response.headers,
            )
        return response

    @staticmethod
    def _decode(kind: type[R], data: bytes | msgspec.Raw) -> R:
        try:
            return msgspec.json.decode(data, type=kind)
        except msgspec.ValidationError as exc:
            raise UndecodableError(f"{kind.KIND}: {exc}") from exc

    @staticmethod
    def _object(response: HttpResponse) -> dict[str, Any]:
        body = response.json()
        if not isinstance(body, dict):
            raise UndecodableError(f"expected a JSON object, got {type(body).__name__}")
        return body

    # --- object level ----------------------------------------------------------------------

    async def get_object(
        self, resource: ApiResource, namespace: str | None, name: str
    ) -> dict[str, Any]:
        return self._object(await self._call("GET", resource.path(namespace, name)))

    async def list_objects(
        self,
        resource: ApiResource,
        namespace: str | None,
        *,
        label_selector: Mapping[str, Any] | str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        """Every matching object, following ``continue`` tokens page by page."""
        items: list[dict[str, Any]] = []
        resource_version = ""
        async for page_rv, raw_items in self._pages(
            resource, namespace, label_selector, field_selector
        ):
            resource_version = resource_version or page_rv
            items.extend(msgspec.json.decode(raw) for raw in raw_items)
        return ObjectList(items, resource_version)

    async def _pages(
        self,
        resource: ApiResource,
        namespace: str | None,
        label_selector: Mapping[str, Any] | str | None,
        field_selector: str | None,
    ) -> AsyncIterator[tuple[str, list[msgspec.Raw]]]:
        base: list[tuple[str, str]] = [("limit", str(self._page_size))]
        selector = selector_to_query(label_selector)
        if selector:
            base.append(("labelSelector", selector))
        if field_selector:
            base.append(("fieldSelector", field_selector))
        token: str | None = None
        while True:
            query = [*base, ("continue", token)] if token else base
            response = await self._call("GET", resource.path(namespace), query=query)
            page = _LIST_DECODER.decode(response.body)
            yield page.metadata.resourceVersion, page.items or []
            token = page.metadata.continue_
            if not token:
                return

    async def create_object(
        self, resource: ApiResource, namespace: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._object(await self._call("POST", resource.path(namespace), body=dict(body)))

    async def replace_object(
        self,
        resource: ApiResource,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, subresource)
        return self._object(await self._call("PUT", path, body=dict(body)))

    async def patch_object(
        self,
        resource: ApiResource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, subresource)
        body: Any = dict(patch) if isinstance(patch, Mapping) else [dict(op) for op in patch]
        return self._object(await self._call("PATCH", path, body=body, content_type=patch_type))

    async def delete_object(
        self,
        resource: ApiResource,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> None:
        """Delete (or mark for deletion, with finalizers); preconditions guard the right object."""
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        if preconditions:
            options["preconditions"] = preconditions
        await self._call("DELETE", resource.path(namespace, name), body=options)

    @contextlib.asynccontextmanager
    async def watch_stream(
        self,
        resource: ApiResource,
        namespace: str | None,
        *,
        resource_version: str | None,
        label_selector: Mapping[str, Any] | str | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
    ) -> AsyncIterator[AsyncIterator[RawWatchEvent]]:
        """One watch request (no resuming: see :class:`~ark_mesh.kube.watch.ResumableWatch`)."""
        query: list[tuple[str, str]] = [
            ("watch", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        selector = selector_to_query(label_selector)
        if selector:
            query.append(("labelSelector", selector))
        async with self.transport.stream(
            resource.path(namespace), query=query, request_timeout=timeout_seconds + 30
        ) as lines:
            yield _events(lines)

    # --- typed level -----------------------------------------------------------------------

    async def get(self, kind: type[R], namespace: str | None, name: str) -> R:
        """The object, decoded; raises :class:`~ark_mesh.kube.errors.NotFoundError` if absent."""
        response = await self._call("GET", ApiResource.of(kind).path(namespace, name))
        return self._decode(kind, response.body)

    async def list(
        self,
        kind: type[R],
        namespace: str | None,
        *,
        label_selector: Mapping[str, Any] | str | None = None,
        field_selector: str | None = None,
    ) -> list[R]:
        """Every matching object (``namespace=None``: across namespaces), in server order."""
        found: list[R] = []
        async for _, raw_items in self._pages(
            ApiResource.of(kind), namespace, label_selector, field_selector
        ):
            found.extend(self._decode(kind, raw) for raw in raw_items)
        return found

    async def create(self, obj: R) -> R:
        kind = type(obj)
        body = msgspec.to_builtins(obj)
        response = await self._call(
            "POST", ApiResource.of(kind).path(obj.metadata.namespace), body=body
        )
        return self._decode(kind, response.body)

    async def patch(
        self,
        kind: type[R],
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str | None = None,
    ) -> R:
        path = ApiResource.of(kind).path(namespace, name, subresource)
        body: Any = dict(patch) if isinstance(patch, Mapping) else [dict(op) for op in patch]
        response = await self._call("PATCH", path, body=body, content_type=patch_type)
        return self._decode(kind, response.body)

    async def delete(self, kind: type[Resource], namespace: str | None, name: str) -> None:
        await self.delete_object(ApiResource.of(kind), namespace, name)


async def _events(lines: AsyncIterator[bytes]) -> AsyncIterator[RawWatchEvent]:
    async for line in lines:
        try:
            yield _EVENT_DECODER.decode(line)
        except msgspec.DecodeError as exc:
            raise UndecodableError(f"malformed watch event: {line[:200]!r}") from exc
