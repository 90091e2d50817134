"""The query-reconciler's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config`, so any field can be overridden with
``ARK_MESH__<SECTION>__<FIELD>`` (e.g. ``ARK_MESH__BUS__CONNECTION__SERVERS='[nats://nats:4222]'``
or ``ARK_MESH__RESOURCES__SOURCE=manifests``). Field names are snake_case, like the bus's own
settings embedded under ``bus``.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings

__all__ = [
    "ChunkStreamConfig",
    "HealthConfig",
    "MemoryConfig",
    "ModelsConfig",
    "QueryReconcilerConfig",
    "ResourcesConfig",
]

SERVICE_NAME = "query-reconciler"


class ResourcesConfig(msgspec.Struct, frozen=True, kw_only=True):
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


class MemoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Conversation memory backend.

    ``http``: Ark's memory API at each Memory resource's address (Ark's behaviour).
    ``jetstream``: every Memory resource is served from the ``ARK_MEMORY`` stream
    (``ark.<tenant>.memory.<conversationId>``); the Memory's address is not used, but a Memory
    must still exist (``spec.memory`` or the namespace's ``default``) for a query to keep history,
    as in Ark. ``read_timeout`` bounds reading one conversation back.
    """

    backend: Literal["http", "jetstream"] = "http"
    read_timeout: float = 10.0


class ModelsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The model client. ``max_retries`` defaults to 0: a failed call fails the attempt and the
    whole query is redelivered with backoff instead (the SDK's own retry would hold the slot)."""

    max_retries: int = 0
    timeout: float = 600.0


class ChunkStreamConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Chunk publishing: ``coalesce`` merges consecutive text deltas of a query for up to
    ``coalesce_delay`` seconds / ``coalesce_bytes`` of text (fewer, larger chunks).

    ``stream_model_calls`` is this service's default for streaming model calls from the
    provider, used when neither the namespace's ``ark-config-streaming`` ConfigMap nor the
    query's ``ark.mckinsey.com/streaming-enabled`` annotation decides. ``False`` is Ark's
    behaviour; either way the query's chunk subject carries the answer.
    """

    stream_model_calls: bool = False
    coalesce: bool = False
    coalesce_delay: float = 0.02
    coalesce_bytes: int = 4096


class HealthConfig(msgspec.Struct, frozen=True, kw_only=True):
    # Probes come from the kubelet over the pod IP, not from localhost.
    host: str = "0.0.0.0"
    port: int = 8080


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class QueryReconcilerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``bus`` is the bus's own :class:`~ark_mesh.bus.BusConfig` (connection, topology, worker
    slots and retry delays). ``provision`` creates or updates the topology at start
    (idempotent; turn it off when an operator owns the streams — the consumer must then exist).
    ``tenant`` binds the replica to a dedicated tenant's work stream (``None``: the shared pool).
    ``reconciler_id`` is stamped on every StatusUpdate (default: host name and process id).
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    tenant: str | None = None
    reconciler_id: str | None = None
    resources: ResourcesConfig = ResourcesConfig()
    memory: MemoryConfig = MemoryConfig()
    models: ModelsConfig = ModelsConfig()
    streaming: ChunkStreamConfig = ChunkStreamConfig()
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0

    def identity(self) -> str:
        return self.reconciler_id or f"{SERVICE_NAME}-{socket.gethostname()}-{os.getpid()}"
