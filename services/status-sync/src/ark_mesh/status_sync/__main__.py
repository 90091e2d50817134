"""``python -m ark_mesh.status_sync --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ark_mesh.bus import BusError
from ark_mesh.kube import KubeError
from ark_mesh.service import ConfigError, HealthServer, load_config, run_service
from ark_mesh.status_sync.config import SERVICE_NAME, StatusSyncConfig
from ark_mesh.status_sync.service import StatusSyncService
from ark_mesh.telemetry import configure_telemetry, get_logger, shutdown_providers

log = get_logger(SERVICE_NAME)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ark_mesh.status_sync",
        description="Apply StatusUpdates from JetStream to the status of Query resources.",
    )
    parser.add_argument(
        "--config",
        help="YAML or JSON configuration file (default: $ARK_MESH_CONFIG, else defaults)",
    )
    args = parser.parse_args(argv)
    configure_telemetry(SERVICE_NAME)
    try:
        config = load_config(StatusSyncConfig, args.config)
    except ConfigError as exc:
        print(f"{SERVICE_NAME}: {exc}", file=sys.stderr)
        return 2
    service = StatusSyncService(config)
    health = HealthServer(config.health.host, config.health.port)
    try:
        asyncio.run(run_service(service, health=health, grace=config.grace_period))
    except (BusError, KubeError, OSError) as exc:
        log.error("status sync failed to start", error=str(exc), error_type=type(exc).__name__)
        return 1
    finally:
        shutdown_providers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
