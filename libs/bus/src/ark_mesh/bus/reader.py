"""Read one subject of a stream from a point, then follow it live, until a stop condition.

Used to serve SSE with resume (the SSE ``id:`` is the stream sequence, so ``Last-Event-ID: n``
becomes ``start_seq = n + 1``) and to read conversation memory.

Each read uses a short-lived **ordered consumer**: ephemeral, in memory, flow-controlled, and
recreated by the client from the last sequence it saw if a message goes missing. It costs the
server nothing once the read ends, unlike a durable consumer per reader, which is what breaks
NATS deployments at tens of thousands of consumers.

Encrypted bodies (:mod:`ark_mesh.bus.encryption`) are opened with the bus's keys before they
are decoded; :attr:`StreamEntry.data` is the clear body.

**Never hangs.** Creating the ordered consumer is retried, each attempt bounded, for at most
``create_within`` seconds (nats-server ≤ 2.11 can place an ordered consumer on an offline
cluster node, and the creation then times out), then the read raises
:class:`~ark_mesh.bus.errors.ReaderUnavailableError`; so does a read that has been without a
connection to NATS for that long, or whose consumer has been gone (nats-py re-creates it in the
background, and would otherwise retry for ever without telling the read).

Stop conditions (any may be combined): ``until(entry)`` is true (the entry is still yielded —
it is usually the terminal event), no message for ``idle_timeout`` seconds, the reader has
``caught_up`` with what the stream held when the read started, or ``limit`` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from nats.js import api
from nats.js.errors import NotFoundError

from ark_mesh.bus.connection import Bus, ConnectionState
from ark_mesh.bus.context import parse_ack_subject
from ark_mesh.bus.errors import (
    BusClosedError,
    DecryptionError,
    ReaderUnavailableError,
    TopologyMissingError,
)
from ark_mesh.contracts import DecodeError
from ark_mesh.telemetry import get_logger

__all__ = ["StreamEntry", "StreamReader"]

_log = get_logger(__name__)

M = TypeVar("M")

_HEARTBEAT_SECONDS = 2.0
_COUNT_CONSUMER_IDLE_SECONDS = 10.0
CREATE_ATTEMPT_SECONDS = 5.0
"""One attempt at creating an ordered consumer (nats-py's own request timeout is similar)."""
CREATE_WITHIN_SECONDS = 20.0
"""How long a read keeps trying to create its consumer, or waits for a lost connection, before
it gives up with :class:`~ark_mesh.bus.errors.ReaderUnavailableError`: longer than a JetStream
leader election (a few seconds), short enough that a client is told rather than left waiting."""
_RETRY_PAUSE = (0.1, 2.0)
_WATCH_SECONDS = 1.0
"""How often a read waiting for a message checks that NATS is still there."""
_PROBE_SECONDS = 5.0
"""Silence after which a read checks that its consumer still exists (heartbeats come every
2 s, and nats-py re-creates a consumer after two missed ones)."""


@dataclass(frozen=True, slots=True)
class StreamEntry(Generic[M]):
    """One stored message. ``seq`` is the stream sequence (the SSE event id); ``data`` is the
    clear body (decrypted when it was stored encrypted), ``headers`` are as stored."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str]
    message: M
    pending: int
    """How many matching messages the stream held after this one when it was delivered."""


class StreamReader:
    """Reads subjects of ``stream`` (looked up from the subject when not given)."""

    def __init__(
        self,
        bus: Bus,
        stream: str | None = None,
        *,
        create_within: float = CREATE_WITHIN_SECONDS,
        create_attempt: float = CREATE_ATTEMPT_SECONDS,
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.create_within = create_within
        self.create_attempt = create_attempt

    async def _subscribe(
        self, subject: str, stream: str, config: api.ConsumerConfig
    ) -> Any:  # nats-py's PushSubscription
        """The ordered consumer, created with bounded retries (see the module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.create_within
        pause, longest = _RETRY_PAUSE
        attempts = 0
        while True:
            attempts += 1
            if self.bus.closed:
                raise BusClosedError("the bus connection is closed")
            try:
                async with asyncio.timeout(min(self.create_attempt, self.create_within)):
                    return await self.bus.js.subscribe(
                        subject,
                        stream=stream,
                        config=config.evolve(),  # nats-py fills it in: a fresh copy per try
                        ordered_consumer=True,
                        idle_heartbeat=_HEARTBEAT_SECONDS,
                    )
            except (nats.errors.Error, TimeoutError, OSError) as error:
                if isinstance(error, NotFoundError):
                    raise TopologyMissingError(f"stream {stream!r} does not exist") from None
                left = deadline - loop.time()
                if left <= 0:
                    raise ReaderUnavailableError(
                        subject,
                        f"its ordered consumer could not be created in {self.create_within:g}s "
                        f"({attempts} attempts; last: {type(error).__name__}: {error})",
                    ) from error
                _log.debug(
                    "ordered consumer not created, retrying",
                    subject=subject,
                    attempt=attempts,
                    error=f"{type(error).__name__}: {error}",
                )
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, longest)

    async def _probe(self, sub: Any, subject: str, alive: float, last_seq: int) -> float:
        """After a silence, ask the server for the read's consumer: nats-py re-creates a lost
        ordered consumer in the background and only reports failures to the connection's
        error callback, so a consumer that cannot be re-created would leave the read waiting
        for ever. Returns the new "last seen alive" time; raises once it has been gone for
        longer than the bound."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.create_attempt):
                await sub.consumer_info()
        except (nats.errors.Error, TimeoutError) as error:
            gone = loop.time() - alive
            if gone >= self.create_within:
                raise ReaderUnavailableError(
                    subject,
                    f"its ordered consumer has been gone for {gone:.0f}s and could not be "
                    f"re-created ({type(error).__name__}: {error})",
                    last_seq=last_seq,
                ) from error
            return alive
        return loop.time()

    def _check_connected(self, subject: str, last_seq: int) -> None:
        """Raise when NATS has been away longer than the bound (a read must not hang)."""
        health = self.bus.health
        if health.state is ConnectionState.CLOSED:
            raise BusClosedError("the bus connection is closed")
        if health.state is ConnectionState.CONNECTED:
            return
        away = time.monotonic() - health.since
        if away >= self.create_within:
            raise ReaderUnavailableError(
                subject, f"NATS has been unreachable for {away:.0f}s", last_seq=last_seq
            )

    async def stream_of(self, subject: str) -> str:
        """The stream storing ``subject`` (:class:`~ark_mesh.bus.errors.TopologyMissingError`
        when none does)."""
        return await self._stream_for(subject)

    async def _stream_for(self, subject: str) -> str:
        if self.stream is not None:
            return self.stream
        try:
            return await self.bus.jsm.find_stream_name_by_subject(subject)
        except NotFoundError:
            raise TopologyMissingError(f"no stream stores subject {subject!r}") from None

    async def read(
        self,
        subject: str,
        *,
        decoder: Callable[[bytes], M],
        start_seq: int | None = None,
        until: Callable[[StreamEntry[M]], bool] | None = None,
        idle_timeout: float | None = None,
        caught_up: bool = False,
        limit: int | None = None,
        skip_undecodable: bool = True,
        sealed: bool = False,
    ) -> AsyncIterator[StreamEntry[M]]:
        """Yield entries of ``subject`` from ``start_seq`` (default: the first one).

        Undecodable entries are logged and skipped (one bad record must not make a
        conversation or a stream unreadable forever) unless ``skip_undecodable`` is false, in
        which case the :class:`~ark_mesh.contracts.DecodeError` propagates. Entries that cannot
        be decrypted are treated the same way (:class:`~ark_mesh.bus.errors.DecryptionError`).
        ``sealed`` hands the bodies over as stored, not opened (a shared feed opens only what
        someone follows, :mod:`.fanout`).
        """
        stream = await self._stream_for(subject)
        cipher = self.bus.cipher
        config = api.ConsumerConfig(
            deliver_policy=(
                api.DeliverPolicy.BY_START_SEQUENCE if start_seq else api.DeliverPolicy.ALL
            ),
            opt_start_seq=start_seq if start_seq else None,
        )
        sub = await self._subscribe(subject, stream, config)
        loop = asyncio.get_running_loop()
        last_seq = 0
        alive = loop.time()
        try:
            if caught_up:
                info = await sub.consumer_info()
                delivered = info.delivered.consumer_seq if info.delivered else 0
                if not info.num_pending and not delivered:
                    return
            count = 0
            idle_by = loop.time() + idle_timeout if idle_timeout is not None else None
            while True:
                wait = _WATCH_SECONDS
                if idle_by is not None:
                    wait = min(wait, idle_by - loop.time())
                    if wait <= 0:
                        return
                try:
                    msg = await sub.next_msg(timeout=wait)
                except TimeoutError:
                    self._check_connected(subject, last_seq)
                    if loop.time() - alive >= _PROBE_SECONDS:
                        alive = await self._probe(sub, subject, alive, last_seq)
                    continue
                except nats.errors.ConnectionClosedError:
                    raise BusClosedError("the bus connection is closed") from None
                try:
                    delivery = parse_ack_subject(msg.reply)
                except ValueError:
                    continue
                last_seq = delivery.stream_seq
                alive = loop.time()
                if idle_timeout is not None:
                    idle_by = loop.time() + idle_timeout
                try:
                    data = msg.data if sealed else cipher.open(msg.subject, msg.data, msg.headers)
                    message = decoder(data)
                except (DecodeError, DecryptionError) as error:
                    if not skip_undecodable:
                        raise
                    _log.warning(
                        "skipping undecodable stream entry"
                        if isinstance(error, DecodeError)
                        else "skipping undecryptable stream entry",
                        stream=stream,
                        seq=delivery.stream_seq,
                        reason=str(error) if isinstance(error, DecryptionError) else error.reason,
                    )
                    if caught_up and delivery.pending == 0:
                        return
                    continue
                entry: StreamEntry[M] = StreamEntry(
                    seq=delivery.stream_seq,
                    subject=msg.subject,
                    data=data,
                    headers=msg.headers or {},
                    message=message,
                    pending=delivery.pending,
                )
                yield entry
                count += 1
                if until is not None and until(entry):
                    return
                if caught_up and entry.pending == 0:
                    return
                if limit is not None and count >= limit:
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def last_sequence(self, subject: str) -> int:
        """The last sequence of the stream storing ``subject`` (0 while it is empty). A read
        from the next one sends exactly what is stored from this call on: a live watch that
        starts there misses nothing stored after it answered (unlike a consumer delivering
        "new" messages from whenever it is created)."""
        stream = await self._stream_for(subject)
        info = await self.bus.jsm.stream_info(stream)
        return info.state.last_seq

    async def count(self, subject: str) -> int:
        """How many messages the stream holds now on ``subject`` (wildcards allowed).

        The pending count of a throwaway pull consumer filtered on ``subject``: one answer from
        the server whatever the number of distinct subjects (the stream's per-subject counts
        would list every one of them). The consumer is deleted at once (and, being ephemeral
        with an inactivity threshold, goes away on its own if that fails)."""
        stream = await self._stream_for(subject)
        info = await self.bus.jsm.add_consumer(
            stream,
            api.ConsumerConfig(
                filter_subject=subject,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.NONE,
                mem_storage=True,
                inactive_threshold=_COUNT_CONSUMER_IDLE_SECONDS,
            ),
        )
        with contextlib.suppress(nats.errors.Error, NotFoundError):
            await self.bus.jsm.delete_consumer(stream, info.name)
        return info.num_pending or 0

    async def last(self, subject: str, *, decoder: Callable[[bytes], M]) -> StreamEntry[M] | None:
        """The newest entry of a literal subject, or ``None`` (a direct lookup, no consumer).

        Raises :class:`~ark_mesh.bus.errors.DecryptionError` if it cannot be decrypted.
        """
        stream = await self._stream_for(subject)
        try:
            raw = await self.bus.jsm.get_last_msg(stream, subject)
        except NotFoundError:
            return None
        raw_headers: dict[str, Any] = dict(raw.headers or {})
        headers = {str(k): str(v) for k, v in raw_headers.items()}
        stored_subject = raw.subject or subject
        data = self.bus.cipher.open(stored_subject, raw.data or b"", headers)
        return StreamEntry(
            seq=raw.seq or 0,
            subject=stored_subject,
            data=data,
            headers=headers,
            message=decoder(data),
            pending=0,
        )
