"""Messages larger than one NATS message: sent in pieces on their own subject, read whole.

A NATS server refuses a message larger than its ``max_payload`` (1 MiB by default, headers
included), and a result can be larger than that — 60 embeddings of 1,536 dimensions already
are. :func:`publish_whole` sends a message that fits as it always did, and one that does not as
*pieces*: consecutive slices of its encoded body, each published (and sealed with the tenant's
key, like any body) on the *same* subject with two headers:

* ``Ark-Part: <index>/<count>`` — 0-based position and number of pieces;
* ``Ark-Parts: <group>`` — a random id of this publishing's pieces.

Every piece keeps the whole's ``Ark-Schema``. The pieces are published one after the other,
each awaited, so they are stored in order; the **last** piece carries the caller's
``Nats-Msg-Id`` and the others ``<msg id>:<group>:<index>``. So the last piece plays the part
the whole message played: a redelivered handler that publishes its result again adds at most
some pieces nobody completes, never a second whole (JetStream drops the second last piece as a
duplicate). Staying on the message's own subject keeps everything a subject gives — the tenant's
NATS permission ``ark.<tenant>.>``, the stream's retention, the reader's ordered consumer.

:func:`read_whole` (and :class:`Reassembler`, for a reader of its own) puts the pieces back
together: pieces are collected per group, and the last piece of a group completes it; a last
piece whose earlier pieces were not seen (the read started after them, or they aged out) is an
undecodable entry, skipped like any other unless ``skip_undecodable`` is false.

A whole larger than ``max_bytes`` (64 MiB by default) is refused before anything is sent, with
:class:`~ark_mesh.bus.errors.PayloadTooLargeError` — a :class:`PermanentError`, so a handler
fails at once and can answer its caller with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final, TypeVar

from ark_mesh.bus.errors import PayloadTooLargeError
from ark_mesh.bus.publisher import PubAck, Publisher
from ark_mesh.bus.reader import StreamEntry, StreamReader
from ark_mesh.contracts import DecodeError, Message, encode
from ark_mesh.telemetry import get_logger

__all__ = [
    "DEFAULT_MAX_BYTES",
    "PARTS_HEADER",
    "PART_HEADER",
    "Reassembler",
    "piece_size",
    "publish_whole",
    "read_whole",
]

_log = get_logger(__name__)

M = TypeVar("M")

PART_HEADER: Final = "Ark-Part"
"""``<index>/<count>`` of a piece (0-based)."""
PARTS_HEADER: Final = "Ark-Parts"
"""The id shared by the pieces of one publishing."""
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
"""The largest whole :func:`publish_whole` sends unless told otherwise."""

_HEADROOM: Final = 8 * 1024
"""Room left in each piece for headers (schema, ids, trace context) and the cipher's envelope."""


def piece_size(max_payload: int) -> int:
    """The body bytes of one piece on a server whose ``max_payload`` is given."""
    return max(1024, max_payload - _HEADROOM)


async def publish_whole(
    publisher: Publisher,
    subject: str,
    message: Message,
    *,
    msg_id: str,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_payload: int | None = None,
) -> PubAck:
    """Publish ``message`` on ``subject``, in pieces when it is larger than one message.

    Returns the acknowledgement of the whole (of its last piece). ``max_payload`` overrides
    the server's limit (tests; a stream with a smaller ``max_msg_size``); ``headers`` go on
    every piece (e.g. the trace context). Raises
    :class:`PayloadTooLargeError` when the encoded message is larger than ``max_bytes``,
    before anything is published.
    """
    payload = encode(message)
    size = piece_size(max_payload or publisher.bus.nc.max_payload)
    if len(payload) <= size:
        return await publisher.publish(
            subject, payload, schema=message.SCHEMA, msg_id=msg_id, headers=headers
        )
    if len(payload) > max_bytes:
        raise PayloadTooLargeError(
            subject,
            f"the {message.SCHEMA} is {len(payload)} bytes, more than the {max_bytes} bytes "
            "a message may have in pieces",
        )
    group = uuid.uuid4().hex
    count = -(-len(payload) // size)
    _log.info(
        "publishing a large message in pieces",
        subject=subject,
        schema=message.SCHEMA,
        size=len(payload),
        pieces=count,
    )
    ack: PubAck | None = None
    for index in range(count):
        last = index == count - 1
        ack = await publisher.publish(
            subject,
            payload[index * size : (index + 1) * size],
            schema=message.SCHEMA,
            msg_id=msg_id if last else f"{msg_id}:{group}:{index}",
            headers={**(headers or {}), PART_HEADER: f"{index}/{count}", PARTS_HEADER: group},
        )
    assert ack is not None
    return ack


def _part(value: str) -> tuple[int, int] | None:
    index, slash, count = value.partition("/")
    if not slash or not index.isdigit() or not count.isdigit():
        return None
    position, total = int(index), int(count)
    return (position, total) if 0 <= position < total else None


class Reassembler:
    """Puts pieces back together, for one read of one subject (see the module docstring)."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[int, bytes]] = {}

    def add(self, data: bytes, headers: Mapping[str, str]) -> bytes | None:
        """The whole body once complete: ``data`` itself for a message sent whole, ``None``
        for a piece that does not complete its group yet.

        Raises :class:`~ark_mesh.contracts.DecodeError` for a malformed ``Ark-Part`` header
        and for a last piece whose group lacks pieces.
        """
        value = headers.get(PART_HEADER)
        if value is None:
            return data
        part = _part(value)
        group = headers.get(PARTS_HEADER, "")
        if part is None or not group:
            raise DecodeError(f"malformed piece headers {PART_HEADER}={value!r} {PARTS_HEADER}")
        index, count = part
        pieces = self._groups.setdefault(group, {})
        pieces[index] = data
        if index != count - 1:
            return None
        del self._groups[group]
        missing = [i for i in range(count) if i not in pieces]
        if missing:
            raise DecodeError(f"the pieces {missing} of {count} of group {group} were not read")
        return b"".join(pieces[i] for i in range(count))


def _raw(data: bytes) -> bytes:
    return data


async def read_whole(
    reader: StreamReader,
    subject: str,
    *,
    decoder: Callable[[bytes], M],
    start_seq: int | None = None,
    until: Callable[[StreamEntry[M]], bool] | None = None,
    idle_timeout: float | None = None,
    caught_up: bool = False,
    skip_undecodable: bool = True,
) -> AsyncIterator[StreamEntry[M]]:
    """:meth:`StreamReader.read` of whole messages: pieces are reassembled before decoding.

    A reassembled entry has the sequence, subject and headers of its last piece.
    """
    assembler = Reassembler()
    async for entry in reader.read(
        subject,
        decoder=_raw,
        start_seq=start_seq,
        idle_timeout=idle_timeout,
        caught_up=caught_up,
    ):
        try:
            data = assembler.add(entry.data, entry.headers)
            if data is None:
                continue
            message = decoder(data)
        except DecodeError as error:
            if not skip_undecodable:
                raise
            _log.warning("skipping undecodable stream entry", seq=entry.seq, reason=error.reason)
            continue
        whole = StreamEntry(
            seq=entry.seq,
            subject=entry.subject,
            data=data,
            headers=entry.headers,
            message=message,
            pending=entry.pending,
        )
        yield whole
        if until is not None and until(whole):
            return
