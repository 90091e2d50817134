"""``python -m ark_mesh.query_reconciler --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.query_reconciler.config import SERVICE_NAME, QueryReconcilerConfig
from ark_mesh.query_reconciler.service import QueryReconcilerService
from ark_mesh.service import service_main


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Resolve QueryRequests from JetStream and publish chunks, events and status.",
        config_type=QueryReconcilerConfig,
        build=QueryReconcilerService,
    )


if __name__ == "__main__":
    sys.exit(main())
