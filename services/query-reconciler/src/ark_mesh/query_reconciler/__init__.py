"""The standalone query reconciler: pulls ``QueryRequest``s from JetStream and resolves them.

Run it with ``python -m ark_mesh.query_reconciler --config FILE``. The pieces:

* :class:`QueryReconcilerConfig` — the typed configuration (:mod:`.config`);
* :class:`QueryReconcilerService` — wiring and lifecycle (:mod:`.service`);
* :class:`QueryWork` — one delivery: ledger check, cancel, resolve, dead letters (:mod:`.handler`);
* :class:`JetStreamSink` — the resolver's sink on JetStream (:mod:`.sink`);
* :class:`JetStreamMemory` — conversation memory on ``ARK_MEMORY`` (:mod:`.memory`);
* :class:`LedgerReader` — what a query's subjects already hold (:mod:`.ledger`);
* :class:`RunJournal` — the resolver's checkpoints in KV ``ark-runs`` (:mod:`.journal`).

The service raises no errors of its own: a resource source that cannot open is
:class:`ark_mesh.service.ResourceSourceError`; resolver, bus and kube failures are theirs.
"""

from ark_mesh.query_reconciler.config import (
    ChunkStreamConfig,
    MemoryConfig,
    QueryReconcilerConfig,
)
from ark_mesh.query_reconciler.handler import RESTART_NOTICE, RESUME_NOTICE, QueryWork
from ark_mesh.query_reconciler.journal import CheckpointError, RunJournal
from ark_mesh.query_reconciler.ledger import Ledger, LedgerReader
from ark_mesh.query_reconciler.memory import JetStreamMemory, JetStreamMemoryStore
from ark_mesh.query_reconciler.recovery import recover_request
from ark_mesh.query_reconciler.service import QueryReconcilerService
from ark_mesh.query_reconciler.sink import (
    JetStreamSink,
    final_chunk_msg_id,
    terminal_msg_id,
)

__all__ = [
    "RESTART_NOTICE",
    "RESUME_NOTICE",
    "CheckpointError",
    "ChunkStreamConfig",
    "JetStreamMemory",
    "JetStreamMemoryStore",
    "JetStreamSink",
    "Ledger",
    "LedgerReader",
    "MemoryConfig",
    "QueryReconcilerConfig",
    "QueryReconcilerService",
    "QueryWork",
    "RunJournal",
    "final_chunk_msg_id",
    "recover_request",
    "terminal_msg_id",
]
