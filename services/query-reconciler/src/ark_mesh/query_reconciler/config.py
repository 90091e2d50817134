"""The query-reconciler's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config`, so any field can be overridden with
``ARK_MESH__<SECTION>__<FIELD>`` (e.g. ``ARK_MESH__BUS__CONNECTION__SERVERS='[nats://nats:4222]'``
or ``ARK_MESH__RESOURCES__SOURCE=manifests``). Field names are snake_case, like the bus's own
settings embedded under ``bus``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import HealthConfig, ModelsConfig, ResourcesConfig, instance_id

__all__ = [
    "ChunkStreamConfig",
    "MemoryConfig",
    "QueryReconcilerConfig",
]

SERVICE_NAME = "query-reconciler"


class MemoryConfig(ConfigSection, frozen=True, kw_only=True):
    """Conversation memory backend.

    ``http``: Ark's memory API at each Memory resource's address (Ark's behaviour).
    ``jetstream``: every Memory resource is served from the ``ARK_MEMORY`` stream
    (``ark.<tenant>.memory.<conversationId>``); the Memory's address is not used, but a Memory
    must still exist (``spec.memory`` or the namespace's ``default``) for a query to keep history,
    as in Ark. ``read_timeout`` bounds reading one conversation back.
    """

    backend: Literal["http", "jetstream"] = "http"
    read_timeout: float = 10.0


class ChunkStreamConfig(ConfigSection, frozen=True, kw_only=True):
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


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class QueryReconcilerConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``bus`` is the bus's own :class:`~ark_mesh.bus.BusConfig` (connection, topology, worker
    slots and retry delays). ``provision`` creates or updates the topology at start
    (idempotent; turn it off when an operator owns the streams — the consumer must then exist).
    ``tenant`` binds the replica to a dedicated tenant's work stream (``None``: the shared pool).
    ``instance`` names the replica; it is stamped on every StatusUpdate as ``reconcilerId``
    (default: service, host name and process id).
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    tenant: str | None = None
    instance: str | None = None
    resources: ResourcesConfig = ResourcesConfig()
    memory: MemoryConfig = MemoryConfig()
    models: ModelsConfig = ModelsConfig()
    streaming: ChunkStreamConfig = ChunkStreamConfig()
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0

    def identity(self) -> str:
        return instance_id(SERVICE_NAME, self.instance)
