"""Streams, durable consumers and KV buckets of the mesh, provisioned idempotently from config.

Layout (ARCHITECTURE §4)::

    ARK_WORK     work-queue  ark.*.work.>                 one durable pull consumer per kind
    ARK_CHUNKS   limits      ark.*.query.*.chunk          max-age (replay window for SSE resume)
    ARK_EVENTS   limits      ark.*.query.*.event
    ARK_STATUS   limits      ark.*.query.*.status, …result
    ARK_MEMORY   limits      ark.*.memory.*               max-age = message TTL
    ARK_DLQ      limits      ark.*.dlq.*
    KV ark-queries (broker read model), KV ark-cancel (cancel flags), KV ark-runs (run step logs),
    KV ark-sessions (the broker's sessions read model)

**Dedicated tenants.** A tenant with its own reconcilers gets its own work stream
``ARK_WORK_TENANT_<tenant>`` over ``ark.<tenant>.work.>``, with the same durable names. The
shared stream must then stop capturing that tenant, and nats-server 2.9 makes this awkward:

* two streams may not capture overlapping subjects (``ark.*.work.>`` overlaps
  ``ark.acme.work.>``), and a subject filter cannot express "every tenant except acme";
* a work-queue stream allows only non-overlapping consumers, and 2.9 consumers take a single
  filter subject that must be a subset of one of the stream's subjects.

So once any tenant is dedicated, the shared tenants are listed explicitly
(``sharedTenants``) and the shared work is split **per kind** — ``ARK_WORK_QUERY`` over
``ark.<t>.work.query`` for each shared ``t``, and so on — each with one unfiltered consumer.
A publish for a tenant that is in neither list fails loudly (no stream answers) instead of
being queued where no reconciler looks. Moving from the unsharded to the sharded layout is
reported as a conflict on ``ARK_WORK``'s subjects: drain it and delete it first, the
provisioner never deletes a stream. Services find their stream and consumer through
:meth:`Topology.work_binding`, so they never hard-code the layout.

**Idempotency and honesty.** Provisioning reads each stream/consumer first and writes only
what differs. Fields JetStream cannot change in place (retention, storage, deliver/ack policy)
raise :class:`~ark_mesh.bus.errors.TopologyConflictError` naming the stream and field, and after
every create/update the configuration the server *echoes back* is compared with what was asked:
nats-server 2.9 accepts and silently drops settings it does not know (compression, per-message
TTL, …), which must not pass for success.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from nats.errors import NoRespondersError
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from ark_mesh.bus.config import (
    ConsumerSettings,
    KeyValueSettings,
    StreamSettings,
    TopologyConfig,
    WorkConsumerSettings,
)
from ark_mesh.bus.connection import Bus
from ark_mesh.bus.errors import TopologyConfigError, TopologyConflictError, TopologyMissingError
from ark_mesh.contracts import SubjectError, subjects
from ark_mesh.telemetry import get_logger

__all__ = [
    "ConsumerPlan",
    "ProvisionReport",
    "ProvisionResult",
    "StreamPlan",
    "Topology",
    "WorkBinding",
    "dedicated_work_stream",
    "shared_work_stream",
]

_log = get_logger(__name__)

Action = Literal["created", "updated", "unchanged"]

_WORK_KINDS: Final[tuple[subjects.WorkKind, ...]] = ("query", "responses", "embeddings")
_STREAM_IMMUTABLE: Final = frozenset({"retention", "storage"})
_CONSUMER_IMMUTABLE: Final = frozenset({"ack_policy", "deliver_policy", "replay_policy"})
_KV_DUPLICATE_WINDOW: Final = 120.0


def dedicated_work_stream(tenant: str) -> str:
    return f"{subjects.ARK_WORK}_TENANT_{tenant}"


def shared_work_stream(kind: str) -> str:
    """Name of the per-kind shared work stream used when some tenants are dedicated."""
    return f"{subjects.ARK_WORK}_{kind.upper()}"


@dataclass(frozen=True)
class StreamPlan:
    """A stream as it should be; ``managed`` are the fields compared with the server's copy."""

    config: api.StreamConfig
    managed: tuple[str, ...]
    kind: Literal["stream", "kv"] = "stream"

    @property
    def name(self) -> str:
        assert self.config.name is not None
        return self.config.name


@dataclass(frozen=True)
class ConsumerPlan:
    stream: str
    config: api.ConsumerConfig
    managed: tuple[str, ...]

    @property
    def durable(self) -> str:
        assert self.config.durable_name is not None
        return self.config.durable_name


@dataclass(frozen=True)
class WorkBinding:
    """Where a reconciler of ``kind`` (for ``tenant``, or the shared pool) pulls its work."""

    kind: subjects.WorkKind
    stream: str
    durable: str
    filter_subject: str | None
    tenant: str | None = None


@dataclass(frozen=True)
class ProvisionResult:
    entity: Literal["stream", "kv", "consumer"]
    name: str
    action: Action
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProvisionReport:
    results: tuple[ProvisionResult, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return any(result.action != "unchanged" for result in self.results)

    def by_name(self) -> dict[str, ProvisionResult]:
        return {result.name: result for result in self.results}


class Topology:
    """The desired topology computed from :class:`TopologyConfig` (validated on construction)."""

    def __init__(self, config: TopologyConfig | None = None) -> None:
        self.config = config or TopologyConfig()
        self._validate()
        self.streams: tuple[StreamPlan, ...] = tuple(self._plan_streams())
        self.consumers: tuple[ConsumerPlan, ...] = tuple(self._plan_consumers())
        self._bindings: dict[tuple[str, str | None], WorkBinding] = {
            (binding.kind, binding.tenant): binding for binding in self._plan_bindings()
        }

    # -- queries --------------------------------------------------------------------------------

    @property
    def sharded(self) -> bool:
        return bool(self.config.dedicated_tenants)

    def work_binding(self, kind: str, tenant: str | None = None) -> WorkBinding:
        """The stream and durable consumer a reconciler of ``kind`` pulls from.

        ``tenant`` selects a dedicated tenant's stream; ``None`` is the shared pool.
        """
        binding = self._bindings.get((kind, tenant))
        if binding is None:
            known = sorted({k for k, _ in self._bindings})
            dedicated = list(self.config.dedicated_tenants)
            raise TopologyConfigError(
                f"no work consumer for kind {kind!r} and tenant {tenant!r}: configured kinds "
                f"{known}, dedicated tenants {dedicated}"
            )
        return binding

    def stream_plan(self, name: str) -> StreamPlan:
        for plan in self.streams:
            if plan.name == name:
                return plan
        raise TopologyMissingError(f"stream {name} is not part of the configured topology")

    # -- provisioning ---------------------------------------------------------------------------

    async def provision(self, bus: Bus, *, patience: float = 60.0) -> ProvisionReport:
        """Create or update everything; a second run with the same config changes nothing.

        A step the server does not answer is tried again for up to ``patience`` seconds from
        the start (a cluster without quorum answers nothing until a node is back)."""
        deadline = time.monotonic() + patience
        results: list[ProvisionResult] = []
        clustered = bool(bus.nc._server_info.get("cluster"))  # no public accessor in nats-py
        for stream in self.streams:
            replicas = stream.config.num_replicas or 1
            if replicas > 1 and not clustered:
                # A standalone 2.9 server refuses R>1 on create but *stores* it on update
                # without replicating anything, so the echo cannot be trusted here.
                raise TopologyConflictError(
                    "stream",
                    stream.name,
                    "num_replicas",
                    wanted=replicas,
                    actual=1,
                    detail="the server is not part of a cluster; replicas > 1 cannot be honoured",
                )
        for stream in self.streams:
            results.append(
                await _patiently(
                    stream.name, functools.partial(_ensure_stream, bus, stream), deadline
                )
            )
        for consumer in self.consumers:
            step = functools.partial(_ensure_consumer, bus, consumer)
            name = f"{consumer.stream}/{consumer.durable}"
            results.append(await _patiently(name, step, deadline))
        report = ProvisionReport(tuple(results))
        changed = [f"{r.name}:{r.action}" for r in report.results if r.action != "unchanged"]
        _log.info("topology provisioned", changed=changed, total=len(report.results))
        return report

    # -- planning -------------------------------------------------------------------------------

    def _validate(self) -> None:
        config = self.config
        for tenant in (*config.dedicated_tenants, *(config.shared_tenants or ())):
            try:
                subjects.validate_token(tenant, "tenant")
            except SubjectError as error:
                raise TopologyConfigError(f"topology tenant list: {error}") from None
        _no_duplicates(config.dedicated_tenants, "dedicatedTenants")
        if config.shared_tenants is not None:
            _no_duplicates(config.shared_tenants, "sharedTenants")
            both = set(config.dedicated_tenants) & set(config.shared_tenants)
            if both:
                raise TopologyConfigError(
                    f"tenants {sorted(both)} are listed as both dedicated and shared"
                )
        if config.dedicated_tenants and config.shared_tenants is None:
            raise TopologyConfigError(
                "dedicatedTenants needs sharedTenants: nats-server 2.9 streams cannot overlap "
                "and a subject cannot exclude tenants, so the shared work streams must list the "
                "tenants they serve (an empty list is allowed)"
            )
        if config.shared_tenants is not None and not config.dedicated_tenants:
            raise TopologyConfigError(
                "sharedTenants is only meaningful with dedicatedTenants; without dedicated "
                "tenants the shared work stream serves every tenant (ark.*.work.>)"
            )
        kinds = [consumer.kind for consumer in config.work_consumers]
        _no_duplicates(tuple(kinds), "workConsumers kinds")
        for name, settings in self._stream_settings().items():
            if settings.replicas < 1:
                raise TopologyConfigError(f"{name}.replicas must be at least 1")
            if settings.duplicate_window < 0 or settings.max_age < 0:
                raise TopologyConfigError(f"{name}: durations must not be negative")

    def _stream_settings(self) -> Mapping[str, StreamSettings]:
        c = self.config
        return {
            "work": c.work,
            "chunks": c.chunks,
            "events": c.events,
            "status": c.status,
            "memory": c.memory,
            "dlq": c.dlq,
        }

    def _plan_streams(self) -> Iterable[StreamPlan]:
        c = self.config
        if not self.sharded:
            yield _stream(
                subjects.ARK_WORK,
                subjects.STREAM_SUBJECTS[subjects.ARK_WORK],
                c.work,
                api.RetentionPolicy.WORK_QUEUE,
                "Work for reconcilers (one message per job, removed on ack)",
            )
        else:
            shared = c.shared_tenants or ()
            if shared:
                for kind in self._kinds():
                    yield _stream(
                        shared_work_stream(kind),
                        tuple(subjects.work(tenant, kind) for tenant in shared),
                        c.work,
                        api.RetentionPolicy.WORK_QUEUE,
                        f"Shared {kind} work of tenants without dedicated reconcilers",
                    )
            for tenant in c.dedicated_tenants:
                yield _stream(
                    dedicated_work_stream(tenant),
                    (f"{subjects.ROOT}.{tenant}.work.>",),
                    c.work,
                    api.RetentionPolicy.WORK_QUEUE,
                    f"Work of tenant {tenant} (dedicated reconcilers)",
                )
        limits = api.RetentionPolicy.LIMITS
        for name, settings, description, direct in (
            (subjects.ARK_CHUNKS, c.chunks, "Token chunks per query (SSE replay)", True),
            (subjects.ARK_EVENTS, c.events, "Operation events per query", False),
            (subjects.ARK_STATUS, c.status, "Status updates and results per query", False),
            (subjects.ARK_MEMORY, c.memory, "Conversation memory", True),
            (subjects.ARK_DLQ, c.dlq, "Dead letters with their reason", False),
        ):
            yield _stream(
                name, subjects.STREAM_SUBJECTS[name], settings, limits, description, direct
            )
        yield _kv_stream(subjects.QUERIES_BUCKET, c.queries_bucket, "Latest status per query")
        yield _kv_stream(subjects.CANCEL_BUCKET, c.cancel_bucket, "Cancel flags per query")
        yield _kv_stream(subjects.RUNS_BUCKET, c.runs_bucket, "Step log of each running query")
        yield _kv_stream(
            subjects.RESPONSES_BUCKET, c.responses_bucket, "Stored OpenAI responses (conversations)"
        )
        yield _kv_stream(subjects.SESSIONS_BUCKET, c.sessions_bucket, "Sessions read model")

    def _kinds(self) -> tuple[subjects.WorkKind, ...]:
        return tuple(consumer.kind for consumer in self.config.work_consumers)

    def _plan_bindings(self) -> Iterable[WorkBinding]:
        c = self.config
        for consumer in c.work_consumers:
            if not self.sharded:
                yield WorkBinding(
                    kind=consumer.kind,
                    stream=subjects.ARK_WORK,
                    durable=consumer.durable,
                    filter_subject=f"{subjects.ROOT}.*.work.{consumer.kind}",
                )
            elif c.shared_tenants:
                yield WorkBinding(
                    kind=consumer.kind,
                    stream=shared_work_stream(consumer.kind),
                    durable=consumer.durable,
                    filter_subject=None,
                )
            for tenant in c.dedicated_tenants:
                yield WorkBinding(
                    kind=consumer.kind,
                    stream=dedicated_work_stream(tenant),
                    durable=consumer.durable,
                    filter_subject=subjects.work(tenant, consumer.kind),
                    tenant=tenant,
                )

    def _plan_consumers(self) -> Iterable[ConsumerPlan]:
        by_kind = {consumer.kind: consumer for consumer in self.config.work_consumers}
        for binding in self._plan_bindings():
            yield _work_consumer(binding, by_kind[binding.kind])
        known_streams = {plan.name for plan in self.streams}
        for consumer in self.config.consumers:
            if consumer.stream not in known_streams:
                raise TopologyConfigError(
                    f"consumer {consumer.durable!r} refers to stream {consumer.stream!r}, which "
                    f"the topology does not define (streams: {sorted(known_streams)})"
                )
            yield _consumer(consumer)


def _no_duplicates(values: tuple[str, ...], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise TopologyConfigError(f"{what} lists {value!r} twice")
        seen.add(value)


def _stream(
    name: str,
    stream_subjects: Iterable[str],
    settings: StreamSettings,
    retention: api.RetentionPolicy,
    description: str,
    allow_direct: bool = False,
) -> StreamPlan:
    # The server refuses a duplicate window longer than max-age; clamp instead of failing.
    duplicate_window = settings.duplicate_window
    if settings.max_age > 0:
        duplicate_window = min(duplicate_window, settings.max_age)
    config = api.StreamConfig(
        name=name,
        description=description,
        subjects=list(stream_subjects),
        retention=retention,
        storage=api.StorageType(settings.storage),
        num_replicas=settings.replicas,
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
        max_msgs=settings.max_msgs,
        max_msg_size=settings.max_msg_size,
        duplicate_window=duplicate_window,
        discard=api.DiscardPolicy.OLD,
        allow_direct=allow_direct,
    )
    managed = [
        "subjects",
        "retention",
        "storage",
        "num_replicas",
        "max_age",
        "max_bytes",
        "max_msgs",
        "max_msg_size",
        "duplicate_window",
        "discard",
        "allow_direct",
        "description",
    ]
    if settings.compression is not None:
        config.compression = api.StoreCompression(settings.compression)
        managed.append("compression")
    if settings.allow_msg_ttl is not None:
        config.allow_msg_ttl = settings.allow_msg_ttl
        managed.append("allow_msg_ttl")
    return StreamPlan(config=config, managed=tuple(managed))


def _kv_stream(bucket: str, settings: KeyValueSettings, description: str) -> StreamPlan:
    # The same backing-stream shape nats-py's create_key_value builds, so js.key_value() and
    # any other client's KV implementation recognise the bucket.
    duplicate_window = _KV_DUPLICATE_WINDOW
    if settings.ttl > 0:
        duplicate_window = min(duplicate_window, settings.ttl)
    config = api.StreamConfig(
        name=f"KV_{bucket}",
        description=description,
        subjects=[f"$KV.{bucket}.>"],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType(settings.storage),
        num_replicas=settings.replicas,
        max_age=settings.ttl,
        max_msgs_per_subject=settings.history,
        max_msg_size=settings.max_value_size,
        duplicate_window=duplicate_window,
        discard=api.DiscardPolicy.NEW,
        deny_delete=True,
        allow_rollup_hdrs=True,
        allow_direct=(
            settings.allow_direct if settings.allow_direct is not None else settings.replicas == 1
        ),
    )
    managed = (
        "subjects",
        "retention",
        "storage",
        "num_replicas",
        "max_age",
        "max_msgs_per_subject",
        "max_msg_size",
        "duplicate_window",
        "discard",
        "deny_delete",
        "allow_rollup_hdrs",
        "allow_direct",
        "description",
    )
    return StreamPlan(config=config, managed=managed, kind="kv")


_CONSUMER_MANAGED: Final = (
    "filter_subject",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "max_waiting",
    "deliver_policy",
    "replay_policy",
    "description",
)


def _work_consumer(binding: WorkBinding, settings: WorkConsumerSettings) -> ConsumerPlan:
    scope = f"tenant {binding.tenant}" if binding.tenant else "shared pool"
    config = api.ConsumerConfig(
        durable_name=binding.durable,
        description=f"{binding.kind} reconcilers ({scope})",
        filter_subject=binding.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        replay_policy=api.ReplayPolicy.INSTANT,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        max_waiting=settings.max_waiting,
    )
    return _with_replicas(
        ConsumerPlan(binding.stream, config, _CONSUMER_MANAGED), settings.replicas
    )


def _consumer(settings: ConsumerSettings) -> ConsumerPlan:
    config = api.ConsumerConfig(
        durable_name=settings.durable,
        description=f"{settings.durable} on {settings.stream}",
        filter_subject=settings.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        replay_policy=api.ReplayPolicy.INSTANT,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
        max_waiting=settings.max_waiting,
    )
    return _with_replicas(
        ConsumerPlan(settings.stream, config, _CONSUMER_MANAGED), settings.replicas
    )


def _with_replicas(plan: ConsumerPlan, replicas: int | None) -> ConsumerPlan:
    """Ask for ``replicas`` explicitly (and compare it) only when configured: left out, the
    server gives a durable consumer its stream's replica count."""
    if replicas is None:
        return plan
    if replicas < 1:
        raise TopologyConfigError(f"consumer {plan.durable}: replicas must be at least 1")
    plan.config.num_replicas = replicas
    return ConsumerPlan(plan.stream, plan.config, (*plan.managed, "num_replicas"))


async def _patiently(
    name: str, step: Callable[[], Awaitable[ProvisionResult]], deadline: float
) -> ProvisionResult:
    """Run one provisioning step, again after a timeout or "no responders", until ``deadline``
    (``time.monotonic()``).

    On a cluster every create goes through the meta leader's Raft log, and several services
    provision at once at start-up: an answer can take longer than the request timeout, or not
    come at all while the cluster has no quorum (a node restarting, an election). Each step
    reads before it writes, so running it again is safe (a create that did land is then
    "unchanged" or "updated"). A create refused for want of live nodes ("no suitable peers")
    is tried again too: a replicated stream can be placed once the restarting node is back.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await step()
        except (TimeoutError, NoRespondersError, TopologyConflictError) as error:
            if isinstance(error, TopologyConflictError) and not _too_few_peers(error):
                raise
            delay = min(2.0, 0.25 * 2 ** (attempt - 1))
            if time.monotonic() + delay >= deadline:
                raise
            _log.warning(
                "provisioning step unanswered, retrying",
                name=name,
                attempt=attempt,
                retry_in=delay,
                error=str(error) or type(error).__name__,
            )
            await asyncio.sleep(delay)


_NO_SUITABLE_PEERS: Final = 10005
"""JetStream's ``JSClusterNoPeersErr``: fewer live nodes than the stream's replicas."""


def _too_few_peers(error: TopologyConflictError) -> bool:
    """Whether the server refused only because too few nodes are up right now (a node is
    restarting): worth another try, unlike a setting it cannot apply."""
    cause = error.__cause__
    return isinstance(cause, APIError) and cause.err_code == _NO_SUITABLE_PEERS


# -- comparing what we want with what the server has ------------------------------------------


def _normalise(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return sorted(str(item) for item in value)
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums
        return value.value
    return value


def _same(wanted: Any, actual: Any) -> bool:
    wanted, actual = _normalise(wanted), _normalise(actual)
    if isinstance(wanted, float) or isinstance(actual, float):
        if wanted is None or actual is None:
            return bool(wanted == actual)
        # The server stores durations in nanoseconds; allow for the float round trip.
        return math.isclose(float(wanted), float(actual), rel_tol=1e-9, abs_tol=1e-6)
    if wanted is None and actual in (False, ""):
        return True
    return bool(wanted == actual)


def _differences(wanted: Any, actual: Any, fields: Iterable[str]) -> list[str]:
    return [name for name in fields if not _same(getattr(wanted, name), getattr(actual, name))]


async def _ensure_stream(bus: Bus, plan: StreamPlan) -> ProvisionResult:
    entity: Literal["stream", "kv"] = plan.kind
    try:
        info = await bus.jsm.stream_info(plan.name)
    except NotFoundError:
        try:
            info = await bus.jsm.add_stream(plan.config)
        except APIError as error:
            raise _stream_rejected(plan, error, plan.managed) from error
        _verify_echo("stream", plan.name, plan.config, info.config, plan.managed)
        _log.info("stream created", stream=plan.name)
        return ProvisionResult(entity, plan.name, "created")

    differing = _differences(plan.config, info.config, plan.managed)
    if not differing:
        return ProvisionResult(entity, plan.name, "unchanged")
    for name in differing:
        if name in _STREAM_IMMUTABLE:
            raise TopologyConflictError(
                "stream",
                plan.name,
                name,
                wanted=_normalise(getattr(plan.config, name)),
                actual=_normalise(getattr(info.config, name)),
                detail="JetStream cannot change this in place; drain the stream, delete it and "
                "provision again",
            )
    try:
        info = await bus.jsm.update_stream(plan.config)
    except APIError as error:
        raise _stream_rejected(plan, error, differing, current=info.config) from error
    _verify_echo("stream", plan.name, plan.config, info.config, plan.managed)
    _log.info("stream updated", stream=plan.name, fields=differing)
    return ProvisionResult(entity, plan.name, "updated", tuple(differing))


def _stream_rejected(
    plan: StreamPlan,
    error: APIError,
    fields: Iterable[str],
    current: api.StreamConfig | None = None,
) -> TopologyConflictError:
    description = error.description or str(error)
    candidates = list(fields)
    field_name = _field_named_in(description, candidates) or (
        candidates[0] if candidates else "config"
    )
    return TopologyConflictError(
        "stream",
        plan.name,
        field_name,
        wanted=_normalise(getattr(plan.config, field_name, None)),
        actual=_normalise(getattr(current, field_name, None)) if current is not None else None,
        detail=f"server refused: {description}",
    )


def _field_named_in(description: str, candidates: Iterable[str]) -> str | None:
    """The candidate field the server's error message talks about, if it names one.

    Server messages use words, not field names ("replicas > 1 not supported", "subjects
    overlap with an existing stream"), so match the distinctive words of each field name.
    """
    lowered = description.lower()
    for name in candidates:
        words = [word for word in name.split("_") if len(word) > 3] or [name]
        if any(re.search(rf"\b{re.escape(word)}", lowered) for word in words):
            return name
    return None


def _verify_echo(entity: str, name: str, wanted: Any, echoed: Any, fields: Iterable[str]) -> None:
    for field_name in _differences(wanted, echoed, fields):
        raise TopologyConflictError(
            entity,
            name,
            field_name,
            wanted=_normalise(getattr(wanted, field_name)),
            actual=_normalise(getattr(echoed, field_name)),
            detail="the server accepted the request but did not apply this setting "
            "(nats-server 2.9 silently ignores settings it does not support)",
        )


async def _ensure_consumer(bus: Bus, plan: ConsumerPlan) -> ProvisionResult:
    label = f"{plan.stream}/{plan.durable}"
    try:
        info = await bus.jsm.consumer_info(plan.stream, plan.durable)
    except NotFoundError:
        info = None
    if info is not None:
        differing = _differences(plan.config, info.config, plan.managed)
        if not differing:
            return ProvisionResult("consumer", label, "unchanged")
        for name in differing:
            if name in _CONSUMER_IMMUTABLE:
                raise TopologyConflictError(
                    "consumer",
                    label,
                    name,
                    wanted=_normalise(getattr(plan.config, name)),
                    actual=_normalise(getattr(info.config, name)),
                    detail="JetStream cannot change this in place; delete the consumer (after "
                    "draining it) and provision again",
                )
    else:
        differing = []
    try:
        created = await bus.jsm.add_consumer(plan.stream, plan.config)
    except APIError as error:
        candidates = differing or list(plan.managed)
        raise TopologyConflictError(
            "consumer",
            label,
            candidates[0],
            wanted=_normalise(getattr(plan.config, candidates[0])),
            actual=_normalise(getattr(info.config, candidates[0])) if info else None,
            detail=f"server refused: {error.description or error}",
        ) from error
    _verify_echo("consumer", label, plan.config, created.config, plan.managed)
    action: Action = "created" if info is None else "updated"
    _log.info(f"consumer {action}", consumer=label, fields=differing)
    return ProvisionResult("consumer", label, action, tuple(differing))
