"""Credit-based pulling from a durable consumer: never ask for more than there is room for.

A JetStream pull request says "send me up to N messages, wait at most T". The worker keeps one
number honest: ``running handlers + messages requested but not yet received <= slots``. nats-py's
``fetch`` cannot promise that (a fetch that timed out client-side may still deliver later, and
its next call hands over everything buffered), which is how frameworks end up over-fetching and
seeing redeliveries of messages that sat in a local buffer past AckWait.

At most **one** request is open at a time. JetStream delivers a message under its own subject
(only the subscription tells where it went), so with several open requests there is no way to
know which one a message was charged to; with one, every message belongs to it. Batching does
not suffer: while a request is open, freed slots accumulate and the next request asks for all
of them. End-of-request statuses (408 expired, 409 a consumer limit, 503 no consumer…) arrive
on the request's own reply subject (``<inbox>.<token>``), so a late status of an older request
cannot close the current one.

A request whose expiry passed is forgotten even if the server never said so (it restarted), and
a reconnect forgets it too, because a restarted server no longer has it. A message that arrives
when no request is open is still handed over, flagged ``tracked=False``, so the caller can turn
it away if it has no room.

This module only speaks the pull protocol; what to do with a message is the caller's business.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ark_mesh.bus.connection import Bus

__all__ = ["PullConsumer"]

_HEARTBEAT: Final = "100"
# Deliveries to a request can trail its expiry a little (network, our event loop being busy).
_EXPIRY_MARGIN: Final = 1.0


class _PullRequest(msgspec.Struct):
    batch: int
    expires: int


_encode_request = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Open:
    token: str
    remaining: int
    deadline: float


class PullConsumer:
    """Issues pull requests for ``stream``/``durable`` and routes what comes back.

    ``deliver(msg, tracked)`` is called for every message (from the subscription's callback, so
    it must not block); ``on_end(status, description)`` when the open request ended: filled
    (status ``""``) or closed by the server (``408`` expired, ``409`` a consumer limit, ``503``
    no consumer…), so the owner can ask for more — or back off when asking again is pointless.
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        durable: str,
        *,
        deliver: Callable[[Msg, bool], None],
        on_end: Callable[[str, str], None],
        expires: float,
        api_prefix: str = "$JS.API",
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.durable = durable
        self._deliver = deliver
        self._on_end = on_end
        self._expires = expires
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = bus.nc.new_inbox()
        self._prefix_len = len(self._inbox) + 1
        self._tokens = itertools.count(1)
        self._open: _Open | None = None
        self._sub: Subscription | None = None

    async def start(self) -> None:
        # A generous pending limit: the credit accounting, not the client buffer, is the bound.
        self._sub = await self.bus.nc.subscribe(
            self._inbox + ".*", cb=self._on_message, pending_msgs_limit=1_000_000
        )

    async def stop(self) -> None:
        """Unsubscribe; the server drops waiting requests whose reply has no interest."""
        if self._sub is not None and not self.bus.nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._sub = None
        self.reset()

    @property
    def is_open(self) -> bool:
        """Whether a request is waiting on the server (after forgetting an expired one)."""
        self._expire()
        return self._open is not None

    @property
    def outstanding(self) -> int:
        """Messages requested and not yet received."""
        self._expire()
        return self._open.remaining if self._open is not None else 0

    def deadline(self) -> float | None:
        return self._open.deadline if self._open is not None else None

    async def request(self, batch: int) -> None:
        """Ask the server for up to ``batch`` messages, waiting at most ``expires`` seconds."""
        if batch <= 0:
            return
        if self.is_open:
            raise RuntimeError("a pull request is already open")
        token = str(next(self._tokens))
        body = _encode_request(_PullRequest(batch=batch, expires=int(self._expires * 1e9)))
        self._open = _Open(token, batch, time.monotonic() + self._expires + _EXPIRY_MARGIN)
        try:
            await self.bus.nc.publish(self._next_subject, body, reply=f"{self._inbox}.{token}")
        except BaseException:
            self._open = None
            raise

    def reset(self) -> None:
        """Forget the open request (after a reconnect the server no longer has it)."""
        self._open = None

    def _expire(self) -> None:
        if self._open is not None and self._open.deadline < time.monotonic():
            self._open = None

    async def _on_message(self, msg: Msg) -> None:
        current = self._open
        if not msg.reply:
            # A status message: no reply subject, code in the Status header, and delivered on
            # the reply subject of the request it ends.
            headers = msg.headers or {}
            status = headers.get("Status", "")
            if status == _HEARTBEAT:
                return
            token = msg.subject[self._prefix_len :]
            if current is not None and current.token == token:
                self._open = None
                self._on_end(status, headers.get("Description", ""))
            return
        tracked = current is not None
        if current is not None:
            current.remaining -= 1
            if current.remaining <= 0:
                self._open = None
                self._on_end("", "")
        self._deliver(msg, tracked)
