"""status-sync's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config`; override any field with
``ARK_MESH__<SECTION>__<FIELD>`` (e.g. ``ARK_MESH__KUBERNETES__KUBECONFIG=/path``).
"""

from __future__ import annotations

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import HealthConfig, KubernetesConfig, instance_id

__all__ = ["EventsConfig", "StatusSyncConfig"]

SERVICE_NAME = "status-sync"


class EventsConfig(ConfigSection, frozen=True, kw_only=True):
    """Kubernetes Events for phase transitions, reported as ``controller``."""

    enabled: bool = True
    controller: str = "ark-mesh/status-sync"


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class StatusSyncConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``durable`` names the consumer in ``bus.topology.consumers`` to pull from (the default
    topology defines ``status-sync`` on ``ARK_STATUS``, filtered to ``ark.*.query.*.status``).
    ``provision`` creates or updates the topology at start (idempotent). ``check_newest`` looks
    up the newest update published for the query before writing, so an update a newer one
    already follows is skipped (order within one phase rank, fewer writes when catching up).
    ``instance`` names this replica in Events (default: service, host name and process id).
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    durable: str = "status-sync"
    check_newest: bool = True
    kubernetes: KubernetesConfig = KubernetesConfig()
    events: EventsConfig = EventsConfig()
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0
    instance: str | None = None

    def identity(self) -> str:
        return instance_id(SERVICE_NAME, self.instance)
