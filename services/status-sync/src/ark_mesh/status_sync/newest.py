"""The newest status update published for a query: the last record of its status subject.

One lookup by subject (no consumer). A record that does not decode counts as no record: it
cannot be compared, and must not block the update at hand.
"""

from __future__ import annotations

from ark_mesh.bus import Bus, StreamReader
from ark_mesh.contracts import StatusUpdate, SubjectError, lenient_decoder_for, subjects

__all__ = ["NewestPublished"]

_status_or_none = lenient_decoder_for(StatusUpdate)


class NewestPublished:
    """A :data:`~ark_mesh.status_sync.applier.NewestLookup` over ``ARK_STATUS``."""

    def __init__(self, bus: Bus, stream: str = subjects.ARK_STATUS) -> None:
        self._reader = StreamReader(bus, stream)

    async def __call__(self, update: StatusUpdate) -> StatusUpdate | None:
        try:
            subject = subjects.query_status(update.tenant, update.query_id)
        except SubjectError:
            return None
        entry = await self._reader.last(subject, decoder=_status_or_none)
        return entry.message if entry is not None else None
