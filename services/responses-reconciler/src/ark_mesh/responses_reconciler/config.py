"""The responses-reconciler's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config` (``ARK_MESH__<SECTION>__<FIELD>`` overrides).
The ``resources``, ``models`` and ``health`` sections are the query-reconciler's own types,
imported rather than redefined, so both services read resources and call models the same way and
one Helm values block can feed both.
"""

from __future__ import annotations

import os
import socket

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings
from ark_mesh.query_reconciler import HealthConfig, ModelsConfig, ResourcesConfig

__all__ = ["SERVICE_NAME", "ResponsesReconcilerConfig"]

SERVICE_NAME = "responses-reconciler"


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class ResponsesReconcilerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``bus`` is the bus's :class:`~ark_mesh.bus.BusConfig`; ``provision`` creates or updates the
    topology at start (idempotent); ``tenant`` binds the replica to a dedicated tenant's work
    stream (``None``: the shared pool); ``reconciler_id`` is stamped on the resolver's status
    updates of agent and team targets (default: host name and process id).
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    tenant: str | None = None
    reconciler_id: str | None = None
    resources: ResourcesConfig = ResourcesConfig()
    models: ModelsConfig = ModelsConfig()
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0

    def identity(self) -> str:
        return self.reconciler_id or f"{SERVICE_NAME}-{socket.gethostname()}-{os.getpid()}"
