"""Cancel signals that reach the worker running a query, even one that starts late.

A cancel is sent two ways at once:

* a **KV flag** in ``ark-cancel`` (key ``<tenant>.<queryId>``), durable, so a worker that picks
  the query up *after* the cancel was sent (it was queued, or redelivered after a crash) sees it
  before doing any work;
* a **core NATS message** on ``ark.<tenant>.query.<id>.cancel``, so the worker that is already
  running the query hears about it within a round trip, without polling.

:meth:`CancelChannel.watch` subscribes *before* it reads the flag, so no cancel can fall between
the two; after a reconnect it reads the flag again, because core messages sent while the
connection was down are gone.

With encryption configured for the tenant, the request is sealed once (associated data: the
cancel subject) and the same ciphertext goes to the KV flag and the core message.

Only a cancel that decodes — and, for a tenant whose encryption is required, authenticates —
and that names this very query stops it. Anything else on the subject or in the flag is logged
and ignored: publishing one garbage byte must not cancel somebody's query.

Usage in a worker::

    async with cancels.watch(tenant, query_id) as cancelled:
        async with asyncio.timeout(...):
            while not cancelled.is_set():
                ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError

from ark_mesh.bus.connection import Bus
from ark_mesh.bus.errors import DecryptionError
from ark_mesh.contracts import (
    SCHEMA_HEADER,
    CancelRequest,
    DecodeError,
    decoder_for,
    encode,
    subjects,
)
from ark_mesh.telemetry import get_logger

__all__ = ["CancelChannel", "CancelWatch", "cancel_watch"]

_log = get_logger(__name__)
_decode = decoder_for(CancelRequest)


class CancelWatch(asyncio.Event):
    """An :class:`asyncio.Event` set when the query is cancelled; ``request`` says by whom/why."""

    def __init__(self) -> None:
        super().__init__()
        self.request: CancelRequest | None = None

    def trigger(self, request: CancelRequest | None) -> None:
        if self.request is None:
            self.request = request
        self.set()


def _key(tenant: str, query_id: str) -> str:
    subjects.validate_token(tenant, "tenant")
    subjects.validate_token(query_id, "query id")
    return f"{tenant}.{query_id}"


class CancelChannel:
    """Send and watch cancel requests (KV flag + core NATS subject)."""

    def __init__(self, bus: Bus, *, bucket: str = subjects.CANCEL_BUCKET) -> None:
        self.bus = bus
        self.bucket = bucket

    async def request(
        self,
        tenant: str,
        query_id: str,
        *,
        reason: str = "canceled",
        requested_by: str | None = None,
        at: datetime | None = None,
    ) -> CancelRequest:
        """Raise the flag, then notify running workers. Idempotent.

        ``at`` is the instant the query counts as canceled (default: now). A canceller that
        also writes the ``canceled`` status passes the instant it stamped there, so the run's
        own ending carries the same one.
        """
        request = CancelRequest(
            query_id=query_id,
            tenant=tenant,
            reason=reason,
            requested_at=(at or datetime.now(UTC))
            .astimezone(UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            requested_by=requested_by,
        )
        subject = subjects.query_cancel(tenant, query_id)
        headers = {SCHEMA_HEADER: CancelRequest.SCHEMA}
        body = self.bus.cipher.seal(subject, encode(request), headers)
        kv = await self.bus.key_value(self.bucket)
        await kv.put(_key(tenant, query_id), body)
        await self.bus.nc.publish(subject, body, headers=headers)
        return request

    async def get(self, tenant: str, query_id: str) -> CancelRequest | None:
        """The cancel request for the query, if one was made (and has not expired)."""
        kv = await self.bus.key_value(self.bucket)
        try:
            entry = await kv.get(_key(tenant, query_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            request = _decode(
                self.bus.cipher.open(subjects.query_cancel(tenant, query_id), entry.value)
            )
        except (DecodeError, DecryptionError) as error:
            _log.warning(
                "ignored an unreadable cancel flag",
                tenant=tenant,
                query_id=query_id,
                error=str(error),
            )
            return None
        return request if _is_for(request, tenant, query_id) else None

    async def clear(self, tenant: str, query_id: str) -> None:
        """Remove the flag (e.g. when the query is deleted); the bucket TTL also expires it."""
        kv = await self.bus.key_value(self.bucket)
        with contextlib.suppress(KeyNotFoundError):
            await kv.purge(_key(tenant, query_id))

    @contextlib.asynccontextmanager
    async def watch(self, tenant: str, query_id: str) -> AsyncIterator[CancelWatch]:
        """Yield an event that is set as soon as the query is (or already was) cancelled."""
        watch = CancelWatch()

        async def on_message(msg: Msg) -> None:
            try:
                request = _decode(self.bus.cipher.open(msg.subject, msg.data, msg.headers))
            except (DecodeError, DecryptionError) as error:
                # Anyone who can publish on the subject could send bytes; only a cancel that
                # decodes (and, for an encrypted tenant, authenticates) stops a query.
                _log.warning("ignored an unreadable cancel", subject=msg.subject, error=str(error))
                return
            if _is_for(request, tenant, query_id):
                watch.trigger(request)
            else:
                _log.warning("ignored a cancel naming another query", subject=msg.subject)

        async def recheck() -> None:
            if not watch.is_set():
                found = await self.get(tenant, query_id)
                if found is not None:
                    watch.trigger(found)

        sub = await self.bus.nc.subscribe(subjects.query_cancel(tenant, query_id), cb=on_message)
        unregister = self.bus.on_reconnect(recheck)
        try:
            await recheck()
            yield watch
        finally:
            unregister()
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def cancel_watch(
    bus: Bus, tenant: str, query_id: str
) -> contextlib.AbstractAsyncContextManager[CancelWatch]:
    """Shorthand for ``CancelChannel(bus).watch(tenant, query_id)``."""
    return CancelChannel(bus).watch(tenant, query_id)


def _is_for(request: CancelRequest, tenant: str, query_id: str) -> bool:
    """A cancel acts only on the query it names, in its own tenant (a copy replayed onto
    another query's subject or key does nothing)."""
    return request.tenant == tenant and request.query_id == query_id
