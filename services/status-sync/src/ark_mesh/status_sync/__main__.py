"""``python -m ark_mesh.status_sync --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.service import service_main
from ark_mesh.status_sync.config import SERVICE_NAME, StatusSyncConfig
from ark_mesh.status_sync.service import StatusSyncService


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Apply StatusUpdates from JetStream to the status of Query resources.",
        config_type=StatusSyncConfig,
        build=StatusSyncService,
    )


if __name__ == "__main__":
    sys.exit(main())
