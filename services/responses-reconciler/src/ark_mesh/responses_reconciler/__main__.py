"""``python -m ark_mesh.responses_reconciler --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.responses_reconciler.config import SERVICE_NAME, ResponsesReconcilerConfig
from ark_mesh.responses_reconciler.service import ResponsesReconcilerService
from ark_mesh.service import service_main


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Answer ResponsesRequests from JetStream with chunks and one result.",
        config_type=ResponsesReconcilerConfig,
        build=ResponsesReconcilerService,
    )


if __name__ == "__main__":
    sys.exit(main())
