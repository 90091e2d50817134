"""``python -m ark_mesh.controller [--config FILE]``: run the controller until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from ark_mesh.controller.config import ControllerConfig
from ark_mesh.controller.service import ControllerService
from ark_mesh.service import HealthServer, load_config, run_service
from ark_mesh.telemetry import configure_telemetry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ark_mesh.controller", description=__doc__)
    parser.add_argument("--config", help="configuration file (default: $ARK_MESH_CONFIG)")
    args = parser.parse_args(argv)
    config = load_config(ControllerConfig, args.config)
    configure_telemetry("ark-mesh-controller")
    service = ControllerService(config)
    health = HealthServer(config.health.host, config.health.port)
    asyncio.run(run_service(service, health=health))


if __name__ == "__main__":
    main()
