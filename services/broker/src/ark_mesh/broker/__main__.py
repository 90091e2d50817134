"""``python -m ark_mesh.broker --config FILE``: run the broker until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.broker.config import SERVICE_NAME, BrokerConfig
from ark_mesh.broker.service import BrokerService
from ark_mesh.service import service_main


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Broker HTTP API: broker-mode queries, SSE with resume, OpenAI-compatible.",
        config_type=BrokerConfig,
        build=BrokerService,
    )


if __name__ == "__main__":
    sys.exit(main())
