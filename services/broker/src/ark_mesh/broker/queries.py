"""What the broker does with a query, independent of HTTP: accept, read, stream, cancel.

Accepting a query (ARCHITECTURE §5 step 1, broker mode):

1. an ``Idempotency-Key`` is claimed first (KV ``create``), so a retried POST finds the query
   the first attempt accepted instead of creating a second one;
2. admission: a tenant with ``max_in_flight_per_tenant`` queries not yet terminal gets 429 —
   the slot is reserved before anything is written, so concurrent POSTs cannot overshoot;
3. the id: a fresh UUID, or — with ``createResource: true`` — the uid of the Query mirror the
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
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from ark_mesh.broker.bodies import QueryCreateRequest
from ark_mesh.broker.config import BrokerConfig
from ark_mesh.broker.errors import (
    ConflictError,
    NotFoundError,
    TooManyRequestsError,
    UnavailableError,
)
from ark_mesh.broker.readmodel import InFlight, QueryRecord, ReadModel, now
from ark_mesh.bus import BusError, CancelChannel, Publisher, StreamEntry, StreamReader
from ark_mesh.contracts import (
    Chunk,
    ObjectMeta,
    Query,
    QueryEvent,
    QueryRequest,
    QuerySpec,
    QueryStatus,
    StatusUpdate,
    decoder_for,
    parse_duration,
    subjects,
)
from ark_mesh.contracts.ark import BROKER_MIRROR_LABEL, DEFAULT_QUERY_TIMEOUT
from ark_mesh.kube import AlreadyExistsError, KubeClient, KubeError
from ark_mesh.telemetry import get_logger

__all__ = ["QueryBroker"]

_log = get_logger(__name__)
_chunk = decoder_for(Chunk).decode
_event = decoder_for(QueryEvent).decode
_status = decoder_for(StatusUpdate).decode


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
    ) -> None:
        self.config = config
        self.publisher = publisher
        self.reader = reader
        self.read_model = read_model
        self.in_flight = in_flight
        self.cancels = cancels
        self.kube = kube

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
        self, tenant: str, body: QueryCreateRequest, annotations: dict[str, str] | None
    ) -> QueryRecord:
        spec = body.spec()
        name = body.name or f"query-{uuid.uuid4().hex[:8]}"
        reservation = self._admit(tenant)
        query_id: str | None = None
        recorded = mirrored = False
        try:
            if body.create_resource:
                query_id = await self._create_mirror(tenant, name, spec, annotations)
                mirrored = True
            else:
                query_id = str(uuid.uuid4())
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
            )
            await self.read_model.create(record)
            recorded = True
            self.in_flight.remember(tenant, query_id)
            request = QueryRequest(
                query_id=query_id,
                name=name,
                namespace=tenant,
                tenant=tenant,
                origin="broker",
                spec=spec,
                labels={BROKER_MIRROR_LABEL: "true"} if body.create_resource else None,
                annotations=annotations or None,
                submitted_at=submitted.isoformat(),
                deadline=(submitted + _timeout(spec)).isoformat(),
                create_resource=body.create_resource,
            )
            await self.publisher.publish(
                subjects.work_query(tenant), request, msg_id=request.msg_id
            )
        except BaseException as exc:
            self.in_flight.discard(tenant, reservation)
            if query_id is not None:
                self.in_flight.forget(tenant, query_id)
                with contextlib.suppress(Exception):
                    if recorded:
                        await self.read_model.delete(tenant, query_id)
                    if mirrored and self.kube is not None:
                        await self.kube.delete(Query, tenant, name)
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
        """The record, or 404 — also for another tenant's id, so ids do not leak."""
        record = await self.read_model.get(tenant, query_id)
        if record is None:
            raise NotFoundError(f"query {query_id!r} not found", field="id")
        return record

    async def list_queries(self, tenant: str) -> list[QueryRecord]:
        return await self.read_model.records(tenant, self.in_flight.known(tenant))

    def chunks(
        self, tenant: str, query_id: str, *, after: int | None
    ) -> AsyncIterator[StreamEntry[Chunk]]:
        """The query's chunks after stream sequence ``after``, live, through the final chunk.

        A short-lived ordered consumer per reader (never a durable one per client)."""
        return self.reader.read(
            subjects.query_chunk(tenant, query_id),
            decoder=_chunk,
            start_seq=after + 1 if after is not None else None,
            until=lambda entry: entry.message.is_final,
        )

    async def ended_by(self, tenant: str, query_id: str, after: int) -> bool:
        """Whether the query's chunk stream holds nothing after sequence ``after`` that a
        reader could still wait for: its final chunk (or, for a query that streamed nothing,
        its last chunk) is at or before ``after``. Only meaningful for a terminal query."""
        last = await self.reader.last(subjects.query_chunk(tenant, query_id), decoder=_chunk)
        return last is None or last.seq <= after

    async def events(self, tenant: str, query_id: str) -> list[StreamEntry[QueryEvent]]:
        return [
            entry
            async for entry in self.reader.read(
                subjects.query_event(tenant, query_id), decoder=_event, caught_up=True
            )
        ]

    async def wait_terminal(self, tenant: str, query_id: str, *, within: float) -> StatusUpdate:
        """Follow the query's status subject until a terminal update (``TimeoutError`` after
        ``within`` seconds). Reads the stream, not the read model: no polling."""
        async with asyncio.timeout(within):
            async for entry in self.reader.read(
                subjects.query_status(tenant, query_id),
                decoder=_status,
                until=lambda entry: entry.message.terminal,
            ):
                if entry.message.terminal:
                    return entry.message
        raise TimeoutError  # the read ended without a terminal update

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, tenant: str, query_id: str, *, requested_by: str) -> QueryRecord:
        record = await self.get(tenant, query_id)
        if not record.terminal:
            await self.cancels.request(tenant, query_id, requested_by=requested_by)
            _log.info("cancel requested", tenant=tenant, query_id=query_id)
        return record


def _timeout(spec: QuerySpec) -> timedelta:
    return parse_duration(spec.timeout) if spec.timeout else DEFAULT_QUERY_TIMEOUT
