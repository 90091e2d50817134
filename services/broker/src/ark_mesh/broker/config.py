"""The broker's configuration: one typed file (Helm renders it), env overrides on top.

Loaded with :func:`ark_mesh.service.load_config`; override any field with
``ARK_MESH__<SECTION>__<FIELD>`` (e.g. ``ARK_MESH__AUTH__MODE=token``).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from ark_mesh.bus import BusConfig, ConsumerSettings, TopologyConfig, WorkerSettings
from ark_mesh.bus.sequenced import DEFAULT_GAP_WAIT
from ark_mesh.contracts import SubjectError, subjects
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import ConfigError, HealthConfig, KubernetesConfig, ResourcesConfig

__all__ = [
    "SERVICE_NAME",
    "ApprovalsConfig",
    "AuthConfig",
    "BrokerConfig",
    "HttpConfig",
    "LimitsConfig",
    "ReconciliationConfig",
    "SSEConfig",
    "TenantToken",
]

SERVICE_NAME = "broker"
STATUS_FILTER = f"{subjects.ROOT}.*.query.*.status"
EVENTS_FILTER = f"{subjects.ROOT}.*.query.*.event"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class TenantToken(ConfigSection, frozen=True, kw_only=True):
    """A bearer token of ``tenant``, stored as the hex SHA-256 of the token (never the token)."""

    tenant: str
    sha256: str


class AuthConfig(ConfigSection, frozen=True, kw_only=True):
    """``none``: the tenant is ``?namespace=`` or ``default_tenant`` (trusted networks only).
    ``token``: ``Authorization: Bearer <token>`` must match one of ``tokens``."""

    mode: Literal["none", "token"] = "none"
    default_tenant: str = "default"
    tokens: tuple[TenantToken, ...] = ()


class LimitsConfig(ConfigSection, frozen=True, kw_only=True):
    """Admission: at most ``max_in_flight_per_tenant`` accepted, not yet terminal queries per
    tenant (429 with ``Retry-After: retry_after_seconds`` beyond); bodies up to
    ``max_body_bytes``; a non-streaming OpenAI call waits ``completion_wait_seconds`` at most
    when the request names no timeout."""

    max_in_flight_per_tenant: int = 100
    retry_after_seconds: int = 5
    max_body_bytes: int = 1024 * 1024
    completion_wait_seconds: float = 300.0


class SSEConfig(ConfigSection, frozen=True, kw_only=True):
    """SSE: a ``: heartbeat`` comment after ``heartbeat_seconds`` without a chunk.

    ``watch_max_seconds`` (unset: no limit, as Ark) ends a ``watch=true`` stream of Ark's
    broker routes, and a ``GET /stream/{queryName}`` still waiting or following, after that
    long, as a proxy's idle limit would: the client reconnects (EventSource does by itself).

    ``read_within_seconds`` bounds how long a stream read keeps trying to (re)create its
    consumer, or waits for NATS to come back, before the stream ends with an error event and
    ``[DONE]`` (the client resumes with ``Last-Event-ID``); ``follower_buffer`` is how many
    entries a client may lag behind the broker's shared feed before it is ended the same way.

    A query's chunks are sent in ``seq`` order, each once (:mod:`ark_mesh.contracts.sequencing`):
    chunks stored behind a missing one wait for it at most ``chunk_gap_seconds`` (longer than a
    publisher re-sends a chunk), then go out without it. A broker-mode query whose status is
    terminal but whose stream stayed silent for ``final_chunk_grace_seconds`` twice in a row
    ends with a final chunk the broker builds from the status (``ark.synthesized``; its
    reconciler could not store one)."""

    heartbeat_seconds: float = 15.0
    watch_max_seconds: float | None = None
    read_within_seconds: float = 20.0
    follower_buffer: int = 10_000
    chunk_gap_seconds: float = DEFAULT_GAP_WAIT
    final_chunk_grace_seconds: float = 20.0


ApiMode = Literal["broker", "direct"]


class ReconciliationConfig(ConfigSection, frozen=True, kw_only=True):
    """How a query written through ``POST /v1/queries`` is resolved when it does not say
    (``default_reconciliation``), and the modes a request may ask for (``allowed_modes``):
    ``broker`` (no Query resource) and ``direct`` (a Query resource, as Ark's API creates it;
    a request for ``inController``/``standalone`` is a direct one asking for that mode, which
    the controller's own ``allowedModes`` then decides). ``direct`` needs the ``kubernetes``
    section."""

    default_reconciliation: ApiMode = "broker"
    allowed_modes: tuple[ApiMode, ...] = ("broker", "direct")


class ApprovalsConfig(ConfigSection, frozen=True, kw_only=True):
    """Tool approvals of broker-mode queries: every ``sweep_seconds`` each replica applies
    ``onTimeout`` to the approvals whose timeout has passed (direct queries: the controller),
    and publishes a resume left unpublished for ``redispatch_seconds`` (a broker stopped
    between recording a decision and publishing it)."""

    sweep_seconds: float = 5.0
    redispatch_seconds: float = 30.0


class HttpConfig(ConfigSection, frozen=True, kw_only=True):
    host: str = "0.0.0.0"
    port: int = 8000


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


class BrokerConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the broker reads at start.

    ``durable`` is the broker's *own* consumer on ``ARK_STATUS`` (it keeps the ``ark-queries``
    read model; status-sync has its own), ``sessions_durable`` its consumer on ``ARK_EVENTS``
    (it keeps the ``ark-sessions`` read model, :mod:`.sessions`). Both are shared by every
    replica and added to ``bus.topology.consumers`` when the topology does not list them. ``provision`` creates or updates the topology at start.
    ``kubernetes`` is needed for Query resources — ``createResource: true`` (the mirror) and
    ``reconciliation: direct`` — and for the Query resources ``GET /v1/queries`` lists next to
    the broker's own: absent, such requests are refused; an empty section means in-cluster
    credentials. ``resources`` is where ``/v1/agents|models|teams|tools`` and
    ``/openai/v1/models`` read from (the section the reconcilers share); without it they read
    a watch cache over the ``kubernetes`` connection, and without either they answer 503.
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    durable: str = "broker"
    sessions_durable: str = "broker-sessions"
    http: HttpConfig = HttpConfig()
    health: HealthConfig = HealthConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    streaming: SSEConfig = SSEConfig()
    kubernetes: KubernetesConfig | None = None
    resources: ResourcesConfig | None = None
    reconciliation: ReconciliationConfig = ReconciliationConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    grace_period: float = 25.0

    def validate(self) -> BrokerConfig:
        """Rules the Struct cannot express; raises :class:`ConfigError` naming the field."""
        if self.auth.mode == "token" and not self.auth.tokens:
            raise ConfigError("auth.tokens: auth.mode 'token' needs at least one token")
        for index, token in enumerate(self.auth.tokens):
            if not _SHA256_HEX.match(token.sha256):
                raise ConfigError(
                    f"auth.tokens[{index}].sha256: expected 64 lowercase hex digits "
                    "(the SHA-256 of the token, never the token itself)"
                )
            try:
                subjects.validate_token(token.tenant, "tenant")
            except SubjectError as exc:
                raise ConfigError(f"auth.tokens[{index}].tenant: {exc}") from None
        modes = self.reconciliation
        if modes.default_reconciliation not in modes.allowed_modes:
            raise ConfigError(
                f"reconciliation.default_reconciliation {modes.default_reconciliation!r} is not "
                f"in reconciliation.allowed_modes {list(modes.allowed_modes)}"
            )
        if self.approvals.sweep_seconds <= 0:
            raise ConfigError("approvals.sweep_seconds must be greater than 0")
        if self.approvals.redispatch_seconds < 0:
            raise ConfigError("approvals.redispatch_seconds must not be negative")
        if self.limits.max_in_flight_per_tenant < 1:
            raise ConfigError("limits.max_in_flight_per_tenant must be at least 1")
        return self

    def status_consumer(self) -> ConsumerSettings:
        for consumer in self.bus.topology.consumers:
            if consumer.durable == self.durable:
                return consumer
        # Never given up: the read model is the only place a broker-mode query's status
        # lives, and an update that could not be applied yet (its bucket had no leader) must
        # be applied later, not dead-lettered after five tries (seen in the soak: a query
        # whose status said done stayed running in the API).
        return ConsumerSettings(
            stream=subjects.ARK_STATUS,
            durable=self.durable,
            filter_subject=STATUS_FILTER,
            max_deliver=-1,
        )

    def sessions_consumer(self) -> ConsumerSettings:
        for consumer in self.bus.topology.consumers:
            if consumer.durable == self.sessions_durable:
                return consumer
        return ConsumerSettings(
            stream=subjects.ARK_EVENTS,
            durable=self.sessions_durable,
            filter_subject=EVENTS_FILTER,
            max_deliver=-1,
        )

    def topology(self) -> TopologyConfig:
        """The configured topology plus the broker's own status and events consumers."""
        topology = self.bus.topology
        listed = {c.durable for c in topology.consumers}
        missing = tuple(
            consumer
            for consumer in (self.status_consumer(), self.sessions_consumer())
            if consumer.durable not in listed
        )
        if not missing:
            return topology
        return msgspec.structs.replace(topology, consumers=(*topology.consumers, *missing))
