"""What every ark-mesh service shares: typed configuration, health endpoints, lifecycle.

Services are thin (wiring and lifecycle); this package is that wiring, written once:

* :func:`load_config` — one YAML/JSON file plus ``ARK_MESH__…`` environment overrides, checked
  against the service's msgspec Struct;
* :class:`HealthServer` — ``/healthz`` and ``/readyz`` with pluggable readiness checks;
* :func:`run_service` — start, wait for SIGTERM/SIGINT, drain within a grace period;
* :func:`service_main` — the ``python -m`` entry point (config, telemetry, exit codes);
* :class:`WorkQueueService` — the skeleton of a service consuming one ``ARK_WORK`` kind.

Errors::

    ServiceError
    └── ConfigError
"""

from ark_mesh.service.cli import service_main
from ark_mesh.service.config import ENV_PREFIX, load_config
from ark_mesh.service.errors import ConfigError, ServiceError
from ark_mesh.service.health import HealthServer, ReadinessCheck
from ark_mesh.service.lifecycle import Service, run_service
from ark_mesh.service.work import WorkHandlers, WorkQueueService

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "HealthServer",
    "ReadinessCheck",
    "Service",
    "ServiceError",
    "WorkHandlers",
    "WorkQueueService",
    "load_config",
    "run_service",
    "service_main",
]
