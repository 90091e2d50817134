"""Where a service reads Agents, Models, Teams…: a Kubernetes watch cache, or manifests.

Every reconciler that runs the resolver needs the same thing — a
:class:`~ark_mesh.resolver.ResourceStore` it can ask whether it is ready and close — and reads
it from the same ``resources`` config section, so one Helm values block feeds them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ark_mesh.contracts import Resource
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.kube import KubeClient, ResourceCache
from ark_mesh.resolver import RESOLVER_KINDS, InMemoryResourceStore, ResourceStore
from ark_mesh.service.errors import ResourceSourceError
from ark_mesh.service.settings import KubernetesConfig
from ark_mesh.telemetry import get_logger

__all__ = ["ResourceSource", "ResourcesConfig", "open_resources"]

log = get_logger(__name__)


class ResourcesConfig(ConfigSection, frozen=True, kw_only=True):
    """Where Agents, Models, Teams, Tools, Memories, ConfigMaps and Secrets are read from.

    ``kubernetes``: a watch-backed cache of the cluster (``kubeconfig`` path, else the pod's
    in-cluster credentials); ``namespace`` limits it to one namespace (least-privilege RBAC),
    ``preload`` lists the kinds listed and watched before the service reports ready (others are
    watched on first use). ``manifests``: a file or directory of YAML manifests, for broker-only
    installs without a cluster; objects without a namespace land in ``default_namespace``.
    """

    source: Literal["kubernetes", "manifests"] = "kubernetes"
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    preload: tuple[str, ...] = ("Agent", "Model", "Team", "Tool", "Memory")
    sync_timeout: float = 30.0
    manifests: str | None = None
    default_namespace: str = "default"

    def kubernetes(self) -> KubernetesConfig:
        """The cluster connection these settings name (flat keys, kept for the chart's shape)."""
        return KubernetesConfig(
            kubeconfig=self.kubeconfig, context=self.context, namespace=self.namespace
        )


@dataclass
class ResourceSource:
    """An opened resource store with its readiness and its cleanup."""

    store: ResourceStore
    description: str
    _cache: ResourceCache | None = None
    _client: KubeClient | None = None
    _preloaded: tuple[type[Resource], ...] = field(default_factory=tuple)

    def ready(self) -> bool:
        """Manifests are ready once loaded; a cache once every preloaded kind is synced and
        none of their watches has failed."""
        if self._cache is None:
            return True
        return all(self._cache.failure(kind) is None for kind in self._preloaded)

    async def close(self) -> None:
        if self._cache is not None:
            await self._cache.stop()
        if self._client is not None:
            await self._client.close()


def _kinds(names: tuple[str, ...]) -> tuple[type[Resource], ...]:
    unknown = [name for name in names if name not in RESOLVER_KINDS]
    if unknown:
        raise ResourceSourceError(
            f"resources.preload: unknown kind(s) {unknown}; known: {sorted(RESOLVER_KINDS)}"
        )
    return tuple(RESOLVER_KINDS[name] for name in names)


def _load_manifests(config: ResourcesConfig) -> ResourceSource:
    if not config.manifests:
        raise ResourceSourceError(
            "resources.source is 'manifests' but resources.manifests names no file or directory"
        )
    path = Path(config.manifests)
    if not path.exists():
        raise ResourceSourceError(f"resources.manifests: {path} does not exist")
    store = InMemoryResourceStore.from_path(path, namespace=config.default_namespace)
    for skipped in store.skipped:
        log.info("manifest skipped (not a kind the resolver reads)", document=skipped)
    return ResourceSource(store=store, description=f"manifests at {path}")


async def open_resources(config: ResourcesConfig) -> ResourceSource:
    """Open the configured source; a cluster cache has synced its preloaded kinds on return."""
    if config.source == "manifests":
        # Reading files blocks; at start-up nothing else runs yet, but keep the loop free.
        return await asyncio.to_thread(_load_manifests, config)
    kinds = _kinds(config.preload)
    kubernetes = config.kubernetes()
    client = await kubernetes.connect()
    cache = ResourceCache(
        client, namespace=config.namespace, kinds=kinds, sync_timeout=config.sync_timeout
    )
    try:
        await cache.start()
    except BaseException:
        await cache.stop()
        await client.close()
        raise
    return ResourceSource(
        store=cache,
        description=kubernetes.describe(),
        _cache=cache,
        _client=client,
        _preloaded=kinds,
    )
