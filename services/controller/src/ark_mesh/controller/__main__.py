"""``python -m ark_mesh.controller --config FILE``: run the controller until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.controller.config import ControllerConfig
from ark_mesh.controller.service import ControllerService
from ark_mesh.service import service_main

SERVICE_NAME = "controller"


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Watch Query resources; resolve them in-process or dispatch them to JetStream.",
        config_type=ControllerConfig,
        build=ControllerService,
        grace=lambda config: 25.0,
    )


if __name__ == "__main__":
    sys.exit(main())
