"""The resolver's :class:`~ark_mesh.resolver.Journal` for one delivery: checkpoints in ``ark-runs``.

The resolver awaits :meth:`RunJournal.record` after every completed model turn and tool call
(and before a tool call that is not idempotent, with the call ``in_flight``); the run goes on
only once the log is stored. What this adds to a plain KV put:

* **Chunk positions are stored query-wide.** The resolver counts the chunks of its own run;
  the sink publishes them after whatever earlier attempts and rounds left on the chunk subject
  (:meth:`~ark_mesh.query_reconciler.sink.JetStreamSink.position`). The log stores the
  query-wide number, so the next attempt continues after it even when ``ARK_CHUNKS`` has
  aged out the chunks of a query that waited for a human longer than the stream keeps them.
* **Chunks before checkpoints.** Coalesced chunks are handed to the connection before the KV
  write, so a stored checkpoint never counts chunks the server has not received (one
  connection delivers in order).
* **One owner.** Each save names the revision of the previous one; a second process on the
  same query gets :class:`~ark_mesh.bus.RunLogConflictError` and stops before its next step.
* **A checkpoint that cannot be stored is transient, never the query's end.** The resolver turns
  an unexpected exception into an ``error`` ending; a KV hiccup, or losing the run to another
  process, must not end the query (the other process may be finishing it). So every failure to
  store is raised as :class:`CheckpointError`, a
  :class:`~ark_mesh.resolver.TransientResolutionError`: the run stops, the work is redelivered
  with backoff, and the redelivery replays what was stored.
"""

from __future__ import annotations

import msgspec

from ark_mesh.bus import BusError, NatsError, RunLogConflictError, RunLogStore, StoredRun
from ark_mesh.contracts import QueryRequest
from ark_mesh.contracts.approvals import RunLog
from ark_mesh.query_reconciler.sink import JetStreamSink
from ark_mesh.resolver import TransientResolutionError
from ark_mesh.telemetry import get_logger

__all__ = ["CheckpointError", "RunJournal", "chunk_offset", "resumed_log"]

_log = get_logger(__name__)


class CheckpointError(TransientResolutionError):
    """The run's log could not be stored; ``conflict`` when another process saved it since."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        self.conflict = conflict
        super().__init__(message)


class RunJournal:
    """Saves the run's log for ``request`` through ``store``, after ``stored``'s revision."""

    def __init__(
        self,
        store: RunLogStore,
        request: QueryRequest,
        sink: JetStreamSink,
        stored: StoredRun,
    ) -> None:
        self._store = store
        self._tenant = request.tenant
        self._sink = sink
        self.revision = stored.revision
        self.last: RunLog | None = stored.log
        """The newest log stored (query-wide chunk numbers), ``None`` before the first save."""

    async def record(self, log: RunLog) -> None:
        # The resolver counts chunks per run and sets ``chunk_seq`` only where it matters to
        # it (at a pause, counting the approval line it is about to send); between pauses the
        # sink knows best which chunk went out last.
        try:
            await self._sink.settle()
            position = max(self._sink.last_seq, self._sink.position(log.chunk_seq))
            stored = msgspec.structs.replace(log, chunk_seq=position)
            self.revision = await self._store.save(self._tenant, stored, revision=self.revision)
        except RunLogConflictError as exc:
            _log.warning("another process owns the run; stopping before the next step")
            raise CheckpointError(str(exc), conflict=True) from exc
        except (BusError, NatsError, TimeoutError) as exc:
            # Includes chunks of this step that were not stored (PublishError): the step is
            # run again rather than recorded with output no reader will ever see.
            raise CheckpointError(f"the run's checkpoint could not be stored: {exc!r}") from exc
        self.last = stored


def resumed_log(log: RunLog) -> RunLog:
    """``log`` as handed to the resolver: its chunk count starts again at zero, because the
    sink of this attempt already places every chunk after the query-wide position
    (:func:`chunk_offset`); :meth:`RunJournal.record` maps the resolver's count back."""
    return msgspec.structs.replace(log, chunk_seq=0)


def chunk_offset(on_subject: int, log: RunLog | None) -> int:
    """Where this attempt's chunks continue: after the last chunk on the subject, or after the
    log's position when the stream has aged out chunks the log counts (a long pause)."""
    return max(on_subject, log.chunk_seq if log is not None else 0)
