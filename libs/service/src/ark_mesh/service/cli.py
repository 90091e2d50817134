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

from ark_mesh.bus import BusConfig, BusError
from ark_mesh.kube import KubeError
from ark_mesh.resolver import ManifestError
from ark_mesh.service.config import load_config
from ark_mesh.service.errors import ConfigError, ResourceSourceError
from ark_mesh.service.health import HealthServer
from ark_mesh.service.lifecycle import Service, run_service
from ark_mesh.telemetry import configure_telemetry, get_logger, shutdown_providers

__all__ = [
    "EXIT_BAD_CONFIG",
    "EXIT_OK",
    "EXIT_START_FAILED",
    "check_bus_security",
    "service_main",
]

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


def check_bus_security(name: str, bus: object) -> None:
    """Refuse (:class:`ConfigError`, exit 2) a service on NATS without credentials.

    Every deployment that runs services on NATS (the scale presets) carries all tenants' data on
    the bus, so a service without ``bus.connection.auth`` does not start unless the
    configuration says ``bus.connection.insecure: true`` — and then says so loudly at every
    start. A service without a bus (the controller of preset ``simple``) is not concerned.
    """
    if not isinstance(bus, BusConfig):
        return
    problems = bus.connection.security_problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if bus.connection.auth.method is None:
        get_logger(name).warning(
            "INSECURE: connecting to NATS without credentials (bus.connection.insecure: true); "
            "any client that reaches NATS can read and write every tenant's data",
            servers=list(bus.connection.servers),
        )


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
        check_bus_security(name, getattr(config, "bus", None))
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
