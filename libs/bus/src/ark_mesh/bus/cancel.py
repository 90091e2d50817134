"""Cancel signals that reach the worker running a query, even one that starts late.

A cancel is sent two ways at once:

* a **KV flag** in ``ark-cancel`` (key ``<tenant>.<queryId>``), durable, so a worker that picks
  the query up *after* the cancel was sent (it was queued, or redelivered after a crash) sees it
  before doing any work;
* a **core NATS message** on ``ark.<tenant>.query.<id>.cancel``, so the worker that is already
  running the query hears about it within a round trip, without polling.

:meth:`CancelChannel.watch` listens *before* it reads the flag, so no cancel can fall between
the two; after a reconnect it reads the flag again, because core messages sent while the
connection was down are gone.

A process listens with **one** subscription per :class:`~ark_mesh.bus.Bus`, on every query's
cancel subject (``ark.*.query.*.cancel``), made by the first watch and kept for the
connection's life; each watch registers under its ``(tenant, queryId)`` and a message is handed
to the watches of the query its subject names. A subscription per query in flight cost memory
in the client and the server and two protocol round trips per query (issue 14); cancels are
rare, so every replica hearing every cancel costs less than that. A cancel whose subject names
no watched query is dropped before it is decoded. After a reconnect the flags of all watched
queries are read again, at once.

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
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import ClassVar

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
_EVERY_CANCEL = f"{subjects.ROOT}.*.query.*.cancel"
"""Every query's cancel subject (``subjects.query_cancel`` with both tokens wild)."""


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
        dispatch = _CancelDispatch.of(self.bus)
        registration = _Registration(self, tenant, query_id, watch)
        dispatch.register(registration)
        try:
            await dispatch.listen()
            await registration.recheck()
            yield watch
        finally:
            dispatch.unregister(registration)


class _Registration:
    """One open watch: the channel whose bucket holds its flag, the query, the event."""

    __slots__ = ("channel", "query_id", "tenant", "watch")

    def __init__(
        self, channel: CancelChannel, tenant: str, query_id: str, watch: CancelWatch
    ) -> None:
        self.channel = channel
        self.tenant = tenant
        self.query_id = query_id
        self.watch = watch

    async def recheck(self) -> None:
        """Read the flag (a cancel sent before the watch, or while the connection was down)."""
        if not self.watch.is_set():
            found = await self.channel.get(self.tenant, self.query_id)
            if found is not None:
                self.watch.trigger(found)


class _CancelDispatch:
    """The one cancel subscription of a :class:`Bus`, and the watches it serves."""

    _of: ClassVar[weakref.WeakKeyDictionary[Bus, _CancelDispatch]] = weakref.WeakKeyDictionary()

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.watches: dict[tuple[str, str], list[_Registration]] = {}
        self._subscribed: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, bus: Bus) -> _CancelDispatch:
        dispatch = cls._of.get(bus)
        if dispatch is None:
            dispatch = cls._of[bus] = cls(bus)
        return dispatch

    def register(self, registration: _Registration) -> None:
        _key(registration.tenant, registration.query_id)  # validates both tokens
        key = (registration.tenant, registration.query_id)
        self.watches.setdefault(key, []).append(registration)

    def unregister(self, registration: _Registration) -> None:
        key = (registration.tenant, registration.query_id)
        registered = self.watches.get(key)
        if registered is None:
            return
        with contextlib.suppress(ValueError):
            registered.remove(registration)
        if not registered:
            del self.watches[key]

    async def listen(self) -> None:
        """Subscribe once (the first watch does; the others wait for it to be done)."""
        if self._subscribed is None:
            self._subscribed = asyncio.get_running_loop().create_future()
            try:
                await self.bus.nc.subscribe(_EVERY_CANCEL, cb=self._on_message)
            except BaseException as error:
                failed, self._subscribed = self._subscribed, None
                failed.set_exception(error)
                failed.exception()  # retrieved: the waiters (if any) get it raised
                raise
            self.bus.on_reconnect(self._recheck_all)
            self._subscribed.set_result(None)
        else:
            await asyncio.shield(self._subscribed)

    async def _on_message(self, msg: Msg) -> None:
        tokens = msg.subject.split(".")
        if len(tokens) != 5:
            return
        tenant, query_id = tokens[1], tokens[3]
        registered = self.watches.get((tenant, query_id))
        if not registered:
            return
        try:
            request = _decode(self.bus.cipher.open(msg.subject, msg.data, msg.headers))
        except (DecodeError, DecryptionError) as error:
            # Anyone who can publish on the subject could send bytes; only a cancel that
            # decodes (and, for an encrypted tenant, authenticates) stops a query.
            _log.warning("ignored an unreadable cancel", subject=msg.subject, error=str(error))
            return
        if not _is_for(request, tenant, query_id):
            _log.warning("ignored a cancel naming another query", subject=msg.subject)
            return
        for registration in list(registered):
            registration.watch.trigger(request)

    async def _recheck_all(self) -> None:
        waiting = [r for rs in self.watches.values() for r in rs if not r.watch.is_set()]
        results = await asyncio.gather(*(r.recheck() for r in waiting), return_exceptions=True)
        for registration, result in zip(waiting, results, strict=True):
            if isinstance(result, Exception):
                _log.warning(
                    "could not re-read a cancel flag after a reconnect",
                    tenant=registration.tenant,
                    query_id=registration.query_id,
                    error=str(result),
                )


def cancel_watch(
    bus: Bus, tenant: str, query_id: str
) -> contextlib.AbstractAsyncContextManager[CancelWatch]:
    """Shorthand for ``CancelChannel(bus).watch(tenant, query_id)``."""
    return CancelChannel(bus).watch(tenant, query_id)


def _is_for(request: CancelRequest, tenant: str, query_id: str) -> bool:
    """A cancel acts only on the query it names, in its own tenant (a copy replayed onto
    another query's subject or key does nothing)."""
    return request.tenant == tenant and request.query_id == query_id
