"""Typed settings of the bus: connection, topology (streams, consumers, KV), workers and
per-tenant payload encryption.

All Structs are frozen msgspec Structs, so a service can decode them straight from its
configuration file (``msgspec.convert(values, BusConfig)``) and get a clear error naming the
field when a value has the wrong type. Durations are seconds (floats).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ark_mesh.contracts import subjects
from ark_mesh.contracts.config import ConfigSection

__all__ = [
    "AuthSettings",
    "BusConfig",
    "ConnectionSettings",
    "ConsumerSettings",
    "EncryptionKeySettings",
    "EncryptionSettings",
    "KeyValueSettings",
    "SecretSource",
    "StorageKind",
    "StreamSettings",
    "TenantEncryptionSettings",
    "TlsSettings",
    "TopologyConfig",
    "WorkConsumerSettings",
    "WorkerSettings",
]

StorageKind = Literal["file", "memory"]

_HOUR = 3600.0
_DAY = 24 * _HOUR
_MIB = 1024 * 1024
_RETRY_DEDUPE = 30.0
"""Duplicate window of the per-query streams: it only has to outlast a publisher's retry of
one message, and the server keeps every id published within it in memory (decision 49)."""


class SecretSource(ConfigSection, frozen=True, kw_only=True):
    """Where one secret comes from: exactly one of ``file`` (a path, e.g. a mounted Kubernetes
    Secret; one trailing newline is ignored) or ``env`` (a variable name, e.g. ``valueFrom:
    secretKeyRef``). Never the secret itself: config files end up in ConfigMaps, Helm values
    and logs."""

    file: str | None = None
    env: str | None = None


class AuthSettings(ConfigSection, frozen=True, kw_only=True):
    """How this process proves who it is to NATS: one of

    * ``user`` + ``password`` (a :class:`SecretSource`): nats.conf ``authorization.users``;
    * ``token``: a single shared token (no per-service permissions; avoid for the mesh);
    * ``nkeySeedFile``: the path of an nkey user seed (``SU…``), the server lists the public key;
    * ``credsFile``: a ``.creds`` file (user JWT + seed) for a server in operator/JWT mode.

    Read at connect time (and again at every reconnect, for seeds and creds files), so a
    rotated Secret takes effect without a new config.
    """

    user: str | None = None
    password: SecretSource | None = None
    token: SecretSource | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None

    @property
    def method(self) -> str | None:
        """``password``, ``token``, ``nkey``, ``creds`` or ``None`` (anonymous)."""
        if self.creds_file:
            return "creds"
        if self.nkey_seed_file:
            return "nkey"
        if self.token is not None:
            return "token"
        if self.user is not None or self.password is not None:
            return "password"
        return None

    def problems(self) -> list[str]:
        """What contradicts itself, as messages naming the ``bus.connection.auth`` fields."""
        found: list[str] = []
        chosen = [
            name
            for name, present in (
                ("user/password", self.user is not None or self.password is not None),
                ("token", self.token is not None),
                ("nkeySeedFile", bool(self.nkey_seed_file)),
                ("credsFile", bool(self.creds_file)),
            )
            if present
        ]
        if len(chosen) > 1:
            found.append(f"bus.connection.auth sets {' and '.join(chosen)}; choose one method")
        if (self.user is None) != (self.password is None):
            found.append("bus.connection.auth: user and password go together")
        for name, source in (("password", self.password), ("token", self.token)):
            if source is not None and (source.file is None) == (source.env is None):
                found.append(
                    f"bus.connection.auth.{name}: set exactly one of file (a mounted Secret) "
                    "or env (a variable from a Secret)"
                )
        return found


class TlsSettings(ConfigSection, frozen=True, kw_only=True):
    """TLS to NATS. ``caFile`` verifies the server (default: the system's CAs); ``certFile`` +
    ``keyFile`` are this client's certificate when the server verifies clients (mTLS);
    ``serverName`` is the name expected in the server's certificate when it differs from the
    URL's host (a headless-Service node name, an IP). With a ``tls`` block the client insists on
    TLS whatever the URL scheme (``tls://`` or ``nats://``)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def problems(self) -> list[str]:
        if (self.cert_file is None) != (self.key_file is None):
            return ["bus.connection.tls: certFile and keyFile go together"]
        return []


class ConnectionSettings(ConfigSection, frozen=True, kw_only=True):
    """How to reach NATS.

    ``connect_attempts`` bounds the *initial* connection (exponential backoff from
    ``backoff_initial`` to ``backoff_max``, with jitter); once connected, a lost connection is
    retried forever (``max_reconnect_attempts = -1``) with the same backoff, and publishes made
    meanwhile are buffered by the client (bounded by ``reconnect_buffer_bytes``).

    ``servers`` lists every node of a cluster (the client fails over between them and learns
    the others from the server). ``min_server_version`` is the oldest nats-server the bus
    agrees to run on (checked at every connect); the default is the oldest release the
    project is tested with.
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    name: str = "ark-mesh"
    connect_timeout: float = 2.0
    connect_attempts: int = 5
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    max_reconnect_attempts: int = -1
    reconnect_buffer_bytes: int = 8 * 1024 * 1024
    ping_interval: float = 20.0
    max_outstanding_pings: int = 3
    request_timeout: float = 5.0
    drain_timeout: float = 10.0
    min_server_version: str = "2.9.0"
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings | None = None
    inbox_prefix: str = "_INBOX"
    """Where replies to this client's requests go (``<prefix>.<random>``). A NATS user whose
    subscribe permission is limited to its own prefix (tenant users, decision 55) cannot read
    replies meant for anyone else."""
    insecure: bool = False
    """Run a service on NATS without credentials (no ``auth``). A service refuses to start
    without either: every NATS-backed deployment (the scale presets) carries all tenants' data on
    the bus. ``true`` is for development and is logged as a warning at every start."""

    def security_problems(self) -> list[str]:
        """Why a *service* must not connect with these settings (empty: it may).

        Libraries and tools connect however they are told; services check this at start
        (:func:`ark_mesh.service.cli.service_main`), so a deployment without bus credentials
        fails loudly instead of running open.
        """
        found = [*self.auth.problems(), *(self.tls.problems() if self.tls else [])]
        if self.auth.method is None and not self.insecure:
            found.append(
                "bus.connection.auth is not configured: every NATS-backed service carries all "
                "tenants' data, so it needs credentials (user+password, nkeySeedFile or "
                'credsFile, see docs/operations.md "NATS authorization"); set '
                "bus.connection.insecure: true to run without them in development"
            )
        return found


class StreamSettings(ConfigSection, frozen=True, kw_only=True):
    """Per-stream knobs. ``max_age`` 0 means "keep until limits"; ``-1`` means unlimited.

    ``compression`` and ``allow_msg_ttl`` need a newer server than 2.9 (2.10 / 2.11); asking for
    them on 2.9 is reported as a conflict by the provisioner, because 2.9 accepts and ignores them.
    """

    storage: StorageKind = "file"
    replicas: int = 1
    max_age: float = 0.0
    max_bytes: int = -1
    max_msgs: int = -1
    max_msg_size: int = -1
    duplicate_window: float = 120.0
    compression: Literal["s2"] | None = None
    allow_msg_ttl: bool | None = None


class KeyValueSettings(ConfigSection, frozen=True, kw_only=True):
    """Per-bucket knobs. ``allow_direct`` lets every replica answer reads (JetStream's direct
    get); on a replicated bucket a follower that is behind — one that just rejoined — then
    answers a key written a moment ago as missing. ``None`` (default): direct reads only on a
    single replica, so a replicated bucket reads its own writes."""

    storage: StorageKind = "file"
    replicas: int = 1
    ttl: float = 0.0
    history: int = 1
    max_value_size: int = -1
    allow_direct: bool | None = None


class ConsumerSettings(ConfigSection, frozen=True, kw_only=True):
    """A durable pull consumer on one of the limits streams (e.g. status-sync on ARK_STATUS)."""

    stream: str
    durable: str
    filter_subject: str | None = None
    ack_wait: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 1000
    max_waiting: int = 512
    replicas: int | None = None
    """Replicas of the consumer's state; ``None``: as many as its stream has."""


class WorkConsumerSettings(ConfigSection, frozen=True, kw_only=True):
    """The durable consumer shared by all replicas of one reconciler kind.

    ``max_ack_pending`` is the global cap on messages in flight for this kind across every
    replica (e.g. concurrent LLM calls); each replica also has its own slot count
    (:class:`WorkerSettings`). ``ack_wait`` is the redelivery timer; workers heartbeat
    (``in_progress``) well within it while a handler runs, so it bounds the time to notice a
    *dead* worker, not the length of a job: a dead replica's messages reach another replica at
    most ``ack_wait`` after its last heartbeat (decision 49). The price is one heartbeat per
    running message every ``ack_wait / 3`` seconds, and a replica whose event loop stalls or
    whose connection is down for a whole ``ack_wait`` may see its work handed over.
    """

    kind: subjects.WorkKind
    durable: str
    ack_wait: float = 8.0
    max_deliver: int = 5
    max_ack_pending: int = 1000
    max_waiting: int = 512
    replicas: int | None = None
    """Replicas of the consumer's state; ``None``: as many as its stream has (JetStream's
    default), which is what a replicated stream wants."""


def _default_work_consumers() -> tuple[WorkConsumerSettings, ...]:
    return (
        WorkConsumerSettings(kind="query", durable="query-reconciler"),
        WorkConsumerSettings(kind="responses", durable="responses-reconciler"),
        WorkConsumerSettings(kind="embeddings", durable="embeddings-reconciler"),
    )


def _default_consumers() -> tuple[ConsumerSettings, ...]:
    return (
        ConsumerSettings(
            stream=subjects.ARK_STATUS, durable="status-sync", filter_subject="ark.*.query.*.status"
        ),
    )


class TopologyConfig(ConfigSection, frozen=True, kw_only=True):
    """Streams, consumers and KV buckets of the mesh (ARCHITECTURE §4).

    The per-query streams (chunks, events, status) are bounded by age *and* bytes, discarding
    the oldest queries first, so nats-server's memory (per-subject state of every query held,
    plus the ids of the duplicate window) stops growing once a bound is reached (decision 49,
    docs/operations.md "Retention and server memory").

    ``dedicated_tenants`` get their own work stream each. Because nats-server 2.9 neither lets
    two streams overlap nor has a way to say "every tenant except these", the shared work then
    has to name its tenants explicitly: ``shared_tenants`` is required as soon as one tenant is
    dedicated (see :mod:`ark_mesh.bus.topology` for the resulting layout).
    """

    work: StreamSettings = StreamSettings(duplicate_window=120.0)
    chunks: StreamSettings = StreamSettings(
        max_age=_HOUR, max_bytes=256 * _MIB, duplicate_window=_RETRY_DEDUPE
    )
    events: StreamSettings = StreamSettings(
        max_age=7 * _DAY, max_bytes=128 * _MIB, duplicate_window=_RETRY_DEDUPE
    )
    status: StreamSettings = StreamSettings(
        max_age=7 * _DAY, max_bytes=128 * _MIB, duplicate_window=_RETRY_DEDUPE
    )
    memory: StreamSettings = StreamSettings(max_age=30 * _DAY)
    dlq: StreamSettings = StreamSettings(max_age=14 * _DAY)
    queries_bucket: KeyValueSettings = KeyValueSettings(ttl=7 * _DAY)
    cancel_bucket: KeyValueSettings = KeyValueSettings(ttl=_DAY)
    runs_bucket: KeyValueSettings = KeyValueSettings(ttl=7 * _DAY)
    responses_bucket: KeyValueSettings = KeyValueSettings(ttl=30 * _DAY)
    sessions_bucket: KeyValueSettings = KeyValueSettings(ttl=30 * _DAY)
    work_consumers: tuple[WorkConsumerSettings, ...] = msgspec.field(
        default_factory=_default_work_consumers
    )
    consumers: tuple[ConsumerSettings, ...] = msgspec.field(default_factory=_default_consumers)
    dedicated_tenants: tuple[str, ...] = ()
    shared_tenants: tuple[str, ...] | None = None


class WorkerSettings(ConfigSection, frozen=True, kw_only=True):
    """Behaviour of one worker replica.

    ``slots`` is how many handlers this replica runs at once; it never asks the server for more
    messages than it has free slots. ``pull_expires`` is how long one pull request waits on the
    server for messages. A new request is made once ``refill_fraction`` of the slots are free,
    or ``refill_delay`` seconds after the first slot freed up, whichever comes first (batches
    for fast handlers, prompt refills for slow ones). ``heartbeat_interval`` (seconds between
    two ``in_progress`` of one running message) defaults to a third of the consumer's AckWait;
    keep it well below AckWait, or a live replica's work is handed over (decision 49).
    Retry delays grow ``retry_delay_initial * 2 ** (delivery - 1)`` up to ``retry_delay_max``.
    ``grace_period`` is how long a stopping worker lets running handlers finish before it naks
    them for another replica. ``double_ack`` waits for the server to confirm each ack (NATS's
    "exactly once" recipe) at the price of a round trip per message.

    ``fence_after`` (default: AckWait minus one heartbeat interval) is how long a running
    message may go without a heartbeat the server confirmed before the worker stops its handler:
    past AckWait the server hands the message to another replica, and two attempts of one query
    must not stream side by side (a replica cut off from the cluster would otherwise go on).
    """

    slots: int = 8
    pull_expires: float = 5.0
    refill_fraction: float = 0.25
    refill_delay: float = 0.005
    heartbeat_interval: float | None = None
    fence_after: float | None = None
    retry_delay_initial: float = 1.0
    retry_delay_max: float = 60.0
    grace_period: float = 25.0
    double_ack: bool = False
    dead_letter_kind: str | None = None
    service: str | None = None

    def for_service(self, name: str) -> WorkerSettings:
        """These settings with ``service`` defaulted to ``name`` (DLQ records and metrics say
        which service gave up on a message) unless the configuration named one."""
        return self if self.service else msgspec.structs.replace(self, service=name)


class EncryptionKeySettings(ConfigSection, frozen=True, kw_only=True):
    """Where one key comes from: exactly one of ``file`` (a path) or ``env`` (a variable name),
    holding 32 random bytes in base64 (``head -c32 /dev/urandom | base64``).

    Key material is never written into the configuration itself: config files end up in
    ConfigMaps, Helm values and logs; files and variables come from Kubernetes Secrets.
    ``id`` travels in clear with every message (``Ark-Key-Id``) so readers pick the right key.
    """

    id: str
    file: str | None = None
    env: str | None = None


class TenantEncryptionSettings(ConfigSection, frozen=True, kw_only=True):
    """The keys of one tenant. Every key decrypts; ``primary`` (default: the last listed)
    encrypts. Rotation: add the new key with ``primary`` still naming the old one, roll every
    reader out, then make the new key primary; drop the old key once nothing stored under it
    is still needed (streams' max-age)."""

    keys: tuple[EncryptionKeySettings, ...]
    primary: str | None = None


class EncryptionSettings(ConfigSection, frozen=True, kw_only=True):
    """Per-tenant encryption of payload bodies (see :mod:`ark_mesh.bus.encryption`).

    Tenants under ``tenants`` have their bodies encrypted; others are left alone, unless listed
    in ``required_tenants``: then a process without a key for them refuses to publish for them,
    and clear-text messages arriving for them are rejected (fail closed).
    """

    tenants: dict[str, TenantEncryptionSettings] = msgspec.field(default_factory=dict)
    required_tenants: tuple[str, ...] = ()

    def serving(self, tenant: str | None) -> EncryptionSettings:
        """These settings for a process that serves only ``tenant`` (a service sharded by
        tenant; ``None``: every tenant): only that tenant's keys are loaded, so a process holds
        no key it has no use for. ``required_tenants`` stays whole: a process without a
        tenant's key never publishes in clear for it."""
        if tenant is None:
            return self
        kept = {name: keys for name, keys in self.tenants.items() if name == tenant}
        return msgspec.structs.replace(self, tenants=kept)


class BusConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything a service needs to configure its bus use, as one block of its config file.

    ``encryption`` takes effect through ``Bus.connect(config.connection,
    encryption=config.encryption)``.
    """

    connection: ConnectionSettings = ConnectionSettings()
    topology: TopologyConfig = TopologyConfig()
    worker: WorkerSettings = WorkerSettings()
    encryption: EncryptionSettings = EncryptionSettings()
