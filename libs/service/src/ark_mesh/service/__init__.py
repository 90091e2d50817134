"""What every ark-mesh service shares: typed configuration, health endpoints, lifecycle.

Services are thin (wiring and lifecycle); this package is that wiring, written once:

* :func:`load_config` — one YAML/JSON file plus ``ARK_MESH__…`` environment overrides, checked
  against the service's msgspec Struct;
* :class:`HealthServer` — ``/healthz`` and ``/readyz`` with pluggable readiness checks;
* :func:`run_service` — start, wait for SIGTERM/SIGINT, drain within a grace period;
* :func:`service_main` — the ``python -m`` entry point (config, telemetry, exit codes);
* :class:`WorkQueueService` — the skeleton of every long-running service: bindings + handler +
  lifecycle, with the tenant identity check and dead-letter ending written once;
  :class:`ReconcilerService` wires it from a reconciler's config;
* :class:`HealthConfig`, :class:`KubernetesConfig`, :class:`ResourcesConfig`,
  :class:`ModelsConfig`, :func:`instance_id` — the config sections every service shares
  (:mod:`.settings`, :mod:`.resources`), and :func:`open_resources` to open the resolver's
  resource store.

Errors::

    ServiceError
    ├── ConfigError
    └── ResourceSourceError
"""

from ark_mesh.service.cli import service_main
from ark_mesh.service.config import ENV_PREFIX, load_config
from ark_mesh.service.errors import ConfigError, ResourceSourceError, ServiceError
from ark_mesh.service.health import HealthServer, ReadinessCheck
from ark_mesh.service.lifecycle import Service, run_service
from ark_mesh.service.resources import ResourcesConfig, ResourceSource, open_resources
from ark_mesh.service.settings import (
    HEALTH_PORT,
    HealthConfig,
    KubernetesConfig,
    ModelsConfig,
    instance_id,
)
from ark_mesh.service.work import (
    ReconcilerService,
    ReconcilerSettings,
    WorkHandlers,
    WorkIdentity,
    WorkQueueService,
    check_identity,
    subject_tenant,
)

__all__ = [
    "ENV_PREFIX",
    "HEALTH_PORT",
    "ConfigError",
    "HealthConfig",
    "HealthServer",
    "KubernetesConfig",
    "ModelsConfig",
    "ReadinessCheck",
    "ReconcilerService",
    "ReconcilerSettings",
    "ResourceSource",
    "ResourceSourceError",
    "ResourcesConfig",
    "Service",
    "ServiceError",
    "WorkHandlers",
    "WorkIdentity",
    "WorkQueueService",
    "check_identity",
    "instance_id",
    "load_config",
    "open_resources",
    "run_service",
    "service_main",
    "subject_tenant",
]
