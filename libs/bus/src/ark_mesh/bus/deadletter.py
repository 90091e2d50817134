"""Moving a message the worker gives up on to ``ARK_DLQ``, with the reason.

The copy is published *before* the original is terminated, and with the ``Nats-Msg-Id``
``dlq:<stream>:<sequence>``: if the worker dies between the two steps, the original is
redelivered and dead-lettered again, and JetStream keeps a single copy. If the DLQ publish
fails the original is left alone (naked for later) — a dead letter is never lost to save time.

``DeadLetter.data`` is the original body byte for byte, so an encrypted message stays
ciphertext; the dead letter itself goes to the tenant's DLQ subject and is sealed again by the
publisher when the tenant has keys. A letter larger than one NATS message is stored in pieces
(:mod:`ark_mesh.bus.large`); read the DLQ with :func:`~ark_mesh.bus.read_whole`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ark_mesh.bus.context import tenant_of
from ark_mesh.bus.large import publish_whole
from ark_mesh.bus.publisher import PubAck, Publisher
from ark_mesh.contracts import DeadLetter, subjects

__all__ = [
    "DeadLetterCallback",
    "DeadLetterCause",
    "DeadLetterNotice",
    "dead_letter_msg_id",
    "dead_letter_subject",
    "publish_dead_letter",
]

UNKNOWN_TENANT = "unknown"


class DeadLetterCause(StrEnum):
    UNDECODABLE = "undecodable"
    """The bytes are not a valid message of the expected schema."""
    UNDECRYPTABLE = "undecryptable"
    """The body is encrypted under a key this process lacks, was tampered with or moved to
    another subject, or is clear text for a tenant that requires encryption."""
    PERMANENT = "permanent"
    """The handler raised :class:`~ark_mesh.bus.errors.PermanentError`."""
    EXHAUSTED = "exhausted"
    """MaxDeliver was used up by transient failures or by workers that died mid-handler."""


@dataclass(frozen=True)
class DeadLetterNotice:
    """Given to a worker's ``on_dead_letter`` callback, so the owner can fail the query."""

    letter: DeadLetter
    cause: DeadLetterCause
    dlq_subject: str
    message: Any | None
    """The decoded message, when it could be decoded."""


DeadLetterCallback = Callable[[DeadLetterNotice], Awaitable[None] | None]


def dead_letter_subject(subject: str, kind: str | None = None) -> str:
    """``ark.<tenant>.dlq.<kind>``: tenant from the original subject, kind its last token."""
    tenant = tenant_of(subject) or UNKNOWN_TENANT
    return subjects.dlq(tenant, kind or subject.rsplit(".", 1)[-1])


def dead_letter_msg_id(stream: str, stream_seq: int) -> str:
    return f"dlq:{stream}:{stream_seq}"


async def publish_dead_letter(
    publisher: Publisher,
    *,
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    reason: str,
    deliveries: int,
    stream: str,
    stream_seq: int,
    service: str | None,
    kind: str | None = None,
) -> tuple[DeadLetter, str, PubAck]:
    """Publish the dead letter (awaited); returns the letter, its subject and the ack."""
    letter = DeadLetter(
        subject=subject,
        reason=reason,
        data=data,
        headers=dict(headers) if headers else None,
        deliveries=deliveries,
        stream_sequence=stream_seq,
        service=service,
        dead_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    target = dead_letter_subject(subject, kind)
    # A letter holds the whole original (base64 in JSON, a third larger), so a message near
    # max_payload makes a letter above it: it goes in pieces (read with read_whole).
    ack = await publish_whole(
        publisher,
        target,
        letter,
        msg_id=dead_letter_msg_id(stream, stream_seq),
        headers=_trace(headers),
    )
    return letter, target, ack


def _trace(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    # Keep the original trace on the dead letter so it shows up in the same trace.
    if not headers:
        return None
    kept = {key: value for key, value in headers.items() if key in ("traceparent", "tracestate")}
    return kept or None
