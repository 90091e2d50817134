"""The broker's read model: the latest status of every broker-mode query, in KV ``ark-queries``.

Key ``<tenant>.<queryId>``: the tenant is part of the key, so a lookup with the caller's tenant
can never find another tenant's query. The value is a :class:`QueryRecord` (the request as
accepted plus the newest status). Writers compare-and-set on the entry's revision, so several
broker replicas applying status updates never overwrite a newer status with an older one.

Which update may replace which status is status-sync's rule
(:func:`ark_mesh.contracts.ordering.decide`), used as is so the CR mirror and the read model
can never disagree: phases only move forward, a terminal phase is final. One addition for tool
approvals: a decision writes the record back to ``running`` and opens a new round (as Ark's
controller does when it resumes a query), so a non-terminal update of an earlier round is old
news (an ending is final whichever round reports it).

A query paused at ``input-required`` keeps its pending :class:`ApprovalRequest` in the record
(from the status update that paused it), and every decided approval as an
:class:`ApprovalOutcome`; ``<tenant>.approvals.<taskId>`` finds the query of a task id.

:class:`InFlight` watches the whole bucket and keeps, per tenant, the ids of queries that are
accepted but not terminal — the admission count behind ``429``. Every replica watches the same
bucket, so the count includes queries other replicas accepted.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from ark_mesh.broker.bodies import is_name
from ark_mesh.broker.errors import UnavailableError
from ark_mesh.broker.responses import QueryDetailResponse, QueryResponse
from ark_mesh.bus import (
    BucketIndex,
    DecryptionError,
    InvalidKeyError,
    KeyNotFoundError,
    KeyValue,
    KeyWrongLastSequenceError,
    NatsError,
    PayloadCipher,
)
from ark_mesh.contracts import (
    TERMINAL_PHASES,
    DurationError,
    QueryRequest,
    QuerySpec,
    QueryStatus,
    StatusUpdate,
    parse_duration,
    subjects,
)
from ark_mesh.contracts.approvals import ApprovalDecision, ApprovalRequest
from ark_mesh.contracts.ark import BROKER_MIRROR_LABEL
from ark_mesh.contracts.ordering import Verdict, decide
from ark_mesh.telemetry import get_logger

__all__ = [
    "ApprovalOutcome",
    "InFlight",
    "QueryRecord",
    "ReadModel",
    "approval_deadline",
    "now",
    "parse_instant",
]

_log = get_logger(__name__)

NAME_CLAIM_GRACE = 15.0
"""Seconds a name claim may stay without its query's record before another request may take
it over (an accept records its query milliseconds after claiming; its requests time out in 5 s)."""


def _name_value(query_id: str) -> bytes:
    """A name claim: the query's id and when it was claimed (``<id>@<unix seconds>``)."""
    return f"{query_id}@{datetime.now(UTC).timestamp():.3f}".encode()


def _parse_name_value(value: bytes) -> tuple[str, float | None]:
    """``(query id, claimed at)``; a claim written before the time was kept has no time."""
    held_by, _, at = value.decode(errors="replace").partition("@")
    try:
        return held_by, float(at) if at else None
    except ValueError:
        return held_by, None


_IDEMPOTENCY = "idempotency"
_NAMES = "names"
_APPROVALS = "approvals"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime | None:
    """An RFC 3339 instant (``Z`` or an offset; naive ones are UTC), or ``None``."""
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def approval_deadline(approval: ApprovalRequest) -> datetime | None:
    """When ``approval``'s ``onTimeout`` applies: ``requestedAt + timeout``; ``None`` when it
    has no timeout (it waits for a human for ever, as in Ark) or the values do not parse."""
    if not approval.timeout:
        return None
    requested = parse_instant(approval.requested_at)
    try:
        timeout = parse_duration(approval.timeout)
    except DurationError:
        _log.warning("approval timeout unreadable", task_id=approval.task_id)
        return None
    if requested is None:
        return None
    return requested + max(timeout, timedelta(0))


class ApprovalOutcome(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A decided approval of a broker-mode query: what was asked, what was answered.

    ``action`` is what the decision means for the tool calls (``approved``/``rejected``; a
    timeout answers as its ``onTimeout``), ``decision`` what the resumed run was told (a
    rejection past the cascade limit is ``failed``)."""

    request: ApprovalRequest
    decision: ApprovalDecision
    action: Literal["approved", "rejected"]
    reason: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    dispatched: bool = False
    """Whether the resume was published (a sweep publishes one a stopped broker left)."""


class QueryRecord(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One broker-mode query as the API shows it."""

    id: str
    name: str
    namespace: str
    tenant: str
    spec: QuerySpec
    status: QueryStatus
    creation_timestamp: str
    create_resource: bool = False
    updated_at: str | None = None
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    approval: ApprovalRequest | None = None
    """The approval the query waits for, while its phase is ``input-required``."""
    approvals: list[ApprovalOutcome] | None = None
    """The decided approvals, oldest first."""
    approval_cascades: int = 0
    """Denials in a row the query was resumed after (Ark's
    :data:`~ark_mesh.contracts.approvals.APPROVAL_CASCADE_ANNOTATION`)."""
    round: int = 0
    """Approval decisions so far: status updates of an earlier round are old news."""

    @property
    def terminal(self) -> bool:
        return (self.status.phase or "") in TERMINAL_PHASES

    @property
    def pending_approval(self) -> ApprovalRequest | None:
        return self.approval if self.status.phase == "input-required" else None

    def work(
        self,
        *,
        submitted_at: str,
        deadline: str | None = None,
        resume: ApprovalDecision | None = None,
    ) -> QueryRequest:
        """The work message of this query: the first one (with its start-by ``deadline``), or
        one that resumes it after an approval decision (``resume``)."""
        labels = self.labels or {}
        return QueryRequest(
            query_id=self.id,
            name=self.name,
            namespace=self.namespace,
            tenant=self.tenant,
            origin="broker",
            spec=self.spec,
            labels={**labels, BROKER_MIRROR_LABEL: "true"}
            if self.create_resource
            else labels or None,
            annotations=self.annotations or None,
            submitted_at=submitted_at,
            deadline=deadline,
            create_resource=self.create_resource,
            resume=resume,
        )

    def metadata(self) -> dict[str, Any]:
        """The query's metadata as a Query resource would carry it (``uid`` = its id)."""
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.id,
            "creationTimestamp": self.creation_timestamp,
        }
        if self.labels:
            meta["labels"] = dict(self.labels)
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return meta

    def summary(self) -> QueryResponse:
        """ark-api's ``QueryResponse`` of this broker-mode query."""
        spec = self.spec
        return QueryResponse(
            id=self.id,
            reconciliation="broker",
            name=self.name,
            namespace=self.namespace,
            type=spec.type or "user",
            input=msgspec.to_builtins(spec.input),
            memory=spec.memory,
            session_id=spec.session_id,
            conversation_id=spec.conversation_id,
            status=_status(self.status),
            creation_timestamp=self.creation_timestamp,
        )

    def detail(self) -> QueryDetailResponse:
        """ark-api's ``QueryDetailResponse`` of this broker-mode query."""
        spec = self.spec
        return QueryDetailResponse(
            id=self.id,
            reconciliation="broker",
            name=self.name,
            namespace=self.namespace,
            type=spec.type or "user",
            input=msgspec.to_builtins(spec.input),
            memory=spec.memory,
            parameters=spec.parameters,
            selector=spec.selector,
            service_account=spec.service_account,
            session_id=spec.session_id,
            conversation_id=spec.conversation_id,
            target=spec.target,
            timeout=spec.timeout,
            ttl=spec.ttl,
            cancel=spec.cancel,
            overrides=spec.overrides,
            metadata=self.metadata(),
            status=_status(self.status),
        )


def _status(status: QueryStatus) -> dict[str, Any]:
    raw = msgspec.to_builtins(status)
    return raw if isinstance(raw, dict) else {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(QueryRecord)


class RecordCodec:
    """Query records as stored in ``ark-queries``: JSON, sealed with the tenant's key if it has one.

    The bucket is as much "at rest" as a stream: with per-tenant encryption configured, another
    tenant (or anyone reading the store's files) sees ciphertext. The record's KV subject is the
    associated data, so a record copied under another key or tenant does not open.
    """

    def __init__(self, cipher: PayloadCipher | None = None) -> None:
        self._cipher = cipher

    @staticmethod
    def _subject(key: str) -> str:
        return f"$KV.{subjects.QUERIES_BUCKET}.{key}"

    def encode(self, record: QueryRecord) -> bytes:
        body = _encoder.encode(record)
        if self._cipher is None:
            return body
        key = record_key(record.tenant, record.id)
        return self._cipher.seal(self._subject(key), body, tenant=record.tenant)

    def decode(self, key: str, data: bytes) -> QueryRecord | None:
        """The record, or ``None`` (logged) when it cannot be opened or decoded."""
        tenant = key.partition(".")[0]
        try:
            if self._cipher is not None:
                data = self._cipher.open(self._subject(key), data, tenant=tenant)
            return _decoder.decode(data)
        except (DecryptionError, msgspec.DecodeError) as exc:
            _log.warning("unreadable query record", key=key, error=str(exc))
            return None


def record_key(tenant: str, query_id: str) -> str:
    subjects.validate_token(tenant, "tenant")
    subjects.validate_token(query_id, "query id")
    return f"{tenant}.{query_id}"


@contextlib.contextmanager
def _unavailable(action: str) -> Iterator[None]:
    """NATS failing under a KV call (disconnected, timed out, JetStream unavailable) is the
    mesh's trouble, not the caller's: a 503 the client may retry (``Retry-After`` is added by
    the API), never a bare 500. Outcomes the callers handle (no such key, lost a
    compare-and-set, a key NATS refuses) pass through unchanged."""
    try:
        yield
    except (KeyNotFoundError, KeyWrongLastSequenceError, InvalidKeyError):
        raise
    except (NatsError, TimeoutError) as exc:
        raise UnavailableError(
            f"the query read model is unavailable ({action}): {type(exc).__name__}: {exc}"
        ) from exc


class ReadModel:
    """Reads and compare-and-set writes of :class:`QueryRecord` in the KV bucket.

    Every KV call goes through :func:`_unavailable`, so a NATS outage answers 503."""

    def __init__(self, kv: KeyValue, codec: RecordCodec | None = None) -> None:
        self.kv = kv
        self.codec = codec or RecordCodec()

    async def create(self, record: QueryRecord) -> None:
        with _unavailable("create"):
            await self.kv.create(record_key(record.tenant, record.id), self.codec.encode(record))

    async def get(self, tenant: str, query_id: str) -> QueryRecord | None:
        """The record, or ``None`` — also for an id that cannot be a key at all (a dot, a
        space, a wildcard …): no query has such an id, so it is simply not found."""
        try:
            key = record_key(tenant, query_id)
        except ValueError:
            return None
        try:
            with _unavailable("get"):
                entry = await self.kv.get(key)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        if not entry.value:
            return None
        return self.codec.decode(key, entry.value)

    async def delete(self, tenant: str, query_id: str) -> None:
        with contextlib.suppress(KeyNotFoundError), _unavailable("delete"):
            await self.kv.purge(record_key(tenant, query_id))

    async def records(self, tenant: str, ids: Iterable[str]) -> list[QueryRecord]:
        """The records of ``ids`` that (still) exist, oldest first."""
        found = [await self.get(tenant, query_id) for query_id in ids]
        return sorted(
            (record for record in found if record is not None),
            key=lambda record: record.creation_timestamp,
        )

    async def apply(self, update: StatusUpdate) -> bool:
        """Apply one status update if the rules allow it; ``False`` when nothing was written
        (not a broker query, or old news). Re-reads and retries when another writer won."""
        key = record_key(update.tenant, update.query_id)
        while True:
            try:
                with _unavailable("get"):
                    entry = await self.kv.get(key)
            except (KeyNotFoundError, InvalidKeyError):
                return False  # a Direct query (status-sync's business), or a purged record
            if not entry.value or entry.revision is None:
                return False
            record = self.codec.decode(key, entry.value)
            if record is None:
                return False
            if update.round < record.round and not update.terminal:
                verdict = Verdict(
                    False, f"from approval round {update.round}, before {record.round}"
                )
            else:
                verdict = decide(update, {"phase": record.status.phase or ""})
            if not verdict.apply:
                _log.debug("status update skipped", query_id=update.query_id, why=verdict.reason)
                return False
            record.status = update.status
            record.updated_at = update.timestamp
            if update.phase != "input-required":
                record.approval = None
            elif update.approval is not None:
                await self._index_approval(update.tenant, update.approval.task_id, update.query_id)
                record.approval = update.approval
            try:
                with _unavailable("update"):
                    await self.kv.update(key, self.codec.encode(record), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return True

    async def mutate(
        self, tenant: str, query_id: str, change: Callable[[QueryRecord], QueryRecord | None]
    ) -> QueryRecord | None:
        """Compare-and-set ``change`` of the record (re-read and re-run when another writer
        won); ``None`` when there is no such record or ``change`` returned ``None`` (nothing to
        write). ``change`` may raise to refuse."""
        key = record_key(tenant, query_id)
        while True:
            try:
                with _unavailable("get"):
                    entry = await self.kv.get(key)
            except (KeyNotFoundError, InvalidKeyError):
                return None
            record = self.codec.decode(key, entry.value) if entry.value else None
            if record is None or entry.revision is None:
                return None
            changed = change(record)
            if changed is None:
                return None
            try:
                with _unavailable("update"):
                    await self.kv.update(key, self.codec.encode(changed), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return changed

    # -- approvals ---------------------------------------------------------------------------

    def _approval_key(self, tenant: str, task_id: str) -> str:
        subjects.validate_token(task_id, "task id")
        return f"{record_key(tenant, _APPROVALS)}.{task_id}"

    async def _index_approval(self, tenant: str, task_id: str, query_id: str) -> None:
        try:
            key = self._approval_key(tenant, task_id)
        except ValueError:
            _log.warning("approval task id cannot be a key", task_id=task_id, query_id=query_id)
            return
        with _unavailable("index approval"):
            await self.kv.put(key, query_id.encode())

    async def forget_approvals(self, record: QueryRecord) -> None:
        """Drop the task-id index entries of ``record``'s approvals (the query is deleted)."""
        task_ids = [outcome.request.task_id for outcome in record.approvals or []]
        if record.approval is not None:
            task_ids.append(record.approval.task_id)
        for task_id in task_ids:
            with (
                contextlib.suppress(KeyNotFoundError, InvalidKeyError, ValueError),
                _unavailable("forget approval"),
            ):
                await self.kv.purge(self._approval_key(record.tenant, task_id))

    async def by_task(self, tenant: str, task_id: str) -> QueryRecord | None:
        """The tenant's broker-mode query that asked for approval ``task_id``, or ``None``."""
        try:
            key = self._approval_key(tenant, task_id)
        except ValueError:
            return None
        try:
            with _unavailable("get approval"):
                entry = await self.kv.get(key)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        held_by, _ = _parse_name_value(entry.value or b"")
        if not held_by:
            return None
        return await self.get(tenant, held_by)

    # -- names -------------------------------------------------------------------------------

    def _name_key(self, tenant: str, name: str) -> str:
        return f"{record_key(tenant, _NAMES)}.{name}"

    async def claim_name(self, tenant: str, name: str, query_id: str) -> bool:
        """Reserve ``name`` for ``query_id`` in the tenant (Ark: a name is unique in its
        namespace); ``False`` when another query holds it.

        A name held for a query that has no record is a claim whose accept failed — a 503 whose
        clean-up could not reach the bucket, or a claim stored although its answer was lost —
        and the client retrying it must not get a 409 for a query that does not exist. Such a
        claim is taken over once it is older than :data:`NAME_CLAIM_GRACE` (until then another
        request may still be recording its query: 503, retry)."""
        key = self._name_key(tenant, name)
        try:
            with _unavailable("claim name"):
                await self.kv.create(key, _name_value(query_id))
        except KeyWrongLastSequenceError:
            pass
        else:
            return True
        try:
            with _unavailable("claim name"):
                entry = await self.kv.get(key)
        except KeyNotFoundError:
            return await self.claim_name(tenant, name, query_id)  # released meanwhile
        held_by, since = _parse_name_value(entry.value or b"")
        if held_by and await self.get(tenant, held_by) is not None:
            return False
        if since is not None and datetime.now(UTC).timestamp() - since < NAME_CLAIM_GRACE:
            raise UnavailableError(
                f"the name {name!r} is being taken by another request that has not recorded "
                "its query yet; retry",
                field="name",
            )
        try:
            with _unavailable("claim name"):
                await self.kv.update(key, _name_value(query_id), last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        _log.info("took over a name left by a failed accept", tenant=tenant, name=name)
        return True

    async def point_name(self, tenant: str, name: str, query_id: str) -> None:
        """Point a claimed name at the query's final id (a mirror's id is its uid)."""
        with _unavailable("point name"):
            await self.kv.put(self._name_key(tenant, name), _name_value(query_id))

    async def named(self, tenant: str, name: str) -> QueryRecord | None:
        """The record the tenant's query ``name`` refers to, or ``None`` (also for what
        cannot be a name: NATS would not even answer for some of those keys)."""
        if not is_name(name):
            return None
        try:
            key = self._name_key(tenant, name)
        except ValueError:
            return None
        try:
            with _unavailable("get name"):
                entry = await self.kv.get(key)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        held_by, _ = _parse_name_value(entry.value or b"")
        if not held_by:
            return None
        return await self.get(tenant, held_by)

    async def release_name(self, tenant: str, name: str) -> None:
        with contextlib.suppress(KeyNotFoundError, InvalidKeyError), _unavailable("release name"):
            await self.kv.purge(self._name_key(tenant, name))

    # -- Idempotency-Key ---------------------------------------------------------------------

    def _idempotency_key(self, tenant: str, digest: str) -> str:
        return f"{record_key(tenant, _IDEMPOTENCY)}.{digest}"

    async def claim(self, tenant: str, digest: str) -> str | None:
        """Claim an idempotency key; ``None`` if this call won it, else the query id stored by
        the call that did (``""`` while that call is still accepting)."""
        key = self._idempotency_key(tenant, digest)
        try:
            with _unavailable("claim"):
                await self.kv.create(key, b"")
            return None
        except KeyWrongLastSequenceError:
            pass
        try:
            with _unavailable("get"):
                entry = await self.kv.get(key)
        except KeyNotFoundError:
            return ""
        return (entry.value or b"").decode()

    async def settle(self, tenant: str, digest: str, query_id: str) -> None:
        with _unavailable("settle"):
            await self.kv.put(self._idempotency_key(tenant, digest), query_id.encode())

    async def release(self, tenant: str, digest: str) -> None:
        with contextlib.suppress(KeyNotFoundError), _unavailable("release"):
            await self.kv.purge(self._idempotency_key(tenant, digest))


class InFlight(BucketIndex):
    """Per tenant, the ids of accepted queries that are not terminal, and of every query
    (the listing index), from one watch of the whole bucket.

    A filtered KV watch cannot serve listings on nats-server 2.9: its pending count under
    "last per subject" is not reliable, so a listing could end early. The index is complete
    for this replica's own queries at once and for other replicas' within a watch round trip.
    """

    def __init__(self, kv: KeyValue, codec: RecordCodec | None = None) -> None:
        super().__init__(kv, name="broker-in-flight")
        self._codec = codec or RecordCodec()
        self._open: dict[str, set[str]] = defaultdict(set)
        self._known: dict[str, set[str]] = defaultdict(set)
        self._expiring: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._undispatched: dict[tuple[str, str], tuple[str, datetime]] = {}

    def count(self, tenant: str) -> int:
        return len(self._open.get(tenant, ()))

    def add(self, tenant: str, query_id: str) -> None:
        """Count a query accepted here at once, before the watch reports it."""
        self._open[tenant].add(query_id)

    def discard(self, tenant: str, query_id: str) -> None:
        self._open[tenant].discard(query_id)

    def known(self, tenant: str) -> list[str]:
        """Ids of the tenant's queries (for listings)."""
        return list(self._known.get(tenant, ()))

    def remember(self, tenant: str, query_id: str) -> None:
        self._known[tenant].add(query_id)

    def forget(self, tenant: str, query_id: str) -> None:
        self._known[tenant].discard(query_id)
        self._open[tenant].discard(query_id)
        self._expiring.pop((tenant, query_id), None)
        self._undispatched.pop((tenant, query_id), None)

    def note_approval(self, record: QueryRecord) -> None:
        """Index when ``record``'s pending approval times out, and a decision whose resume is
        not marked published (the broker-mode sweep reads these indexes, never the bucket)."""
        key = (record.tenant, record.id)
        approval = record.pending_approval
        deadline = approval_deadline(approval) if approval is not None else None
        if approval is None or deadline is None:
            self._expiring.pop(key, None)
        else:
            self._expiring[key] = (approval.task_id, deadline)
        last = record.approvals[-1] if record.approvals else None
        decided = parse_instant(last.decision.decided_at) if last is not None else None
        if last is None or last.dispatched or record.terminal or decided is None:
            self._undispatched.pop(key, None)
        else:
            self._undispatched[key] = (last.decision.task_id, decided)

    def undispatched(self, decided_before: datetime) -> list[tuple[str, str, str]]:
        """``(tenant, query id, task id)`` of every decision decided before ``decided_before``
        whose resume is not marked published."""
        return [
            (tenant, query_id, task_id)
            for (tenant, query_id), (task_id, decided) in self._undispatched.items()
            if decided <= decided_before
        ]

    def expired(self, at: datetime) -> list[tuple[str, str, str]]:
        """``(tenant, query id, task id)`` of every pending approval whose timeout has passed."""
        return [
            (tenant, query_id, task_id)
            for (tenant, query_id), (task_id, deadline) in self._expiring.items()
            if deadline <= at
        ]

    def counts(self) -> Mapping[str, int]:
        return {tenant: len(ids) for tenant, ids in self._open.items() if ids}

    def on_put(self, key: str, value: bytes) -> None:
        tenant, _, query_id = key.partition(".")
        if "." in query_id:
            return  # idempotency keys
        self.remember(tenant, query_id)
        record = self._codec.decode(key, value)
        if record is None:
            return
        self.note_approval(record)
        if record.terminal:
            self.discard(tenant, query_id)
        else:
            self.add(tenant, query_id)

    def on_delete(self, key: str) -> None:
        tenant, _, query_id = key.partition(".")
        if "." not in query_id:
            self.forget(tenant, query_id)
