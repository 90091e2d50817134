"""NATS JetStream adapter of ark-mesh: the transport every service uses.

* :class:`Bus` — connection with backoff, health and drain (:mod:`.connection`).
* :class:`Topology` — streams, consumers, KV buckets from :class:`TopologyConfig` (:mod:`.topology`).
* :class:`Publisher` — awaited commands and a bounded window for chunks (:mod:`.publisher`);
  :class:`ChunkCoalescer` merges token deltas (:mod:`.coalesce`).
* :class:`Worker` — shared pull consumer, bounded slots, heartbeats, typed outcomes, DLQ,
  graceful drain (:mod:`.worker`); handlers raise :class:`TransientError` / :class:`PermanentError`.
* :class:`StreamReader` — replay a subject from a sequence, then follow live (:mod:`.reader`);
  :class:`Fanout` — one shared live feed per stream, fanned out in memory to many followers
  (:mod:`.fanout`).
* :func:`in_sequence` — one query's chunks in ``seq`` order, each once, whatever order the
  stream stored them in (:mod:`.sequenced`, the rule of :mod:`ark_mesh.contracts.sequencing`);
  :class:`ReadAhead` — a read with deadlines for one task and one timer, not one per entry
  (:mod:`.readahead`).
* :func:`publish_whole` / :func:`read_whole` — a message larger than the server's
  ``max_payload`` (a result) travels in pieces on its own subject (:mod:`.large`).
* :class:`CancelChannel` / :func:`cancel_watch` — cancel via core NATS plus a KV flag (:mod:`.cancel`).
* :class:`RunLogStore` — step logs of durable runs in KV ``ark-runs``, sealed per tenant,
  saved with a revision check (:mod:`.runs`).
* ``bus.connection.auth``/``tls`` — credentials and TLS read from files or variables at connect
  (:mod:`.credentials`); :mod:`.permissions` — the NATS users and permissions of the mesh.
* :class:`PayloadCipher` — per-tenant AES-256-GCM encryption of bodies at rest, applied by all
  of the above when ``Bus.connect(…, encryption=EncryptionSettings(…))`` (:mod:`.encryption`).

The exception tree is drawn in :mod:`ark_mesh.bus.errors`.
"""

from ark_mesh.bus.cancel import CancelChannel, CancelWatch, cancel_watch
from ark_mesh.bus.coalesce import ChunkCoalescer, can_merge, merge_chunks
from ark_mesh.bus.config import (
    AuthSettings,
    BusConfig,
    ConnectionSettings,
    ConsumerSettings,
    EncryptionKeySettings,
    EncryptionSettings,
    KeyValueSettings,
    SecretSource,
    StreamSettings,
    TenantEncryptionSettings,
    TlsSettings,
    TopologyConfig,
    WorkConsumerSettings,
    WorkerSettings,
)
from ark_mesh.bus.connection import Bus, ConnectionHealth, ConnectionState
from ark_mesh.bus.context import MessageContext
from ark_mesh.bus.deadletter import DeadLetterCause, DeadLetterNotice
from ark_mesh.bus.encryption import PayloadCipher
from ark_mesh.bus.errors import (
    BusAuthError,
    BusClosedError,
    BusError,
    BusUnavailableError,
    DecryptionError,
    EncryptionConfigError,
    EncryptionError,
    EncryptionRequiredError,
    HandlerError,
    PayloadTooLargeError,
    PermanentError,
    PublishError,
    PublishTimeoutError,
    ReaderLagError,
    ReadError,
    ReaderUnavailableError,
    RunLogConflictError,
    RunLogError,
    RunLogUnreadableError,
    ServerVersionError,
    TopologyConfigError,
    TopologyConflictError,
    TopologyError,
    TopologyMissingError,
    TransientError,
)
from ark_mesh.bus.fanout import Fanout
from ark_mesh.bus.kv import (
    BucketIndex,
    InvalidKeyError,
    KeyNotFoundError,
    KeyValue,
    KeyWatcher,
    KeyWrongLastSequenceError,
    NatsError,
    NatsTimeoutError,
)
from ark_mesh.bus.large import Reassembler, publish_whole, read_whole
from ark_mesh.bus.lifecycle import shutdown_signal
from ark_mesh.bus.publisher import PubAck, Publisher, PublisherSettings
from ark_mesh.bus.readahead import ReadAhead
from ark_mesh.bus.reader import StreamEntry, StreamReader
from ark_mesh.bus.runs import RunLogStore, StoredRun, run_key
from ark_mesh.bus.sequenced import Sequenced, in_sequence
from ark_mesh.bus.topology import ProvisionReport, ProvisionResult, Topology, WorkBinding
from ark_mesh.bus.worker import Handler, Worker, WorkerStats

__all__ = [
    "AuthSettings",
    "BucketIndex",
    "Bus",
    "BusAuthError",
    "BusClosedError",
    "BusConfig",
    "BusError",
    "BusUnavailableError",
    "CancelChannel",
    "CancelWatch",
    "ChunkCoalescer",
    "ConnectionHealth",
    "ConnectionSettings",
    "ConnectionState",
    "ConsumerSettings",
    "DeadLetterCause",
    "DeadLetterNotice",
    "DecryptionError",
    "EncryptionConfigError",
    "EncryptionError",
    "EncryptionKeySettings",
    "EncryptionRequiredError",
    "EncryptionSettings",
    "Fanout",
    "Handler",
    "HandlerError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "KeyValue",
    "KeyValueSettings",
    "KeyWatcher",
    "KeyWrongLastSequenceError",
    "MessageContext",
    "NatsError",
    "NatsTimeoutError",
    "PayloadCipher",
    "PayloadTooLargeError",
    "PermanentError",
    "ProvisionReport",
    "ProvisionResult",
    "PubAck",
    "PublishError",
    "PublishTimeoutError",
    "Publisher",
    "PublisherSettings",
    "ReadAhead",
    "ReadError",
    "ReaderLagError",
    "ReaderUnavailableError",
    "Reassembler",
    "RunLogConflictError",
    "RunLogError",
    "RunLogStore",
    "RunLogUnreadableError",
    "SecretSource",
    "Sequenced",
    "ServerVersionError",
    "StoredRun",
    "StreamEntry",
    "StreamReader",
    "StreamSettings",
    "TenantEncryptionSettings",
    "TlsSettings",
    "Topology",
    "TopologyConfig",
    "TopologyConfigError",
    "TopologyConflictError",
    "TopologyError",
    "TopologyMissingError",
    "TransientError",
    "WorkBinding",
    "WorkConsumerSettings",
    "Worker",
    "WorkerSettings",
    "WorkerStats",
    "can_merge",
    "cancel_watch",
    "in_sequence",
    "merge_chunks",
    "publish_whole",
    "read_whole",
    "run_key",
    "shutdown_signal",
]
