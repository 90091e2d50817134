"""Applying one StatusUpdate to its Query CR: status subresource only, in order, exactly once.

Per update: read the Query, check it is *the* query of the update (``metadata.uid`` equals
``queryId``: a Query deleted and created again under the same name is another query), decide
with :func:`~ark_mesh.contracts.ordering.decide`, and merge-patch ``/status`` with the
read's ``resourceVersion`` as a precondition. Another replica (or the controller) writing in
between makes the patch fail with 409; the whole read-compare-write then runs again on the
fresh object, so two replicas can never interleave a stale decision with a newer write — and
because a resourceVersion is never reused, the precondition also pins the uid that was checked.

The write itself is :class:`ark_mesh.kube.StatusWriter`'s (``/status`` merge patch only,
resourceVersion precondition, retries on 409/429/5xx, nothing sent when nothing changes, a
terminal phase never left); the uid and order checks run as its ``guard``, against the same
read the precondition pins.

Outcomes for the bus: written or skipped → ack; transient API failures after the retries →
:class:`~ark_mesh.bus.TransientError` (redelivery); permanent ones →
:class:`~ark_mesh.bus.PermanentError` (dead letter with the reason). An update saying it has no
resource (``hasResource: false``: a broker-mode query without a mirror) is skipped before
anything is read — no Kubernetes GET, no newest-update lookup; a Query that does not exist
(deleted meanwhile, or an update from a reconciler older than that flag) is skipped with a log
line after the GET.

A pause (an update carrying ``approval``) first opens the approval's A2ATask
(:func:`ark_mesh.kube.open_approval_task`, idempotent), and only for the Query the update is
about: the controller resumes the query from that task as soon as it sees ``input-required``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ark_mesh.bus import MessageContext, PermanentError, TransientError
from ark_mesh.contracts import Query, StatusUpdate
from ark_mesh.contracts.ordering import decide
from ark_mesh.kube import (
    ApiResource,
    EventRecorder,
    KubeClient,
    NotFoundError,
    ObjectReference,
    PermanentKubeError,
    RetryPolicy,
    StatusWriter,
    TerminalPhaseError,
    TooManyRequestsError,
    TransientKubeError,
    open_approval_task,
)
from ark_mesh.status_sync.transitions import transition
from ark_mesh.telemetry import bound_context, get_logger

__all__ = ["Applied", "NewestLookup", "StatusApplier"]

log = get_logger(__name__)

QUERIES: Final = ApiResource.of(Query)

NewestLookup = Callable[[StatusUpdate], Awaitable[StatusUpdate | None]]
"""Finds the newest update published for the update's query (the last on its subject)."""


@dataclass(frozen=True)
class Applied:
    """What happened to one update: written, or skipped and why."""

    written: bool
    reason: str = ""
    previous_phase: str | None = None


class StatusApplier:
    """Writes updates to Query status; ``handle`` is the bus worker's handler."""

    def __init__(
        self,
        client: KubeClient,
        *,
        events: EventRecorder | None = None,
        newest: NewestLookup | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._writer = StatusWriter(client, retry=retry)
        self._events = events
        self._newest = newest
        self.api_reachable = True
        """False while the last API call failed for lack of an answer (readiness)."""

    async def handle(self, update: StatusUpdate, context: MessageContext) -> None:
        with bound_context(
            query_id=update.query_id,
            query=update.name,
            namespace=update.namespace,
            phase=update.phase,
            attempt=update.attempt,
            seq=update.seq,
        ):
            try:
                result = await self.apply(update)
            except TransientKubeError as exc:
                delay = exc.retry_after if isinstance(exc, TooManyRequestsError) else None
                raise TransientError(
                    f"Query status write failed: {exc.message}", delay=delay
                ) from exc
            except PermanentKubeError as exc:
                raise PermanentError(
                    f"cannot write the status of Query {update.namespace}/{update.name}: "
                    f"{exc.message}"
                ) from exc
            if result.written:
                log.info("query status written", previous_phase=result.previous_phase)
            else:
                log.info("status update skipped", why=result.reason)

    async def apply(self, update: StatusUpdate) -> Applied:
        if not update.name or not update.namespace:
            return Applied(False, "the update names no Query (no name or namespace)")
        if not update.has_resource:
            return Applied(False, "a query without a Query resource (broker mode)")
        newest = await self._newest(update) if self._newest is not None else None
        seen: dict[str, Any] = {}
        if update.approval is not None and not await self._open_task(update):
            self.api_reachable = True
            return Applied(False, "no such Query (deleted, or a query without a resource)")

        def guard(current: Mapping[str, Any]) -> str | None:
            metadata: Mapping[str, Any] = current.get("metadata") or {}
            if metadata.get("uid") != update.query_id:
                return (
                    f"the Query of this name has uid {metadata.get('uid')!r}, not the update's "
                    f"{update.query_id!r} (deleted and created again)"
                )
            before: Mapping[str, Any] = current.get("status") or {}
            seen["phase"] = before.get("phase")
            verdict = decide(update, before, newest=newest)
            return None if verdict.apply else verdict.reason

        try:
            result = await self._writer.write_object(
                QUERIES, update.namespace, update.name, update.status, guard=guard
            )
        except NotFoundError:
            self.api_reachable = True
            return Applied(False, "no such Query (deleted, or a query without a resource)")
        except TerminalPhaseError as exc:
            # Another writer (the controller's cancel, a racing replica) finished it first.
            self.api_reachable = True
            return Applied(False, exc.message, seen.get("phase"))
        except TransientKubeError as exc:
            self.api_reachable = exc.code is not None
            raise
        self.api_reachable = True
        previous = seen.get("phase")
        if result.skipped is not None:
            return Applied(False, result.skipped, previous)
        if not result.written:
            return Applied(False, "nothing would change", previous)
        applied = Applied(True, previous_phase=previous)
        await self._record(update, previous)
        return applied

    async def _open_task(self, update: StatusUpdate) -> bool:
        """Open the pause's A2ATask if the update's Query exists (same uid); ``False`` if not."""
        assert update.approval is not None
        try:
            current = await self._client.get_object(QUERIES, update.namespace, update.name)
        except NotFoundError:
            return False
        if (current.get("metadata") or {}).get("uid") != update.query_id:
            return True  # another query of that name: the write's guard says so and skips
        await open_approval_task(
            self._client,
            namespace=update.namespace,
            query_name=update.name,
            query_uid=update.query_id,
            approval=update.approval,
            conversation_id=update.status.conversation_id,
            writer=self._writer,
        )
        return True

    async def _record(self, update: StatusUpdate, previous_phase: str | None) -> None:
        if self._events is None:
            return
        event = transition(update, previous_phase)
        reference = ObjectReference(
            api_version=QUERIES.api_version,
            kind=QUERIES.kind,
            namespace=update.namespace,
            name=update.name,
            uid=update.query_id,
        )
        await self._events.record(reference, event.reason, event.note, type=event.type)
