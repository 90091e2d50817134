"""What a handler knows about the message it is handling, besides the message itself."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final, NamedTuple

from nats.aio.msg import Msg

from ark_mesh.contracts import MSG_ID_HEADER, SCHEMA_HEADER

__all__ = ["DeliveryInfo", "MessageContext", "parse_ack_subject", "tenant_of"]

_V1_TOKENS: Final = 9
_V2_MIN_TOKENS: Final = 11


class DeliveryInfo(NamedTuple):
    """Parsed from a JetStream message's reply (``$JS.ACK…``) subject (a tuple: built for
    every message, so it must be cheap)."""

    stream: str
    consumer: str
    delivered: int
    stream_seq: int
    consumer_seq: int
    pending: int


def parse_ack_subject(reply: str) -> DeliveryInfo:
    """Parse ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (and the
    longer form with domain and account hash that newer servers send)."""
    tokens = reply.split(".")
    if len(tokens) < _V1_TOKENS or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    # The longer form inserts domain and account hash before the stream name.
    offset = 4 if len(tokens) >= _V2_MIN_TOKENS else 2
    stream, consumer = tokens[offset], tokens[offset + 1]
    return DeliveryInfo(
        stream=stream,
        consumer=consumer,
        delivered=int(tokens[offset + 2]),
        stream_seq=int(tokens[offset + 3]),
        consumer_seq=int(tokens[offset + 4]),
        pending=int(tokens[offset + 6]),
    )


def tenant_of(subject: str) -> str | None:
    """The tenant token of an ark-mesh subject (``ark.<tenant>.…``), else ``None``."""
    if not subject.startswith("ark."):
        return None
    end = subject.find(".", 4)
    return subject[4:end] if end > 4 else None


class MessageContext:
    """Delivery facts plus the means to keep a long job alive.

    ``delivery`` counts from 1; ``max_deliver`` is the consumer's limit (``-1``: unlimited), so
    ``last_attempt`` tells a handler that failing now dead-letters the message. Delivery facts
    are parsed from the reply subject on first use: most handlers never look at them, and the
    worker builds one context per message.
    """

    __slots__ = (
        "_info",
        "confirmed",
        "fenced",
        "headers",
        "max_deliver",
        "msg",
        "subject",
        "tenant",
        "touched",
    )

    def __init__(
        self,
        msg: Msg,
        *,
        max_deliver: int,
        subject: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.msg = msg
        self.subject: str = subject if subject is not None else msg.subject
        self.tenant = tenant_of(self.subject)
        self.headers: Mapping[str, str] = headers if headers is not None else (msg.headers or {})
        self.max_deliver = max_deliver
        self.touched = time.monotonic()
        self.confirmed = self.touched
        """When the server last confirmed it holds the message for us (delivery, heartbeat)."""
        self.fenced = False
        """The worker stopped the handler: the message may be running elsewhere now."""
        self._info: DeliveryInfo | None = None

    @property
    def info(self) -> DeliveryInfo:
        info = self._info
        if info is None:
            info = self._info = parse_ack_subject(self.msg.reply)
        return info

    @property
    def delivery(self) -> int:
        return self.info.delivered

    @property
    def stream(self) -> str:
        return self.info.stream

    @property
    def stream_seq(self) -> int:
        return self.info.stream_seq

    @property
    def consumer(self) -> str:
        return self.info.consumer

    @property
    def msg_id(self) -> str | None:
        return self.headers.get(MSG_ID_HEADER)

    @property
    def schema(self) -> str | None:
        return self.headers.get(SCHEMA_HEADER)

    @property
    def redelivered(self) -> bool:
        return self.delivery > 1

    @property
    def last_attempt(self) -> bool:
        return 0 < self.max_deliver <= self.delivery

    async def extend(self) -> None:
        """Tell JetStream the handler is still working (resets the AckWait timer).

        The worker already does this on a timer while a handler runs; call it yourself only
        before a step that may block the event loop for a long time.
        """
        await self.msg.in_progress()
        self.touched = time.monotonic()

    def __repr__(self) -> str:
        return (
            f"MessageContext(subject={self.subject!r}, delivery={self.delivery}, "
            f"msg_id={self.msg_id!r})"
        )
