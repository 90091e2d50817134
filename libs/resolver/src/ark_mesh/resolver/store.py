"""An in-memory :class:`~ark_mesh.resolver.ports.ResourceStore`.

Broker-only installs have no Kubernetes API to read Agents and Models from; they load a
directory of the same YAML manifests a cluster would get (``kubectl apply -f`` form, several
documents per file allowed). Tests build the store from resource objects directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from ark_mesh.contracts import Resource
from ark_mesh.resolver.errors import InvalidSpecError
from ark_mesh.resolver.resources import RESOLVER_KINDS
from ark_mesh.resolver.selectors import matches

__all__ = ["InMemoryResourceStore", "ManifestError"]

R = TypeVar("R", bound=Resource)


class ManifestError(InvalidSpecError):
    """A manifest of a known kind that does not decode; the message names file and field."""


class InMemoryResourceStore:
    """Resources kept in a dict, listed in insertion order (like a stable API server listing)."""

    def __init__(self, resources: Iterable[Resource] = (), *, namespace: str = "default") -> None:
        self.default_namespace = namespace
        self._items: dict[tuple[str, str, str], Resource] = {}
        self.skipped: list[str] = []
        for resource in resources:
            self.put(resource)

    def put(self, resource: Resource) -> None:
        """Add or replace a resource; one without a namespace lands in the default namespace."""
        if not resource.metadata.name:
            raise ManifestError(f"{resource.kind or type(resource).__name__} has no metadata.name")
        if not resource.metadata.namespace and type(resource).NAMESPACED:
            resource.metadata.namespace = self.default_namespace
        key = (type(resource).KIND, resource.metadata.namespace or "", resource.metadata.name)
        self._items[key] = resource

    def remove(self, kind: type[Resource], namespace: str, name: str) -> None:
        self._items.pop((kind.KIND, namespace, name), None)

    async def get(self, kind: type[R], namespace: str, name: str) -> R | None:
        found = self._items.get((kind.KIND, namespace, name))
        return found if isinstance(found, kind) else None

    async def list(
        self, kind: type[R], namespace: str, label_selector: Mapping[str, Any] | None = None
    ) -> list[R]:
        return [
            item
            for (item_kind, item_namespace, _), item in self._items.items()
            if item_kind == kind.KIND
            and item_namespace == namespace
            and isinstance(item, kind)
            and matches(label_selector, item.metadata.labels)
        ]

    # ------------------------------------------------------------------ manifests

    def load_documents(self, documents: Iterable[Any], *, source: str = "manifest") -> None:
        """Add decoded YAML/JSON documents; kinds the resolver does not read are skipped."""
        for index, document in enumerate(documents):
            if document is None:
                continue
            if not isinstance(document, Mapping):
                raise ManifestError(f"{source} document {index} is not a mapping")
            if document.get("kind") == "List" and isinstance(document.get("items"), list):
                self.load_documents(document["items"], source=f"{source} document {index}")
                continue
            kind_name = document.get("kind")
            kind = RESOLVER_KINDS.get(kind_name) if isinstance(kind_name, str) else None
            if kind is None:
                self.skipped.append(f"{source} document {index}: kind {kind_name!r}")
                continue
            try:
                self.put(msgspec.convert(document, kind))
            except msgspec.ValidationError as exc:
                name = (document.get("metadata") or {}).get("name", "?")
                raise ManifestError(f"{source}: {kind_name} '{name}' is invalid: {exc}") from exc

    def load_path(self, path: str | Path) -> None:
        """Load one manifest file, or every ``.yaml``/``.yml``/``.json`` file under a directory."""
        root = Path(path)
        files = (
            sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
            if root.is_dir()
            else [root]
        )
        for file in files:
            try:
                documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError) as exc:
                raise ManifestError(f"cannot read manifest {file}: {exc}") from exc
            self.load_documents(documents, source=str(file))

    @classmethod
    def from_path(cls, path: str | Path, *, namespace: str = "default") -> InMemoryResourceStore:
        store = cls(namespace=namespace)
        store.load_path(path)
        return store
