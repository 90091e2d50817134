"""Step logs of durable runs in the KV bucket ``ark-runs``: what a resumed run replays.

A run records every completed model turn and tool call in its
:class:`~ark_mesh.contracts.approvals.RunLog`; whoever picks the query up next — another replica
after a crash, any replica after an approval — loads the log and replays it instead of calling
the model or the tool again. This module is the log's storage; the resolver decides what goes
into it.

Choices, and why:

* **One key per query** (``<tenant>.<queryId>``), not per generation or attempt: a query has one
  live run at a time, and a new generation simply writes over the old log (the log carries its
  generation; :meth:`RunLogStore.load` never returns a log of another one). Bucket history 1:
  only the newest log matters.
* **Every save names the revision it extends** (``Nats-Expected-Last-Subject-Sequence``): two
  processes on one query — a replica that lost its delivery but did not notice — cannot
  interleave their steps. The loser gets :class:`~ark_mesh.bus.errors.RunLogConflictError` on
  its next save, which comes *before* any non-idempotent tool call (the resolver records the
  call as in flight first), so it stops before a second side effect.
* **Sealed per tenant** like every body at rest: the log holds the conversation, tool
  arguments and results. Associated data is the key's KV subject, so a log copied under another
  query or tenant does not open.
* **Deleted when the query ends**, plus a bucket TTL (``topology.runsBucket.ttl``): the delete
  keeps the bucket as small as the number of live runs; the TTL bounds what a crash between the
  terminal status and the delete, or a query paused for a human who never answers, leaves
  behind. A resume that finds its log expired ends the query in ``error`` rather than running
  it from the start.
* **A log that cannot be opened or decoded is an error, not a missing log**
  (:class:`~ark_mesh.bus.errors.RunLogUnreadableError`): running the query from the start
  would repeat the side effects the log records.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from ark_mesh.bus.connection import Bus
from ark_mesh.bus.errors import DecryptionError, RunLogConflictError, RunLogUnreadableError
from ark_mesh.contracts import DecodeError, decoder_for, encode, subjects
from ark_mesh.contracts.approvals import RunLog
from ark_mesh.telemetry import get_logger

__all__ = ["RunLogStore", "StoredRun", "run_key"]

_log = get_logger(__name__)
_decode = decoder_for(RunLog)


def run_key(tenant: str, query_id: str) -> str:
    """The log's key in ``ark-runs``: ``<tenant>.<queryId>``."""
    subjects.validate_token(tenant, "tenant")
    subjects.validate_token(query_id, "query id")
    return f"{tenant}.{query_id}"


@dataclass(frozen=True)
class StoredRun:
    """What :meth:`RunLogStore.load` found.

    ``log`` is ``None`` when the query has no log of the asked generation (none yet, deleted,
    expired, or one of another generation). ``revision`` is the key's newest revision whatever
    it holds (0: never written) — the revision the next :meth:`RunLogStore.save` must name.
    """

    log: RunLog | None
    revision: int


class RunLogStore:
    """Load, save and delete run logs; one per process (it holds no per-run state)."""

    def __init__(self, bus: Bus, *, bucket: str = subjects.RUNS_BUCKET) -> None:
        self.bus = bus
        self.bucket = bucket

    def _subject(self, key: str) -> str:
        return f"$KV.{self.bucket}.{key}"

    async def load(self, tenant: str, query_id: str, generation: int) -> StoredRun:
        """The log of ``generation`` of the query, and the key's revision.

        Raises :class:`RunLogUnreadableError` for a log of this query that cannot be opened or
        decoded.
        """
        key = run_key(tenant, query_id)
        kv = await self.bus.key_value(self.bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError as missing:
            # A deleted or purged key still has a revision (its marker) that a save must name.
            marker = missing.entry
            return StoredRun(None, (marker.revision or 0) if marker is not None else 0)
        revision = entry.revision or 0
        try:
            body = self.bus.cipher.open(self._subject(key), entry.value or b"", tenant=tenant)
            log = _decode(body)
        except (DecryptionError, DecodeError) as error:
            raise RunLogUnreadableError(query_id, str(error)) from error
        if log.query_id != query_id:
            raise RunLogUnreadableError(query_id, f"the stored log is query {log.query_id}'s")
        if log.generation != generation:
            return StoredRun(None, revision)
        return StoredRun(log, revision)

    async def save(self, tenant: str, log: RunLog, *, revision: int) -> int:
        """Store ``log`` over ``revision`` (0: the key must hold nothing); the new revision.

        Raises :class:`RunLogConflictError` when the key moved on since ``revision``.
        """
        key = run_key(tenant, log.query_id)
        kv = await self.bus.key_value(self.bucket)
        body = self.bus.cipher.seal(self._subject(key), encode(log), tenant=tenant)
        try:
            return await kv.update(key, body, last=revision)
        except KeyWrongLastSequenceError as error:
            raise RunLogConflictError(
                log.query_id,
                f"saved by another writer since revision {revision} ({error.description})",
            ) from error

    async def delete(self, tenant: str, query_id: str) -> None:
        """Drop the query's log (it ended). Best effort: the bucket TTL removes what a failed
        delete leaves."""
        kv = await self.bus.key_value(self.bucket)
        try:
            await kv.purge(run_key(tenant, query_id))
        except nats.errors.Error as error:
            _log.warning("run log not deleted", query_id=query_id, error=str(error))
