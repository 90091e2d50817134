"""Which resource types are served right now, and the discovery documents describing them.

Built-in kinds are always present; CRDs come and go as CustomResourceDefinition objects are
created and deleted, so discovery changes at run time just like on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ark_mesh.testing.k8s.admission import WEBHOOK_CONFIGURATION_TYPES
from ark_mesh.testing.k8s.resources import (
    BUILTIN_TYPES,
    CRD_RESOURCE,
    ResourceType,
    StorageKey,
    crd_to_types,
)

__all__ = ["Registry"]


class Registry:
    """Served resource types by (group, version, plural), plus group/version discovery."""

    def __init__(self, *, disabled_apis: Iterable[str] = ()) -> None:
        # like kube-apiserver --runtime-config=<group/version>=false: e.g. a cluster without
        # events.k8s.io/v1, to test a client's fallback
        self._disabled = frozenset(disabled_apis)
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its served types
        for rt in (*BUILTIN_TYPES, CRD_RESOURCE, *WEBHOOK_CONFIGURATION_TYPES):
            self._add(rt)
        self._builtin = frozenset(self._types)

    def _add(self, rt: ResourceType) -> None:
        if rt.api_version in self._disabled:
            return
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_storage(self, storage: StorageKey) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.storage == storage]

    def storage_type(self, storage: StorageKey) -> ResourceType | None:
        """A served type of ``storage`` (any: they share objects); ``None`` if none is served."""
        types = self.by_storage(storage)
        return types[0] if types else None

    def storages_named(self, plural: str, group: str | None = None) -> set[StorageKey]:
        return {
            rt.storage
            for (g, _, p), rt in self._types.items()
            if p == plural and (group is None or g == group)
        }

    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceType]:
        """Serve a CRD's versions, except those a built-in kind already serves.

        A CRD may name a built-in resource (``roles.rbac.authorization.k8s.io``): a real
        server accepts the object, but requests keep reaching the built-in handler because it
        comes first in the delegation chain. The shadowed versions are not registered here, so
        deleting that CRD later never touches the built-in objects either.
        """
        name = str(crd["metadata"]["name"])
        self.unregister_crd(name)
        types = [
            rt for rt in crd_to_types(crd) if (rt.group, rt.version, rt.plural) not in self._builtin
        ]
        for rt in types:
            self._add(rt)
        self._crd_types[name] = types
        return types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        removed = self._crd_types.pop(name, [])
        for rt in removed:
            self._types.pop((rt.group, rt.version, rt.plural), None)
        return removed

    def crd_types(self, name: str) -> list[ResourceType]:
        return list(self._crd_types.get(name, []))

    # --- discovery ---------------------------------------------------------------------------

    def group_versions(self) -> dict[str, list[str]]:
        """Versions per group (core group ``""`` included), preferred version first."""
        found: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            versions = found.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        for versions in found.values():
            versions.sort(key=_version_priority)
        return found

    def resources_in(self, group: str, version: str) -> Iterable[ResourceType]:
        return sorted(
            (rt for (g, v, _), rt in self._types.items() if g == group and v == version),
            key=lambda rt: rt.plural,
        )

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = list(self.resources_in(group, version))
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in types:
            resources.append(rt.api_resource())
            for sub in rt.subresources():
                resources.append(
                    {
                        "name": f"{rt.plural}/{sub}",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"] if sub == "status" else ["update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(group)
        if not group or not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = [self.api_group(group) for group in sorted(self.group_versions()) if group]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {"": 0, "beta": 1, "alpha": 2}[stage or ""]
    return (rank, -int(major), -int(minor or 0), version)
