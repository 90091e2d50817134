"""The standalone query reconciler: pulls ``QueryRequest``s from JetStream and resolves them.

Run it with ``python -m ark_mesh.query_reconciler --config FILE``. The pieces:

* :class:`QueryReconcilerConfig` — the typed configuration (:mod:`.config`);
* :class:`QueryReconcilerService` — wiring and lifecycle (:mod:`.service`);
* :class:`QueryWork` — one delivery: ledger check, cancel, resolve, dead letters (:mod:`.handler`);
* :class:`JetStreamSink` — the resolver's sink on JetStream (:mod:`.sink`);
* :class:`JetStreamMemory` — conversation memory on ``ARK_MEMORY`` (:mod:`.memory`);
* :class:`LedgerReader` — what a query's subjects already hold (:mod:`.ledger`).

Errors are drawn in :mod:`ark_mesh.query_reconciler.errors`.
"""

from ark_mesh.query_reconciler.config import (
    ChunkStreamConfig,
    HealthConfig,
    MemoryConfig,
    ModelsConfig,
    QueryReconcilerConfig,
    ResourcesConfig,
)
from ark_mesh.query_reconciler.errors import QueryReconcilerError, ResourceSourceError
from ark_mesh.query_reconciler.handler import RESTART_NOTICE, QueryWork
from ark_mesh.query_reconciler.ledger import Ledger, LedgerReader
from ark_mesh.query_reconciler.memory import JetStreamMemory, JetStreamMemoryStore
from ark_mesh.query_reconciler.recovery import recover_request
from ark_mesh.query_reconciler.resources import ResourceSource, open_resources
from ark_mesh.query_reconciler.service import QueryReconcilerService
from ark_mesh.query_reconciler.sink import (
    JetStreamSink,
    final_chunk_msg_id,
    terminal_msg_id,
)

__all__ = [
    "RESTART_NOTICE",
    "ChunkStreamConfig",
    "HealthConfig",
    "JetStreamMemory",
    "JetStreamMemoryStore",
    "JetStreamSink",
    "Ledger",
    "LedgerReader",
    "MemoryConfig",
    "ModelsConfig",
    "QueryReconcilerConfig",
    "QueryReconcilerError",
    "QueryReconcilerService",
    "QueryWork",
    "ResourceSource",
    "ResourceSourceError",
    "ResourcesConfig",
    "final_chunk_msg_id",
    "open_resources",
    "recover_request",
    "terminal_msg_id",
]
