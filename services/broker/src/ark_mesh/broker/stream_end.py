"""The end of a query's chunk stream when its final chunk was never stored.

A query-reconciler publishes the terminal status, then the final chunk. If the final chunk
cannot be stored the attempt fails and the next delivery publishes it from the status (the
ledger's repair path), and a dead letter ends the query with one too — but while ``ARK_CHUNKS``
cannot take it (no leader for long, the store full), the status says ``done`` and every reader
waits for a final chunk. A reader must still end: after the stream has been silent for
``streaming.final_chunk_grace_seconds`` twice in a row with the same terminal status on record
(the real final chunk had all that time to arrive), the broker builds the final chunk itself
from the status — the same ``chatcmpl-final`` chunk the reconciler would have published
(:func:`~ark_mesh.contracts.endings.final_chunk` depends only on the query and its status) —
marked ``ark.synthesized: true``, and hands it out once, after every chunk it had.

Only broker-mode queries (the broker holds their record); a Query resource's stream keeps
waiting for its reconciler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from ark_mesh.broker.errors import UnavailableError
from ark_mesh.broker.readmodel import ReadModel
from ark_mesh.bus import BusError, NatsError, StreamEntry, StreamReader
from ark_mesh.bus.sequenced import IdleHook, Sequenced
from ark_mesh.contracts import StatusUpdate, decoder_for, encode, subjects
from ark_mesh.contracts.endings import final_chunk
from ark_mesh.telemetry import get_logger

__all__ = ["end_from_status"]

_log = get_logger(__name__)
_status = decoder_for(StatusUpdate).decode

C = TypeVar("C", bound=Sequenced)


def end_from_status(
    reader: StreamReader,
    read_model: ReadModel,
    tenant: str,
    query_id: str,
    decoder: Callable[[bytes], C],
) -> IdleHook[C]:
    """The idle hook of one query's chunk read (:func:`~ark_mesh.bus.in_sequence`); the chunk
    it builds is handed out as the read's ``decoder`` reads a stored one."""
    seen: list[tuple[int, int, int]] = []
    """The order key of the terminal status found at the previous silence."""

    async def check(next_seq: int) -> StreamEntry[C] | None:
        subject = subjects.query_status(tenant, query_id)
        try:
            last = await reader.last(subject, decoder=_status)
            update = last.message if last is not None else None
            if update is None or not update.terminal:
                seen.clear()
                return None
            if seen != [update.order]:
                seen[:] = [update.order]  # first silence since it ended: give the chunk time
                return None
            record = await read_model.get(tenant, query_id)
        except (BusError, NatsError, UnavailableError, TimeoutError):
            return None  # NATS trouble: the read itself ends the stream if it lasts
        if record is None:
            return None
        request = record.work(submitted_at=record.creation_timestamp)
        built = final_chunk(request, update.status, seq=next_seq, now=datetime.now(UTC))
        chunk = msgspec.structs.replace(
            built, ark=msgspec.structs.replace(built.ark, synthesized=True)
        )
        _log.warning(
            "no final chunk was stored for a finished query; its stream ends with one built "
            "from the terminal status",
            tenant=tenant,
            query_id=query_id,
            phase=update.phase,
        )
        chunk_subject = subjects.query_chunk(tenant, query_id)
        data = encode(chunk)
        return StreamEntry(
            seq=0, subject=chunk_subject, data=data, headers={}, message=decoder(data), pending=0
        )

    return check
