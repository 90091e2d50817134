"""``python -m ark_mesh.embeddings_reconciler --config FILE``: run the service until SIGTERM."""

from __future__ import annotations

import sys

from ark_mesh.bus import BusError
from ark_mesh.embeddings_reconciler.config import SERVICE_NAME, EmbeddingsReconcilerConfig
from ark_mesh.embeddings_reconciler.service import EmbeddingsReconcilerService
from ark_mesh.kube import KubeError
from ark_mesh.resolver import ManifestError
from ark_mesh.service import ResourceSourceError, service_main


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        name=SERVICE_NAME,
        description="Answer EmbeddingsRequests from JetStream with vectors from a Model.",
        config_type=EmbeddingsReconcilerConfig,
        build=EmbeddingsReconcilerService,
        start_errors=(BusError, KubeError, ResourceSourceError, ManifestError),
    )


if __name__ == "__main__":
    sys.exit(main())
