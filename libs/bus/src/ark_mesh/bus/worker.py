"""The worker runtime: pull work from a shared durable consumer and run a handler per message.

All replicas of a service bind to the same durable pull consumer, so JetStream spreads work
across them and redelivers what a dead replica held. Concurrency is bounded twice: the
consumer's ``MaxAckPending`` caps messages in flight across every replica, and each replica
has ``slots`` and never asks for more messages than it has free slots (see
:mod:`ark_mesh.bus.pull`).

Per message the worker:

1. opens the body if it is encrypted (:mod:`ark_mesh.bus.encryption`) and decodes it; a
   message that cannot be decrypted or decoded is dead-lettered: it can never succeed;
2. opens a CONSUMER span (child of the producer's span from ``traceparent``) and binds
   ``tenant``/``msg_id`` into the log context;
3. runs the handler, sending ``in_progress`` heartbeats every ``AckWait/3`` so a long LLM call
   is not redelivered while it is alive — and *is* redelivered soon after its worker dies:
   with the default AckWait of 8 s another replica has a dead replica's messages between
   about 5 and 8 s after the death (decision 49; ``bench/takeover.py``). Heartbeats are
   confirmed by the server; a message none was confirmed for since ``fence_after`` (AckWait
   minus one interval) may be running elsewhere soon, so its handler is stopped (cancelled)
   and the message left to the server — a replica cut off from the cluster stops instead of
   streaming beside the attempt that took its work over;
4. maps the outcome: return → ``ack``; :class:`~ark_mesh.bus.errors.TransientError` (or any
   unexpected exception) → ``nak(delay)`` with a delay that grows per delivery (a plain nak
   would redeliver at once and burn MaxDeliver in milliseconds); a transient failure on the
   last allowed delivery, or :class:`~ark_mesh.bus.errors.PermanentError` → copy to ``ARK_DLQ``
   and ``term``, then tell the owner through ``on_dead_letter``.

A message whose worker died on its *last* delivery never comes back to a handler; the server
announces it with a MaxDeliver advisory instead, which one replica (queue group) turns into a
dead letter and a callback, and removes from the work-queue stream where it would otherwise
sit forever.

Stopping (:meth:`Worker.stop`, wired to SIGTERM by :func:`~ark_mesh.bus.lifecycle.shutdown_signal`)
stops asking for work, lets running handlers finish within the grace period, naks whatever is
still running after it (another replica picks it up at once), and flushes acks before the
connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import NotFoundError

from ark_mesh.bus.config import WorkerSettings
from ark_mesh.bus.connection import Bus
from ark_mesh.bus.context import MessageContext
from ark_mesh.bus.deadletter import (
    DeadLetterCallback,
    DeadLetterCause,
    DeadLetterNotice,
    publish_dead_letter,
)
from ark_mesh.bus.errors import (
    BusClosedError,
    BusError,
    DecryptionError,
    PermanentError,
    TopologyMissingError,
    TransientError,
)
from ark_mesh.bus.publisher import Publisher
from ark_mesh.bus.pull import PullConsumer
from ark_mesh.bus.topology import WorkBinding
from ark_mesh.contracts import DecodeError, decoder_for
from ark_mesh.telemetry import Attr, MessagingTelemetry, bind_context, get_logger

__all__ = ["Handler", "Worker", "WorkerStats", "retry_delay"]

_log = get_logger(__name__)

M = TypeVar("M")

Handler = Callable[[M, MessageContext], Awaitable[None]]
"""``async def handle(message, context) -> None``; raise Transient/PermanentError to steer."""

# Statuses that end a pull request because asking again right now would fail the same way.
_BACKOFF_STATUSES = frozenset({"503", "409"})


def retry_delay(delivery: int, initial: float, maximum: float) -> float:
    """Delay before redelivery number ``delivery + 1``: doubles per delivery, capped."""
    return float(min(maximum, initial * (2 ** max(0, delivery - 1))))


@dataclass
class WorkerStats:
    """Counters for tests and status pages (metrics carry the same numbers)."""

    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    drained: int = 0
    turned_away: int = 0
    late_heartbeats: int = 0
    """Heartbeats sent more than AckWait after the previous one: the message may have been
    handed to another replica meanwhile (a stalled event loop, a connection down)."""
    fenced: int = 0
    """Handlers stopped because no heartbeat was confirmed for ``fence_after`` seconds."""


class _Advisory(msgspec.Struct):
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


_advisory_decoder = msgspec.json.Decoder(_Advisory)


class Worker(Generic[M]):
    """Runs ``handler`` for every message of one durable consumer; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        binding: WorkBinding | tuple[str, str],
        handler: Handler[M],
        *,
        decoder: Callable[[bytes], M],
        settings: WorkerSettings | None = None,
        publisher: Publisher | None = None,
        on_dead_letter: DeadLetterCallback | None = None,
        telemetry: MessagingTelemetry | None = None,
    ) -> None:
        if isinstance(binding, WorkBinding):
            self.stream, self.durable = binding.stream, binding.durable
        else:
            self.stream, self.durable = binding
        self.bus = bus
        self._cipher = bus.cipher
        self.settings = settings or WorkerSettings()
        if self.settings.slots < 1:
            raise ValueError("WorkerSettings.slots must be at least 1")
        self.telemetry = telemetry or MessagingTelemetry.from_globals()
        self.stats = WorkerStats()
        self._handler = handler
        self._decoder = decoder
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._on_dead_letter = on_dead_letter
        self._pull: PullConsumer | None = None
        self._tasks: dict[asyncio.Task[None], MessageContext] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._started = False
        self._pump_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._advisory_sub: Subscription | None = None
        # Heartbeats are requests: the server's empty reply (to one wildcard subscription per
        # worker, a token per heartbeat) confirms it still holds the message for us.
        self._beat_prefix = ""
        self._beat_tokens = itertools.count(1)
        self._beats: dict[str, MessageContext] = {}
        self._beat_sub: Subscription | None = None
        self._unregister_reconnect: Callable[[], None] | None = None
        self._backoff_until = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = False
        self._loop: asyncio.AbstractEventLoop  # set by start(), before any message arrives
        self.ack_wait = 30.0
        self.max_deliver = -1
        self.work_queue = False
        self._consumer_attrs = self.telemetry.attrs(Attr.CONSUMER_GROUP, self.durable)
        self._outcome_attrs: dict[str, Mapping[str, str]] = {}
        self._metering = False

    @classmethod
    def for_type(
        cls,
        bus: Bus,
        binding: WorkBinding | tuple[str, str],
        message_type: type[M],
        handler: Handler[M],
        **kwargs: Any,
    ) -> Worker[M]:
        """A worker decoding bodies as ``message_type`` with the contracts codec."""
        return cls(bus, binding, handler, decoder=decoder_for(message_type), **kwargs)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def running(self) -> bool:
        return self._started and not self._stopping

    async def start(self) -> None:
        """Check the consumer exists, then start pulling; returns at once."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        try:
            info = await self.bus.jsm.consumer_info(self.stream, self.durable)
            stream_info = await self.bus.jsm.stream_info(self.stream)
        except NotFoundError:
            raise TopologyMissingError(
                f"consumer {self.durable!r} on stream {self.stream!r} does not exist; provision "
                "the topology first"
            ) from None
        self.ack_wait = info.config.ack_wait or 30.0
        self.max_deliver = info.config.max_deliver or -1
        self.work_queue = stream_info.config.retention == api.RetentionPolicy.WORK_QUEUE
        # Checked once: install the meter provider (configure_telemetry) before workers start.
        self._metering = self.telemetry.metering
        if self._publisher is None:
            self._publisher = await Publisher.create(self.bus, telemetry=self.telemetry)
        self._pull = PullConsumer(
            self.bus,
            self.stream,
            self.durable,
            deliver=self._accept,
            on_end=self._request_ended,
            expires=self.settings.pull_expires,
        )
        await self._pull.start()
        self._advisory_sub = await self.bus.nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream}.{self.durable}",
            queue=f"ark-dlq-{self.durable}",
            cb=self._on_max_deliveries,
        )
        self._beat_prefix = self.bus.nc.new_inbox() + "."
        self._beat_sub = await self.bus.nc.subscribe(
            self._beat_prefix + "*", cb=self._on_beat_confirmed
        )
        self._unregister_reconnect = self.bus.on_reconnect(self._after_reconnect)
        self._started = True
        self._pump_task = asyncio.create_task(self._pump(), name=f"worker-pump-{self.durable}")
        self._heartbeat_task = asyncio.create_task(
            self._heartbeats(), name=f"worker-heartbeat-{self.durable}"
        )
        _log.info(
            "worker started",
            stream=self.stream,
            consumer=self.durable,
            slots=self.settings.slots,
            ack_wait=self.ack_wait,
            heartbeat=self.heartbeat_interval,
            max_deliver=self.max_deliver,
        )
        if self.heartbeat_interval * 1.25 >= self.ack_wait:
            _log.warning(
                "heartbeat interval too close to AckWait: running messages may be redelivered "
                "to another replica while this one still works on them",
                heartbeat=self.heartbeat_interval,
                ack_wait=self.ack_wait,
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Start, wait for ``stop`` (e.g. from :func:`shutdown_signal`), then drain."""
        await self.start()
        await stop.wait()
        await self.stop()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful drain: no new work, finish or nak in-flight work, flush acks."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        grace_period = self.settings.grace_period if grace is None else grace
        _log.info("worker draining", in_flight=len(self._tasks), grace=grace_period)
        if self._pump_task is not None:
            await self._pump_task
        if self._pull is not None:
            # Withdraw the open pull request *before* handing anything back: the server drops
            # a waiting request whose reply subject lost interest, so a message we nak below
            # goes to another replica instead of bouncing back into this one's request.
            await self._pull.stop()
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self.bus.nc.flush(timeout=5)
        running = list(self._tasks)
        if running:
            _, late = await asyncio.wait(running, timeout=grace_period)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        for sub in (self._advisory_sub, self._beat_sub):
            if sub is not None and not self.bus.nc.is_closed:
                with contextlib.suppress(nats.errors.Error):
                    await sub.unsubscribe()
        if self._unregister_reconnect is not None:
            self._unregister_reconnect()
        if self._own_publisher and self._publisher is not None:
            await self._publisher.close()
        if self.bus.nc.is_connected:
            # Acks and naks are buffered writes; make sure they left before anyone closes.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self.bus.nc.flush(timeout=5)
        _log.info("worker stopped", consumer=self.durable, stats=self.stats.__dict__)

    async def wait_idle(self) -> None:
        """Wait until no handler is running (useful in tests and before shutdown)."""
        await self._idle.wait()

    # -- pulling --------------------------------------------------------------------------------

    def _free_slots(self) -> int:
        assert self._pull is not None
        return self.settings.slots - len(self._tasks) - self._pull.outstanding

    async def _pump(self) -> None:
        # Pulling must never silently stop: an unexpected error is logged and pulling resumes.
        while not self._stopping:
            try:
                await self._pull_loop()
                return  # stopping, or the bus was closed under us
            except Exception:
                _log.exception("worker pull loop failed; resuming", consumer=self.durable)
                self._backoff_until = time.monotonic() + 1.0

    async def _pull_loop(self) -> None:
        assert self._pull is not None
        pull = self._pull
        slots = self.settings.slots
        refill = max(1, int(slots * self.settings.refill_fraction))
        short_since: float | None = None
        while not self._stopping:
            self._wake.clear()
            now = time.monotonic()
            if now < self._backoff_until:
                await self._sleep_or_wake(self._backoff_until - now)
                continue
            if not self.bus.ready:
                with contextlib.suppress(TimeoutError, BusClosedError):
                    await self.bus.wait_connected(1.0)
                if self.bus.closed:
                    _log.warning("bus closed under a running worker", consumer=self.durable)
                    return
                continue
            timeout = self.settings.pull_expires
            if not pull.is_open:
                free = self._free_slots()
                if free > 0 and free < refill and self._tasks:
                    # A few slots free while others are busy: wait a moment for more to free
                    # up, so fast handlers are fetched in batches, yet a slot freed by a slow
                    # handler is filled after a few milliseconds at most.
                    short_since = short_since if short_since is not None else now
                    waited = now - short_since
                    if waited < self.settings.refill_delay:
                        await self._sleep_or_wake(self.settings.refill_delay - waited)
                        continue
                if free > 0:
                    short_since = None
                    try:
                        await pull.request(free)
                    except (nats.errors.Error, BusError) as error:
                        _log.warning("pull request failed", consumer=self.durable, error=str(error))
                        self._backoff_until = time.monotonic() + 0.5
                        continue
            deadline = pull.deadline()
            if deadline is not None:
                timeout = deadline - now
            await self._sleep_or_wake(max(0.01, timeout))

    async def _sleep_or_wake(self, seconds: float) -> None:
        # asyncio.timeout rather than wait_for: no extra task per wait on this hot loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _request_ended(self, status: str, description: str) -> None:
        if status in _BACKOFF_STATUSES:
            # e.g. the consumer was deleted, or MaxWaiting reached: asking again at once
            # would spin. The topology may be re-provisioned meanwhile.
            _log.warning(
                "pull request refused", consumer=self.durable, status=status, reason=description
            )
            self._backoff_until = time.monotonic() + 1.0
        self._wake.set()

    async def _after_reconnect(self) -> None:
        if self._pull is not None:
            self._pull.reset()
        self._wake.set()

    def _accept(self, msg: Msg, tracked: bool) -> None:
        if self._stopping or (not tracked and len(self._tasks) >= self.settings.slots):
            # Draining, or a late delivery beyond our slots: hand it back at once.
            self.stats.turned_away += 1
            self._loop.create_task(self._quiet(msg.nak()))
            return
        if not msg.reply.startswith("$JS.ACK."):
            _log.error("message without a JetStream reply subject", subject=msg.subject)
            return
        context = MessageContext(msg, max_deliver=self.max_deliver)
        task = self._loop.create_task(self._handle(msg, context))
        self._tasks[task] = context
        if not self._busy:
            self._busy = True
            self._idle.clear()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not self._tasks:
            self._busy = False
            self._idle.set()
        # While a request is open, freed slots wait for it to end (which wakes the pump).
        if self._stopping or self._pull is None or not self._pull.is_open:
            self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            _log.error("worker task crashed", error=repr(task.exception()))

    async def _quiet(self, operation: Awaitable[None]) -> None:
        with contextlib.suppress(nats.errors.Error, BusError):
            await operation

    # -- handling -------------------------------------------------------------------------------

    async def _handle(self, msg: Msg, context: MessageContext) -> None:
        metrics = self.telemetry.metrics
        attrs = self._consumer_attrs
        metering = self._metering
        if metering:
            metrics.in_flight.add(1, attrs)
            if context.delivery > 1:
                metrics.redeliveries.add(1, attrs)
        started = time.perf_counter()
        outcome = "error"
        # Each message runs in its own task, whose context dies with it: bind without unbinding.
        bind_context(tenant=context.tenant, msg_id=context.msg_id)
        try:
            if self.telemetry.tracing:
                with self.telemetry.process_span(
                    msg.subject,
                    context.headers,
                    consumer=self.durable,
                    message_id=context.msg_id,
                    delivery_count=context.delivery,
                    tenant=context.tenant,
                ) as span:
                    outcome = await self._run(msg, context)
                    if span.is_recording():
                        span.set_attribute(Attr.OUTCOME, outcome)
            else:
                token = self.telemetry.adopt(context.headers)
                try:
                    outcome = await self._run(msg, context)
                finally:
                    self.telemetry.release(token)
        finally:
            if metering:
                self._record(outcome, time.perf_counter() - started)

    def _record(self, outcome: str, seconds: float) -> None:
        metrics = self.telemetry.metrics
        metrics.in_flight.add(-1, self._consumer_attrs)
        outcome_attrs = self._outcome_attrs.get(outcome)
        if outcome_attrs is None:
            outcome_attrs = self._outcome_attrs[outcome] = self.telemetry.attrs(
                Attr.CONSUMER_GROUP, self.durable, Attr.OUTCOME, outcome
            )
        metrics.handled.add(1, outcome_attrs)
        metrics.handler_duration.record(seconds, outcome_attrs)

    async def _run(self, msg: Msg, context: MessageContext) -> str:
        try:
            message = self._decoder(self._cipher.open(msg.subject, msg.data, msg.headers))
        except DecryptionError as error:
            # The reason names subject and key id only; the dead letter keeps the sealed bytes.
            return await self._dead_letter(
                msg, context, DeadLetterCause.UNDECRYPTABLE, str(error), None
            )
        except DecodeError as error:
            return await self._dead_letter(
                msg, context, DeadLetterCause.UNDECODABLE, f"undecodable: {error.reason}", None
            )
        except Exception as error:
            return await self._dead_letter(
                msg, context, DeadLetterCause.UNDECODABLE, f"undecodable: {error!r}", None
            )
        try:
            await self._handler(message, context)
        except PermanentError as error:
            return await self._dead_letter(
                msg, context, DeadLetterCause.PERMANENT, str(error) or type(error).__name__, message
            )
        except TransientError as error:
            return await self._retry(msg, context, error, error.delay, message)
        except asyncio.CancelledError:
            if context.fenced and not self._stopping:
                # Stopped by the fence: the server redelivers the message (to whoever it
                # chooses) after AckWait; a nak now could start a third attempt beside one
                # already running elsewhere.
                return "fenced"
            if self._stopping:
                # The grace period ran out: give the message back for another replica now.
                self.stats.drained += 1
                await self._quiet(msg.nak())
            raise
        except Exception as error:
            _log.exception("handler failed unexpectedly", subject=msg.subject)
            return await self._retry(msg, context, error, None, message)
        try:
            if self.settings.double_ack:
                await msg.ack_sync(timeout=self.bus.settings.request_timeout)
            else:
                await msg.ack()
        except (nats.errors.Error, BusError) as error:
            # The message will come back after AckWait; handlers are idempotent by contract.
            _log.warning("ack failed", subject=msg.subject, error=str(error))
            return "ack_failed"
        self.stats.acked += 1
        return "ack"

    async def _retry(
        self,
        msg: Msg,
        context: MessageContext,
        error: BaseException,
        delay: float | None,
        message: Any,
    ) -> str:
        if context.last_attempt:
            reason = f"gave up after {context.delivery} deliveries: {type(error).__name__}: {error}"
            return await self._dead_letter(msg, context, DeadLetterCause.EXHAUSTED, reason, message)
        wait = (
            delay
            if delay is not None
            else retry_delay(
                context.delivery,
                self.settings.retry_delay_initial,
                self.settings.retry_delay_max,
            )
        )
        _log.info(
            "handler failed, retrying later",
            subject=msg.subject,
            delivery=context.delivery,
            retry_in=wait,
            error=str(error) or type(error).__name__,
        )
        await self._quiet(msg.nak(delay=wait))
        self.stats.retried += 1
        return "retry"

    async def _dead_letter(
        self,
        msg: Msg,
        context: MessageContext,
        cause: DeadLetterCause,
        reason: str,
        message: Any,
    ) -> str:
        assert self._publisher is not None
        try:
            letter, target, _ = await publish_dead_letter(
                self._publisher,
                subject=msg.subject,
                data=msg.data,
                headers=context.headers,
                reason=reason,
                deliveries=context.delivery,
                stream=context.stream,
                stream_seq=context.stream_seq,
                service=self.settings.service,
                kind=self.settings.dead_letter_kind,
            )
        except BusError as error:
            # Never drop a message to save time: keep it and try again later.
            _log.error("dead-lettering failed, keeping the message", error=str(error))
            await self._quiet(msg.nak(delay=self.settings.retry_delay_max))
            return "retry"
        await self._quiet(msg.term())
        self.stats.dead_lettered += 1
        self.telemetry.metrics.dead_letters.add(
            1, self.telemetry.attrs(Attr.CONSUMER_GROUP, self.durable, Attr.REASON, cause.value)
        )
        _log.warning(
            "message dead-lettered",
            subject=msg.subject,
            dlq=target,
            cause=cause.value,
            reason=reason,
            delivery=context.delivery,
        )
        await self._notify(DeadLetterNotice(letter, cause, target, message))
        return "dead_letter"

    async def _notify(self, notice: DeadLetterNotice) -> None:
        if self._on_dead_letter is None:
            return
        try:
            result = self._on_dead_letter(notice)
            if result is not None:
                await result
        except Exception:
            _log.exception("dead-letter callback failed", subject=notice.letter.subject)

    # -- heartbeats -----------------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two ``in_progress`` of one running message: ``heartbeat_interval``
        of the settings, else a third of the consumer's AckWait."""
        return self.settings.heartbeat_interval or max(0.05, self.ack_wait / 3)

    @property
    def fence_after(self) -> float:
        """Seconds without a confirmed heartbeat after which a running handler is stopped."""
        return self.settings.fence_after or max(
            self.heartbeat_interval * 1.25, self.ack_wait - self.heartbeat_interval
        )

    async def _heartbeats(self) -> None:
        # The takeover mechanism (decision 49): AckWait is short (8 s by default) so a dead
        # replica's messages come back within it, and a live one keeps each running message
        # alive with ``in_progress``. Ticking at a quarter of the interval keeps the longest gap
        # between two heartbeats of a message at 1.25 intervals, well inside AckWait.
        interval = self.heartbeat_interval
        fence_after = self.fence_after
        while True:
            await asyncio.sleep(interval / 4)
            now = time.monotonic()
            ready = self.bus.ready
            late: list[str] = []
            for task, context in list(self._tasks.items()):
                if context.fenced:
                    continue
                idle = now - context.touched
                if idle >= self.ack_wait:
                    late.append(context.subject)
                if now - context.confirmed >= fence_after:
                    # With the connection down too: that is when it matters most.
                    self._fence(task, context, now)
                    continue
                if idle < interval or not ready:
                    continue
                context.touched = now
                token = str(next(self._beat_tokens))
                self._beats[token] = context
                try:
                    await self.bus.nc.publish(
                        context.msg.reply, b"+WPI", reply=self._beat_prefix + token
                    )
                except (nats.errors.Error, BusError):
                    self._beats.pop(token, None)  # connection trouble: the next tick tries again
                except Exception:
                    self._beats.pop(token, None)
                    _log.exception("heartbeat failed", subject=context.subject)
            # Heartbeats the server never answered (no leader then) are not waited for.
            if len(self._beats) > 4 * len(self._tasks) + 64:
                running = set(self._tasks.values())
                self._beats = {t: c for t, c in self._beats.items() if c in running}
            if late:
                self.stats.late_heartbeats += len(late)
                # The event loop stalled or the connection was down for a whole AckWait:
                # JetStream may have handed these messages to another replica meanwhile. Their
                # handlers were fenced above; say so (once per tick).
                _log.warning(
                    "heartbeats late by more than AckWait; the messages may be redelivered",
                    count=len(late),
                    subjects=late[:10],
                    ack_wait=self.ack_wait,
                )

    async def _on_beat_confirmed(self, msg: Msg) -> None:
        context = self._beats.pop(msg.subject[len(self._beat_prefix) :], None)
        if context is None:
            return
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            return  # no responders: the consumer has no leader right now
        context.confirmed = max(context.confirmed, time.monotonic())

    def _fence(self, task: asyncio.Task[None], context: MessageContext, now: float) -> None:
        """Stop a handler whose message the server may hand (or have handed) to another
        replica: nothing confirmed our heartbeats for ``fence_after`` seconds."""
        context.fenced = True
        self.stats.fenced += 1
        _log.warning(
            "no heartbeat confirmed for too long; stopping the handler so the message runs "
            "in one place only (the server redelivers it)",
            subject=context.subject,
            unconfirmed_for=round(now - context.confirmed, 1),
            ack_wait=self.ack_wait,
        )
        task.cancel()

    # -- MaxDeliver advisories ------------------------------------------------------------------

    async def _on_max_deliveries(self, advisory_msg: Msg) -> None:
        try:
            advisory = _advisory_decoder.decode(advisory_msg.data)
        except msgspec.DecodeError:
            _log.warning("unreadable MaxDeliver advisory", data=advisory_msg.data[:200])
            return
        assert self._publisher is not None
        try:
            stored = await self.bus.jsm.get_msg(self.stream, advisory.stream_seq)
        except NotFoundError:
            return  # already dead-lettered and removed, or acked at the last moment
        except (nats.errors.Error, BusError) as error:
            _log.error("cannot read message after MaxDeliver", error=str(error))
            return
        subject = stored.subject or ""
        data = stored.data or b""
        headers = {str(k): str(v) for k, v in (stored.headers or {}).items()}
        reason = (
            f"no outcome after {advisory.deliveries} deliveries (MaxDeliver reached; the "
            "worker likely died or timed out on the last one)"
        )
        try:
            letter, target, _ = await publish_dead_letter(
                self._publisher,
                subject=subject,
                data=data,
                headers=headers,
                reason=reason,
                deliveries=advisory.deliveries,
                stream=self.stream,
                stream_seq=advisory.stream_seq,
                service=self.settings.service,
                kind=self.settings.dead_letter_kind,
            )
        except BusError as error:
            _log.error("dead-lettering after MaxDeliver failed", error=str(error))
            return
        if self.work_queue:
            # A work-queue stream keeps a message that hit MaxDeliver forever; it now lives
            # in the DLQ, so remove the original.
            with contextlib.suppress(NotFoundError, nats.errors.Error):
                await self.bus.jsm.delete_msg(self.stream, advisory.stream_seq)
        self.stats.dead_lettered += 1
        self.telemetry.metrics.dead_letters.add(
            1,
            self.telemetry.attrs(
                Attr.CONSUMER_GROUP, self.durable, Attr.REASON, DeadLetterCause.EXHAUSTED.value
            ),
        )
        try:
            decoded: Any = self._decoder(self._cipher.open(subject, data, headers))
        except Exception:
            decoded = None
        _log.warning("message dead-lettered after MaxDeliver", subject=subject, dlq=target)
        await self._notify(DeadLetterNotice(letter, DeadLetterCause.EXHAUSTED, target, decoded))
