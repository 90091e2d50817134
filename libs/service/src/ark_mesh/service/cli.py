"""The ``python -m ark_mesh.<service> --config FILE`` entry point every service shares.

Exit codes are part of the contract with Kubernetes and with people reading ``kubectl get
pods``: 0 after a clean SIGTERM, 1 when the service could not start (its dependencies are
unreachable or refused it), 2 when the configuration is invalid — a restart will not fix that.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from ark_mesh.bus import BusError
from ark_mesh.kube import KubeError
from ark_mesh.resolver import ManifestError
from ark_mesh.service.config import load_config
from ark_mesh.service.errors import ConfigError, ResourceSourceError
from ark_mesh.service.health import HealthServer
from ark_mesh.service.lifecycle import Service, run_service
from ark_mesh.telemetry import configure_telemetry, get_logger, shutdown_providers

__all__ = ["EXIT_BAD_CONFIG", "EXIT_OK", "EXIT_START_FAILED", "service_main"]

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_BAD_CONFIG = 2

START_ERRORS: tuple[type[BaseException], ...] = (
    BusError,
    KubeError,
    ResourceSourceError,
    ManifestError,
    OSError,
)
"""What "could not start" means for every service: NATS or the API server unreachable or
refusing, the resource source unusable, a port taken."""


class _Health(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class _HasHealth(Protocol):
    @property
    def health(self) -> _Health: ...


C = TypeVar("C", bound=_HasHealth)


def service_main(
    argv: Sequence[str] | None,
    *,
    name: str,
    description: str,
    config_type: type[C],
    build: Callable[[C], Service],
    start_errors: tuple[type[BaseException], ...] = (),
    grace: Callable[[C], float] = lambda config: float(getattr(config, "grace_period", 25.0)),
) -> int:
    """Parse ``--config``, set up telemetry, build and run the service; return the exit code.

    ``build`` may raise :class:`ConfigError` for rules the Struct cannot express (exit 2);
    :data:`START_ERRORS` and a service's own ``start_errors`` mean "could not start" (exit 1).
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m {name.replace('-', '_')}", description=description
    )
    parser.add_argument(
        "--config",
        help="YAML or JSON configuration file (default: $ARK_MESH_CONFIG, else defaults)",
    )
    args = parser.parse_args(argv)
    telemetry = configure_telemetry(name)
    log = get_logger(name)
    try:
        config = load_config(config_type, args.config)
        service = build(config)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    scrape = telemetry.scrape
    health = HealthServer(
        config.health.host,
        config.health.port,
        metrics=None if scrape is None else scrape.exposition,
    )
    failures = (*START_ERRORS, *start_errors)
    try:
        asyncio.run(run_service(service, health=health, grace=grace(config)))
    except failures as exc:
        log.error(f"{name} failed to start", error=str(exc), error_type=type(exc).__name__)
        return EXIT_START_FAILED
    finally:
        shutdown_providers()
    return EXIT_OK
