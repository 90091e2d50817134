"""What the broker does with a query, independent of HTTP: accept, read, stream, cancel, delete.

A query written through the API is resolved in one of two modes (:meth:`QueryBroker.mode`):
``direct`` creates a Query resource as Ark's API does (:mod:`.direct`) and leaves the rest to
the controller; ``broker`` is accepted here, off etcd. Accepting a broker-mode query
(ARCHITECTURE §5 step 1); what broker mode cannot honour (``serviceAccount``, ``ttl``) is
refused by name first:

1. an ``Idempotency-Key`` is claimed first (KV ``create``), so a retried POST finds the query
   the first attempt accepted instead of creating a second one;
2. admission: a tenant with ``max_in_flight_per_tenant`` queries not yet terminal gets 429 —
   the slot is reserved before anything is written, so concurrent POSTs cannot overshoot;
3. the name is claimed in the tenant (KV ``<tenant>.names.<name>``: Ark's names are unique in
   a namespace, and reads by name find the id there); the id: a fresh UUID, or — with ``createResource: true`` — the uid of the Query mirror the
   broker creates *first* (labelled :data:`~ark_mesh.contracts.ark.BROKER_MIRROR_LABEL`, which
   the controller leaves alone). status-sync finds a CR by name and checks its uid against the
   update's ``queryId``, so using the CR's uid as the query id is what lets it keep the
   mirror's status without any extra mapping;
4. the record (phase ``pending``) is written to the read model *before* the work is published,
   so every status update finds it;
5. the ``QueryRequest`` is published with ``Nats-Msg-Id = <id>:1``.

A failure after step 2 undoes what was done, so a retry starts clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ark_mesh.broker.bodies import QueryCreateRequest, QueryUpdateRequest
from ark_mesh.broker.config import ApiMode, BrokerConfig
from ark_mesh.broker.direct import DirectQueries
from ark_mesh.broker.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    TooManyRequestsError,
    UnavailableError,
)
from ark_mesh.broker.readmodel import InFlight, QueryRecord, ReadModel, now
from ark_mesh.broker.sizes import check_query_size
from ark_mesh.broker.stream_end import end_from_status
from ark_mesh.bus import (
    BusError,
    CancelChannel,
    Fanout,
    Publisher,
    Sequenced,
    StreamEntry,
    StreamReader,
    in_sequence,
)
from ark_mesh.contracts import (
    Chunk,
    ChunkHead,
    ObjectMeta,
    Query,
    QueryEvent,
    QuerySpec,
    QueryStatus,
    StatusUpdate,
    decoder_for,
    parse_duration,
    subjects,
)
from ark_mesh.contracts.ark import (
    BROKER_MIRROR_LABEL,
    DEFAULT_QUERY_TIMEOUT,
    RECONCILIATION_ANNOTATION,
)
from ark_mesh.kube import AlreadyExistsError, KubeClient, KubeError
from ark_mesh.kube import NotFoundError as KubeNotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["QueryBroker"]

_log = get_logger(__name__)
_chunk = decoder_for(Chunk).decode
_chunk_head = decoder_for(ChunkHead).decode
_event = decoder_for(QueryEvent).decode
_status = decoder_for(StatusUpdate).decode

C = TypeVar("C", bound=Sequenced)


class QueryBroker:
    """Broker-mode queries over the bus (and, for mirrors, Kubernetes)."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        publisher: Publisher,
        reader: StreamReader,
        read_model: ReadModel,
        in_flight: InFlight,
        cancels: CancelChannel,
        kube: KubeClient | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.config = config
        self.publisher = publisher
        self.reader = reader
        self.fanout = fanout or Fanout(reader)
        """Live reads share one consumer per stream (:class:`~ark_mesh.bus.Fanout`)."""
        self.read_model = read_model
        self.in_flight = in_flight
        self.cancels = cancels
        self.kube = kube
        self.direct = DirectQueries(kube) if kube is not None else None

    # -- mode -----------------------------------------------------------------------------------

    def mode(self, body: QueryCreateRequest) -> tuple[ApiMode, str | None]:
        """How ``body`` is resolved — ``broker`` or ``direct`` — and, for a direct query that
        names ``inController``/``standalone``, that mode (for the Query's annotation). The
        body's ``reconciliation`` or its ``ark.mckinsey.com/reconciliation`` annotation, else
        the configured default; a mode that is not allowed here is a 422 saying why."""
        annotated = (body.metadata.annotations if body.metadata else None) or {}
        asked = annotated.get(RECONCILIATION_ANNOTATION)
        field = "reconciliation"
        if body.reconciliation is not None:
            if asked is not None and asked != body.reconciliation:
                raise BadRequestError(
                    f"reconciliation {body.reconciliation!r} contradicts the annotation "
                    f"{RECONCILIATION_ANNOTATION}: {asked!r}",
                    field=field,
                )
            asked = body.reconciliation
        elif asked is not None:
            field = f"metadata.annotations.{RECONCILIATION_ANNOTATION}"
        requested = (
            asked if asked is not None else self.config.reconciliation.default_reconciliation
        )
        if requested not in ("broker", "direct", "inController", "standalone"):
            raise BadRequestError(
                f"unknown reconciliation mode {requested!r}; expected broker, direct, "
                "inController or standalone",
                field=field,
            )
        mode: ApiMode = "broker" if requested == "broker" else "direct"
        allowed = self.config.reconciliation.allowed_modes
        if mode not in allowed:
            raise BadRequestError(
                f"reconciliation mode {requested!r} is not allowed here; allowedModes: "
                f"{', '.join(allowed)}",
                field=field,
            )
        if mode == "direct" and self.direct is None:
            raise BadRequestError(
                f"reconciliation mode {requested!r} creates a Query resource, and this broker "
                "has no Kubernetes access (its configuration has no kubernetes section)",
                field=field,
            )
        return mode, requested if requested in ("inController", "standalone") else None

    @staticmethod
    def refuse_unsupported(body: QueryCreateRequest) -> None:
        """What a broker-mode query cannot honour is refused by name, never dropped."""
        if body.service_account is not None:
            raise BadRequestError(
                "serviceAccount is not honoured in broker mode (the query-reconciler resolves "
                "with its own identity); use reconciliation: direct",
                field="serviceAccount",
            )
        if body.ttl is not None:
            raise BadRequestError(
                "ttl is not honoured in broker mode (the ark-queries bucket keeps a query for "
                "its configured age after its last status); use reconciliation: direct",
                field="ttl",
            )
        if body.cancel:
            raise BadRequestError("a broker-mode query cannot be created canceled", field="cancel")

    async def create_direct(
        self, tenant: str, body: QueryCreateRequest, asked: str | None
    ) -> dict[str, Any]:
        """Create the Query resource (``reconciliation: direct``), as Ark's API does."""
        if body.create_resource:
            raise BadRequestError(
                "createResource is for broker-mode queries (a read-only mirror); a direct "
                "query is a Query resource already",
                field="createResource",
            )
        assert self.direct is not None  # mode() checked
        annotations = body.annotations()
        if asked is not None:
            annotations[RECONCILIATION_ANNOTATION] = asked
        else:
            annotations.pop(RECONCILIATION_ANNOTATION, None)
        spec = body.spec_fields(body.input)
        return await self.direct.create(
            tenant,
            body.name or f"query-{uuid.uuid4().hex[:8]}",
            spec,
            annotations=annotations,
            labels=body.labels(),
        )

    # -- accept ---------------------------------------------------------------------------------

    async def accept(
        self,
        tenant: str,
        body: QueryCreateRequest,
        *,
        idempotency_key: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> tuple[QueryRecord, bool]:
        """Accept a query; returns the record and whether it is new (``False``: a retry)."""
        # A header that was not UTF-8 arrives with surrogate escapes: still a key like any other.
        digest = (
            hashlib.sha256(idempotency_key.encode("utf-8", "surrogateescape")).hexdigest()
            if idempotency_key
            else None
        )
        if digest is not None:
            earlier = await self.read_model.claim(tenant, digest)
            if earlier is not None:
                return await self._earlier(tenant, earlier), False
        try:
            record = await self._accept(tenant, body, annotations)
        except BaseException:
            if digest is not None:
                with contextlib.suppress(Exception):
                    await self.read_model.release(tenant, digest)
            raise
        if digest is not None:
            await self.read_model.settle(tenant, digest, record.id)
        return record, True

    async def _earlier(self, tenant: str, query_id: str) -> QueryRecord:
        if not query_id:
            raise ConflictError(
                "a request with this Idempotency-Key is still being accepted; retry shortly",
                field="Idempotency-Key",
            )
        record = await self.read_model.get(tenant, query_id)
        if record is None:
            raise ConflictError(
                f"this Idempotency-Key was used for query {query_id}, which no longer exists",
                field="Idempotency-Key",
            )
        return record

    def _admit(self, tenant: str) -> str:
        limit = self.config.limits.max_in_flight_per_tenant
        if self.in_flight.count(tenant) >= limit:
            retry = self.config.limits.retry_after_seconds
            raise TooManyRequestsError(
                f"tenant {tenant!r} already has {limit} queries in flight (the limit); retry "
                f"after {retry}s or when one of them finishes",
                headers={"Retry-After": str(retry)},
            )
        reservation = f"reserved-{uuid.uuid4()}"
        self.in_flight.add(tenant, reservation)
        return reservation

    async def _accept(
        self, tenant: str, body: QueryCreateRequest, extra: dict[str, str] | None
    ) -> QueryRecord:
        self.refuse_unsupported(body)
        spec = body.spec()
        check_query_size(spec, max_payload=self.publisher.bus.nc.max_payload)
        name = body.name or f"query-{uuid.uuid4().hex[:8]}"
        annotations = {**body.annotations(), **(extra or {})}
        annotations.pop(RECONCILIATION_ANNOTATION, None)
        labels = body.labels()
        reservation = self._admit(tenant)
        query_id: str | None = None
        recorded = mirrored = named = False
        try:
            query_id = str(uuid.uuid4())
            if not await self.read_model.claim_name(tenant, name, query_id):
                raise ConflictError(
                    f"a query named {name!r} already exists in namespace {tenant!r}", field="name"
                )
            named = True
            if body.create_resource:
                query_id = await self._create_mirror(tenant, name, spec, annotations or None)
                mirrored = True
                await self.read_model.point_name(tenant, name, query_id)
            # Counted under its own id before the record exists: the bucket watch may report
            # the record terminal before this coroutine runs again, and must find it to drop.
            self.in_flight.add(tenant, query_id)
            self.in_flight.discard(tenant, reservation)
            submitted = datetime.now(UTC)
            record = QueryRecord(
                id=query_id,
                name=name,
                namespace=tenant,
                tenant=tenant,
                spec=spec,
                status=QueryStatus(phase="pending"),
                creation_timestamp=now(),
                create_resource=body.create_resource,
                annotations=annotations or None,
                labels=labels or None,
            )
            await self.read_model.create(record)
            recorded = True
            self.in_flight.remember(tenant, query_id)
            request = record.work(
                submitted_at=submitted.isoformat(),
                deadline=(submitted + _timeout(spec)).isoformat(),
            )
            await self.publisher.publish(
                subjects.work_query(tenant), request, msg_id=request.msg_id
            )
        except BaseException as exc:
            self.in_flight.discard(tenant, reservation)
            if query_id is not None:
                self.in_flight.forget(tenant, query_id)
                # Each step on its own: a bucket that cannot delete the record (its leader just
                # died) must not keep the name reserved too. What cannot be undone now, a later
                # request for the name takes over (ReadModel.claim_name).
                if recorded:
                    with contextlib.suppress(Exception):
                        await self.read_model.delete(tenant, query_id)
                if mirrored and self.kube is not None:
                    with contextlib.suppress(Exception):
                        await self.kube.delete(Query, tenant, name)
                if named:
                    with contextlib.suppress(Exception):
                        await self.read_model.release_name(tenant, name)
            if isinstance(exc, BusError):
                raise UnavailableError(f"the query could not be queued: {exc}") from exc
            raise
        _log.info("query accepted", tenant=tenant, query_id=query_id, name=name)
        return record

    async def _create_mirror(
        self, tenant: str, name: str, spec: QuerySpec, annotations: dict[str, str] | None
    ) -> str:
        if self.kube is None:
            raise ConflictError(
                "createResource is not available: this broker has no Kubernetes access "
                "(its configuration has no kubernetes section)",
                field="createResource",
            )
        mirror = Query(
            metadata=ObjectMeta(
                name=name,
                namespace=tenant,
                labels={BROKER_MIRROR_LABEL: "true"},
                annotations=annotations or None,
            ),
            spec=spec,
        )
        try:
            created = await self.kube.create(mirror)
        except AlreadyExistsError:
            raise ConflictError(
                f"a Query named {name!r} already exists in namespace {tenant!r}", field="name"
            ) from None
        except KubeError as exc:
            raise UnavailableError(f"the Query resource could not be created: {exc}") from exc
        if not created.metadata.uid:
            raise UnavailableError("the API server returned the Query without a uid")
        return created.metadata.uid

    # -- read -----------------------------------------------------------------------------------

    async def get(self, tenant: str, query_id: str) -> QueryRecord:
        """The record (by name or id), or 404 — also for another tenant's, so ids do not leak."""
        record = await self.find(tenant, query_id)
        if record is None:
            raise NotFoundError(f"query {query_id!r} not found", field="id")
        return record

    async def find(self, tenant: str, ref: str) -> QueryRecord | None:
        """The tenant's broker-mode query named ``ref``, else the one whose id is ``ref``."""
        return await self.read_model.named(tenant, ref) or await self.read_model.get(tenant, ref)

    async def get_any(self, tenant: str, ref: str) -> QueryRecord | dict[str, Any]:
        """A broker-mode query by name or id, else the tenant's Query resource named ``ref``;
        404 otherwise (also for another tenant's: names and ids do not leak)."""
        record = await self.find(tenant, ref)
        if record is not None:
            return record
        if self.direct is not None:
            obj = await self.direct.get(tenant, ref)
            if obj is not None:
                return obj
        raise NotFoundError(f"query {ref!r} not found", field="id")

    async def list_all(self, tenant: str) -> list[QueryRecord | dict[str, Any]]:
        """The tenant's broker-mode queries and (with Kubernetes) its Query resources."""
        found: list[QueryRecord | dict[str, Any]] = list(await self.list_queries(tenant))
        if self.direct is not None:
            found += await self.direct.list(tenant)
        return found

    async def list_queries(self, tenant: str) -> list[QueryRecord]:
        return await self.read_model.records(tenant, self.in_flight.known(tenant))

    def chunks(
        self, tenant: str, query_id: str, *, after: int = 0, live_from: int | None = None
    ) -> AsyncIterator[StreamEntry[Chunk]]:
        """The query's chunks numbered after ``after`` (a chunk ``seq``: what a resuming
        client already has), live, through the final chunk — in ``seq`` order, each once,
        whatever order the stream stored them in (:func:`~ark_mesh.bus.in_sequence`); a
        finished query whose final chunk was never stored still ends (:mod:`.stream_end`).

        Read from the subject's first entry, or from stream sequence ``live_from`` (a reader
        that wants only what is stored from now on). Followed through the shared feed (one
        consumer per broker, whatever the number of clients); a catch-up from an earlier
        position uses a short-lived ordered consumer."""
        return self._chunks(tenant, query_id, _chunk, after=after, live_from=live_from)

    def chunk_heads(
        self, tenant: str, query_id: str, *, after: int = 0, live_from: int | None = None
    ) -> AsyncIterator[StreamEntry[ChunkHead]]:
        """:meth:`chunks` for a reader that relays each chunk's stored bytes
        (``entry.data``): only the ``seq`` and the final and error markers are decoded."""
        return self._chunks(tenant, query_id, _chunk_head, after=after, live_from=live_from)

    def _chunks(
        self,
        tenant: str,
        query_id: str,
        decoder: Callable[[bytes], C],
        *,
        after: int,
        live_from: int | None,
    ) -> AsyncIterator[StreamEntry[C]]:
        entries = self.fanout.follow(
            subjects.query_chunk(tenant, query_id),
            decoder=decoder,
            start_seq=live_from,
            until=lambda entry: entry.message.is_final,
        )
        streaming = self.config.streaming
        return in_sequence(
            entries,
            after=after,
            gap_wait=streaming.chunk_gap_seconds,
            idle=streaming.final_chunk_grace_seconds,
            on_idle=end_from_status(self.reader, self.read_model, tenant, query_id, decoder),
        )

    async def ended_by(self, tenant: str, query_id: str, after: int) -> bool:
        """Whether a client that has the chunks through ``seq`` ``after`` has the query's
        whole stream: its final chunk (or, for a query whose stream has none, its last chunk)
        is numbered at or before ``after``. Only meaningful for a terminal query."""
        last = await self.reader.last(subjects.query_chunk(tenant, query_id), decoder=_chunk_head)
        return last is None or last.message.seq <= after

    async def events(self, tenant: str, query_id: str) -> list[StreamEntry[QueryEvent]]:
        return [
            entry
            async for entry in self.reader.read(
                subjects.query_event(tenant, query_id), decoder=_event, caught_up=True
            )
        ]

    async def wait_terminal(self, tenant: str, query_id: str, *, within: float) -> StatusUpdate:
        """Follow the query's status subject until a terminal update (``TimeoutError`` after
        ``within`` seconds). Reads the stream, not the read model: no polling; through the
        shared feed, so waiting callers hold no consumer each."""
        follow = self.fanout.follow(
            subjects.query_status(tenant, query_id),
            decoder=_status,
            until=lambda entry: entry.message.terminal,
        )
        async with asyncio.timeout(within), contextlib.aclosing(follow) as entries:
            async for entry in entries:
                if entry.message.terminal:
                    return entry.message
        raise TimeoutError  # the read ended without a terminal update

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, tenant: str, query_id: str, *, requested_by: str) -> QueryRecord:
        record = await self.get(tenant, query_id)
        if not record.terminal:
            await self.cancels.request(tenant, record.id, requested_by=requested_by)
            _log.info("cancel requested", tenant=tenant, query_id=record.id)
        return record

    async def update(self, tenant: str, record: QueryRecord, body: QueryUpdateRequest) -> None:
        """ark-api's PUT on a broker-mode query: its spec is fixed once accepted (the work
        message carries it), so only ``cancel`` can change; any other field is refused by name."""
        for field in body.__struct_fields__:
            if field == "cancel" or getattr(body, field) is None:
                continue
            wire = body.__struct_encode_fields__[body.__struct_fields__.index(field)]
            raise ConflictError(
                f"{wire} cannot change: a broker-mode query's spec is fixed once it was "
                "accepted (only cancel can be set)",
                field=wire,
            )
        if body.cancel:
            await self.cancel(tenant, record.id, requested_by="broker")

    async def delete(self, tenant: str, record: QueryRecord) -> None:
        """Forget a broker-mode query: cancel it if it runs, drop its record, its name and its
        mirror. Its chunks and events age out of their streams."""
        if not record.terminal:
            await self.cancels.request(tenant, record.id, requested_by="broker")
        if record.create_resource and self.kube is not None:
            try:
                await self.kube.delete(Query, tenant, record.name)
            except KubeNotFoundError:
                pass
            except KubeError as exc:
                raise UnavailableError(f"the Query mirror could not be deleted: {exc}") from exc
        await self.read_model.forget_approvals(record)
        await self.read_model.delete(tenant, record.id)
        await self.read_model.release_name(tenant, record.name)
        self.in_flight.forget(tenant, record.id)
        _log.info("query deleted", tenant=tenant, query_id=record.id)


def _timeout(spec: QuerySpec) -> timedelta:
    return parse_duration(spec.timeout) if spec.timeout else DEFAULT_QUERY_TIMEOUT
