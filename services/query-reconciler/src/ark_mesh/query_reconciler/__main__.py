"""``python -m ark_mesh.query_reconciler --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ark_mesh.bus import BusError
from ark_mesh.kube import KubeError
from ark_mesh.query_reconciler.config import SERVICE_NAME, QueryReconcilerConfig
from ark_mesh.query_reconciler.errors import QueryReconcilerError
from ark_mesh.query_reconciler.service import QueryReconcilerService
from ark_mesh.resolver import ManifestError
from ark_mesh.service import ConfigError, HealthServer, load_config, run_service
from ark_mesh.telemetry import configure_telemetry, get_logger, shutdown_providers

log = get_logger(SERVICE_NAME)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ark_mesh.query_reconciler",
        description="Resolve QueryRequests from JetStream and publish chunks, events and status.",
    )
    parser.add_argument(
        "--config",
        help="YAML or JSON configuration file (default: $ARK_MESH_CONFIG, else defaults)",
    )
    args = parser.parse_args(argv)
    configure_telemetry(SERVICE_NAME)
    try:
        config = load_config(QueryReconcilerConfig, args.config)
    except ConfigError as exc:
        print(f"{SERVICE_NAME}: {exc}", file=sys.stderr)
        return 2
    service = QueryReconcilerService(config)
    health = HealthServer(config.health.host, config.health.port)
    try:
        asyncio.run(run_service(service, health=health, grace=config.grace_period))
    except (BusError, KubeError, QueryReconcilerError, ManifestError, OSError) as exc:
        log.error("query reconciler failed to start", error=str(exc), error_type=type(exc).__name__)
        return 1
    finally:
        shutdown_providers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
