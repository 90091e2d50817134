"""``python -m ark_mesh.embeddings_reconciler --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.embeddings_reconciler.config import SERVICE_NAME, EmbeddingsReconcilerConfig
from ark_mesh.embeddings_reconciler.service import EmbeddingsReconcilerService
from ark_mesh.service import service_main


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Answer EmbeddingsRequests from JetStream with vectors from a Model.",
        config_type=EmbeddingsReconcilerConfig,
        build=EmbeddingsReconcilerService,
    )


if __name__ == "__main__":
    sys.exit(main())
