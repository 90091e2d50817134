"""The responses-reconciler's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config` (``ARK_MESH__<SECTION>__<FIELD>`` overrides).
The ``resources``, ``models`` and ``health`` sections are the shared types of
:mod:`ark_mesh.service`, so every reconciler reads resources and calls models the same way and
one Helm values block can feed them all.
"""

from __future__ import annotations

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import HealthConfig, ModelsConfig, ResourcesConfig, instance_id

__all__ = ["SERVICE_NAME", "ResponsesReconcilerConfig"]

SERVICE_NAME = "responses-reconciler"


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class ResponsesReconcilerConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``bus`` is the bus's :class:`~ark_mesh.bus.BusConfig`; ``provision`` creates or updates the
    topology at start (idempotent); ``tenant`` binds the replica to a dedicated tenant's work
    stream (``None``: the shared pool); ``instance`` names the replica and is stamped as
    ``reconcilerId`` on the resolver's status updates of agent and team targets (default:
    service, host name and process id).
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    tenant: str | None = None
    instance: str | None = None
    resources: ResourcesConfig = ResourcesConfig()
    models: ModelsConfig = ModelsConfig()
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0

    def identity(self) -> str:
        return instance_id(SERVICE_NAME, self.instance)
