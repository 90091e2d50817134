"""Publishing to JetStream: awaited commands and a bounded window for high-rate chunks.

Every message gets the same headers: ``Ark-Schema`` (what the body is), ``Nats-Msg-Id`` when the
caller gives one (JetStream drops a second copy inside the stream's duplicate window), and the
W3C ``traceparent`` of a PRODUCER span. Bodies of tenants with encryption keys are sealed by
the bus's :class:`~ark_mesh.bus.encryption.PayloadCipher` (headers stay in clear).

Two ways to publish:

* :meth:`Publisher.publish` — for commands (work, status, cancel flags). Waits for the PubAck
  and returns it (``duplicate`` tells the caller the server already had this id). A timed-out
  attempt is retried *with the same* ``Nats-Msg-Id`` until ``retry_for`` runs out, which makes
  the retry safe: the stream stores the message once however many attempts reach it.
* :meth:`Publisher.publish_nowait` — for chunks and events. Returns as soon as the message is
  written to the socket; acknowledgements are collected in the background. At most ``window``
  messages are unacknowledged at any time — a caller that outruns the server waits for a free
  place instead of growing memory without bound. Timed-out messages are retried like commands;
  :meth:`Publisher.flush` waits for every outstanding ack and raises if any message was lost.

Acknowledgements are matched to publishes through one wildcard reply subscription per
publisher (not one inbox per message), and timeouts are enforced here: nats-py's own async
publish never times out an ack that the server lost, which would leak window places forever
across a broker restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ark_mesh.bus.connection import Bus
from ark_mesh.bus.errors import (
    BusClosedError,
    PayloadTooLargeError,
    PublishError,
    PublishTimeoutError,
)
from ark_mesh.contracts import MSG_ID_HEADER, SCHEMA_HEADER, Message, encode
from ark_mesh.telemetry import Attr, MessagingTelemetry, get_logger

__all__ = ["PubAck", "Publisher", "PublisherSettings", "header_bytes"]

_log = get_logger(__name__)

_STATUS_HEADER: Final = "Status"
_NO_RESPONDERS: Final = "503"


@dataclass(frozen=True, slots=True)
class PubAck:
    """JetStream's acknowledgement: where the message is stored, and whether it was a duplicate."""

    stream: str
    seq: int
    duplicate: bool = False


class _PubAckWire(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAckWire)


class PublisherSettings(msgspec.Struct, frozen=True, kw_only=True):
    """``ack_timeout`` per attempt; ``retry_for`` total time spent retrying timed-out attempts
    (keep it below the stream's duplicate window, or a late retry could be stored twice);
    ``window`` bounds unacknowledged :meth:`Publisher.publish_nowait` messages.

    ``no_responders_for`` is how long a publish answered "no responders" keeps being retried.
    A stream whose leader just died answers that until its cluster elects another (4 to 8 s seen
    on a 3-node cluster), so giving up sooner loses messages to every election; a subject no
    stream captures answers it for ever, and fails once this time is up.
    """

    ack_timeout: float = 5.0
    retry_for: float = 30.0
    window: int = 1000
    no_responders_for: float = 15.0


class _NoStreamError(Exception):
    pass


def header_bytes(headers: Mapping[str, str]) -> int:
    """What ``headers`` add to a message on the wire (``NATS/1.0\\r\\n``, ``k: v\\r\\n``
    each, ``\\r\\n``): the server counts them in ``max_payload``."""
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def _no_responders_pause(tries: int) -> float:
    """Back off from 0.1 s to at most 1 s between "no responders" retries."""
    return min(1.0, 0.05 * 2.0**tries)


_TOO_LARGE_FOR_STREAM: Final = 10054
"""JetStream's ``err_code``: larger than the stream's ``max_msg_size``."""


class _RejectedError(Exception):
    def __init__(self, description: str, *, too_large: bool = False) -> None:
        self.description = description
        self.too_large = too_large
        super().__init__(description)

    def error(self, subject: str) -> PublishError:
        """What the caller gets: a stream size limit is permanent, like ``max_payload``."""
        if self.too_large:
            return PayloadTooLargeError(subject, self.description)
        return PublishError(subject, self.description)


@dataclass(slots=True)
class _Windowed:
    subject: str
    payload: bytes
    headers: dict[str, str]
    schema: str
    first_sent: float
    sent: float
    no_stream: int = 0


class Publisher:
    """Publishes ark-mesh messages on one :class:`Bus`; create with :meth:`start`."""

    def __init__(
        self,
        bus: Bus,
        settings: PublisherSettings | None = None,
        *,
        telemetry: MessagingTelemetry | None = None,
        on_failure: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings or PublisherSettings()
        self._cipher = bus.cipher
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self._on_failure = on_failure
        self._prefix = bus.nc.new_inbox() + "."
        self._tokens = itertools.count(1)
        self._waiters: dict[str, asyncio.Future[PubAck]] = {}
        self._windowed: dict[str, _Windowed] = {}
        self._window = asyncio.Semaphore(self.settings.window)
        self._idle = asyncio.Event()
        self._idle.set()
        # Windowed messages not yet stored (or failed), by subject, for :meth:`settle`.
        self._open: collections.Counter[str] = collections.Counter()
        self._settling: dict[str, asyncio.Event] = {}
        self._failures: list[tuple[str, Exception]] = []
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> Publisher:
        if self._sub is None:
            self._sub = await self.bus.nc.subscribe(self._prefix + "*", cb=self._on_reply)
            self._sweeper = asyncio.create_task(self._sweep(), name="publisher-ack-sweeper")
        return self

    @classmethod
    async def create(
        cls, bus: Bus, settings: PublisherSettings | None = None, **kw: Any
    ) -> Publisher:
        return await cls(bus, settings, **kw).start()

    # -- building messages ----------------------------------------------------------------------

    @staticmethod
    def _headers(
        schema: str, msg_id: str | None, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        headers = dict(extra) if extra else {}
        headers[SCHEMA_HEADER] = schema
        if msg_id is not None:
            headers[MSG_ID_HEADER] = msg_id
        return headers

    @staticmethod
    def _body(message: Message | bytes, schema: str | None) -> tuple[bytes, str]:
        if isinstance(message, bytes | bytearray):
            if not schema:
                raise ValueError("raw payloads need an explicit schema for the Ark-Schema header")
            return bytes(message), schema
        return encode(message), schema or message.SCHEMA

    # -- awaited publish ------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        message: Message | bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        schema: str | None = None,
        ack_timeout: float | None = None,
        retry_for: float | None = None,
    ) -> PubAck:
        """Publish and wait for JetStream's acknowledgement (retrying timeouts with the same id).

        Raises :class:`PublishTimeoutError` when no attempt was acknowledged within ``retry_for``
        and :class:`PublishError` when the server refused the message or no stream captures
        ``subject`` (:class:`EncryptionRequiredError` when the tenant requires a key this
        process does not have).
        """
        self._check_open()
        payload, schema_id = self._body(message, schema)
        all_headers = self._headers(schema_id, msg_id, headers)
        # Sealed once: every retry resends the same ciphertext under the same Nats-Msg-Id.
        payload = self._cipher.seal(subject, payload, all_headers)
        attempt_timeout = ack_timeout if ack_timeout is not None else self.settings.ack_timeout
        budget = retry_for if retry_for is not None else self.settings.retry_for
        started = time.perf_counter()
        deadline = time.monotonic() + max(budget, attempt_timeout)
        no_stream = 0
        no_responders_until = time.monotonic() + self.settings.no_responders_for
        attempt = 0
        with self.telemetry.publish_span(
            subject, all_headers, message_id=msg_id, schema=schema_id
        ) as span:
            while True:
                attempt += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishTimeoutError(
                        subject, f"no acknowledgement after {attempt - 1} attempt(s)"
                    )
                token = str(next(self._tokens))
                future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
                self._waiters[token] = future
                try:
                    await self._send(subject, payload, self._prefix + token, all_headers)
                    ack = await asyncio.wait_for(future, min(attempt_timeout, remaining))
                except TimeoutError:
                    _log.debug("publish not acknowledged, retrying", subject=subject)
                    continue
                except nats.errors.OutboundBufferLimitError:
                    # Reconnecting and the client's buffer is full: wait for the connection.
                    with contextlib.suppress(TimeoutError):
                        await self.bus.wait_connected(min(attempt_timeout, remaining))
                    continue
                except _NoStreamError:
                    no_stream += 1
                    pause = _no_responders_pause(no_stream)
                    if time.monotonic() + pause > no_responders_until:
                        raise PublishError(
                            subject,
                            "no JetStream stream answered for this subject within "
                            f"{self.settings.no_responders_for:g}s (none captures it, or its "
                            "cluster has no leader)",
                        ) from None
                    # An election does not count against the ack budget: extend it.
                    deadline = max(deadline, time.monotonic() + pause + attempt_timeout)
                    await asyncio.sleep(pause)
                    continue
                except _RejectedError as rejected:
                    raise rejected.error(subject) from None
                finally:
                    self._waiters.pop(token, None)
                elapsed = time.perf_counter() - started
                attrs = self.telemetry.attrs(Attr.SCHEMA, schema_id)
                self.telemetry.metrics.publish_duration.record(elapsed, attrs)
                self.telemetry.metrics.sent.add(1, attrs)
                if span.is_recording():
                    span.set_attribute("messaging.nats.stream.sequence", ack.seq)
                    span.set_attribute("messaging.nats.duplicate", ack.duplicate)
                return ack

    # -- windowed publish -----------------------------------------------------------------------

    async def publish_nowait(
        self,
        subject: str,
        message: Message | bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        schema: str | None = None,
    ) -> None:
        """Send without waiting for the ack; waits only while the window is full."""
        self._check_open()
        payload, schema_id = self._body(message, schema)
        all_headers = self._headers(schema_id, msg_id, headers)
        payload = self._cipher.seal(subject, payload, all_headers)
        await self._window.acquire()
        now = time.monotonic()
        entry = _Windowed(subject, payload, all_headers, schema_id, now, now)
        self._open[subject] += 1
        try:
            if self.telemetry.tracing:
                with self.telemetry.publish_span(
                    subject, all_headers, message_id=msg_id, schema=schema_id
                ):
                    await self._dispatch(entry)
            else:
                self.telemetry.inject_current(all_headers)
                await self._dispatch(entry)
        except BaseException:
            self._window.release()
            self._close_entry(subject)
            raise

    async def _dispatch(self, entry: _Windowed) -> None:
        token = str(next(self._tokens))
        entry.sent = time.monotonic()
        self._windowed[token] = entry
        self._idle.clear()
        try:
            await self._send(entry.subject, entry.payload, self._prefix + token, entry.headers)
        except nats.errors.OutboundBufferLimitError:
            # Stays registered: the sweeper times it out and retries once reconnected.
            pass
        except BaseException:
            self._windowed.pop(token, None)
            self._maybe_idle()
            raise

    @property
    def pending(self) -> int:
        """Messages sent with :meth:`publish_nowait` and not yet acknowledged."""
        return len(self._windowed) + len(self._retry_tasks)

    async def settle(self, subject: str, within: float | None = None) -> None:
        """Wait until every windowed message on ``subject`` is stored; raise if one was not.

        Why: a windowed message whose acknowledgement was lost (a stream leader died) is sent
        again later, so without this a message published *after* it with :meth:`publish` — a
        query's final chunk — can be stored first, and a reader that stops at the final chunk
        never sees what the retry stored behind it. Waits for this subject only, so one query's
        final chunk does not wait for (or fail with) another's; ``TimeoutError`` past
        ``within`` seconds, :class:`PublishError` naming the first loss on ``subject``.
        """
        if self._open[subject]:
            settled = self._settling.setdefault(subject, asyncio.Event())
            try:
                await asyncio.wait_for(settled.wait(), within)
            finally:
                self._settling.pop(subject, None)
        lost = [error for failed, error in self._failures if failed == subject]
        if lost:
            self._failures = [entry for entry in self._failures if entry[0] != subject]
            raise PublishError(
                subject, f"{len(lost)} message(s) were not stored; first error: {lost[0]}"
            )

    async def flush(self, within: float | None = None) -> None:
        """Wait until every windowed message is acknowledged; raise if any could not be stored.

        ``TimeoutError`` if that takes longer than ``within`` seconds.
        """
        if self._windowed or self._retry_tasks:
            await asyncio.wait_for(self._idle.wait(), within)
        if self._failures:
            failures, self._failures = self._failures, []
            subject, error = failures[0]
            raise PublishError(
                subject, f"{len(failures)} message(s) were not stored; first error: {error}"
            )

    # -- plumbing -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("publisher is closed")
        if self._sub is None:
            raise RuntimeError("Publisher.start() was not awaited")

    async def _send(
        self, subject: str, payload: bytes, reply: str, headers: dict[str, str]
    ) -> None:
        # The server counts headers in max_payload and closes the connection of a client that
        # sends more; nats-py checks the body alone. Refuse here, naming the sizes.
        size = len(payload) + header_bytes(headers)
        limit = self.bus.nc.max_payload
        if size > limit:
            raise PayloadTooLargeError(
                subject,
                f"the message is {size} bytes with its headers, more than the server's "
                f"max_payload of {limit} bytes",
            )
        try:
            await self.bus.nc.publish(subject, payload, reply=reply, headers=headers)
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as error:
            raise BusClosedError(f"cannot publish to {subject!r}: connection closed") from error

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._prefix) :]
        waiter = self._waiters.get(token)
        if waiter is not None:
            if not waiter.done():
                try:
                    waiter.set_result(self._parse(msg))
                except (_NoStreamError, _RejectedError) as error:
                    waiter.set_exception(error)
            return
        entry = self._windowed.pop(token, None)
        if entry is None:
            return  # the ack of an attempt we already gave up on and retried
        try:
            self._parse(msg)
        except _NoStreamError as error:
            entry.no_stream += 1
            pause = _no_responders_pause(entry.no_stream)
            if time.monotonic() + pause - entry.first_sent > self.settings.no_responders_for:
                self._fail(
                    entry,
                    PublishError(
                        entry.subject,
                        "no JetStream stream answered for this subject within "
                        f"{self.settings.no_responders_for:g}s",
                    ),
                )
            else:
                self._retry_later(entry, pause, error, budget=self.settings.no_responders_for)
            return
        except _RejectedError as rejected:
            self._fail(entry, rejected.error(entry.subject))
            return
        attrs = self.telemetry.attrs(Attr.SCHEMA, entry.schema)
        self.telemetry.metrics.publish_duration.record(time.monotonic() - entry.first_sent, attrs)
        self.telemetry.metrics.sent.add(1, attrs)
        self._window.release()
        self._close_entry(entry.subject)
        self._maybe_idle()

    def _close_entry(self, subject: str) -> None:
        """One windowed message on ``subject`` is stored or given up: wake :meth:`settle`."""
        self._open[subject] -= 1
        if self._open[subject] <= 0:
            del self._open[subject]
            settled = self._settling.get(subject)
            if settled is not None:
                settled.set()

    @staticmethod
    def _parse(msg: Msg) -> PubAck:
        headers = msg.headers
        if headers and headers.get(_STATUS_HEADER) == _NO_RESPONDERS and not msg.data:
            raise _NoStreamError()
        wire = _ack_decoder.decode(msg.data)
        if wire.error is not None:
            raise _RejectedError(
                str(wire.error.get("description", wire.error)),
                too_large=wire.error.get("err_code") == _TOO_LARGE_FOR_STREAM,
            )
        return PubAck(stream=wire.stream, seq=wire.seq, duplicate=wire.duplicate)

    def _fail(self, entry: _Windowed, error: Exception) -> None:
        _log.error("message could not be published", subject=entry.subject, error=str(error))
        self._failures.append((entry.subject, error))
        if self._on_failure is not None:
            try:
                self._on_failure(entry.subject, error)
            except Exception:
                _log.exception("publish failure callback raised")
        self._window.release()
        self._close_entry(entry.subject)
        self._maybe_idle()

    def _retry_later(
        self, entry: _Windowed, delay: float, cause: Exception, *, budget: float | None = None
    ) -> None:
        limit = max(self.settings.retry_for, budget or 0.0)
        if time.monotonic() + delay - entry.first_sent > limit:
            self._fail(entry, PublishTimeoutError(entry.subject, f"gave up retrying: {cause!r}"))
            return

        async def resend() -> None:
            await asyncio.sleep(delay)
            try:
                await self._dispatch(entry)
            except BusClosedError as error:
                self._fail(entry, error)

        task = asyncio.create_task(resend())
        self._retry_tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._retry_tasks.discard(finished)
            self._maybe_idle()

        task.add_done_callback(done)

    def _maybe_idle(self) -> None:
        if not self._windowed and not self._retry_tasks:
            self._idle.set()

    async def _sweep(self) -> None:
        # Every windowed entry has the same timeout and dict order is send order, so expired
        # entries are always at the front: the scan stops at the first live one.
        period = max(0.05, self.settings.ack_timeout / 4)
        while True:
            await asyncio.sleep(period)
            cutoff = time.monotonic() - self.settings.ack_timeout
            expired: list[str] = []
            for token, entry in self._windowed.items():
                if entry.sent > cutoff:
                    break
                expired.append(token)
            for token in expired:
                entry = self._windowed.pop(token)
                self._retry_later(entry, 0.0, TimeoutError("no acknowledgement"))

    async def close(self, within: float | None = None) -> None:
        """Flush outstanding messages (best effort for ``within`` seconds) and stop."""
        if self._closed:
            return
        with contextlib.suppress(TimeoutError, PublishError):
            await self.flush(within if within is not None else self.settings.ack_timeout)
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._retry_tasks):
            task.cancel()
        if self._sub is not None and not self.bus.nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._sub = None
