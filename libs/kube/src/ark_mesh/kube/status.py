"""StatusWriter: the only way ark-mesh writes a resource's status.

Rules, each because of an invariant of the mesh:

* **Only the status subresource**, as a JSON merge patch. A write to ``/status`` cannot
  change spec or metadata, so it can never bump ``generation`` and wake the controller into
  a reconciliation loop.
* **Nothing when nothing changes.** The patch is applied to the current status locally
  first; if the result is identical, no request is sent (no resourceVersion, no watch event).
* **Terminal phases are final.** A status whose ``phase`` is ``done``, ``error`` or
  ``canceled`` never changes again, neither to another phase nor to another outcome in the
  same phase (a late duplicate result must not replace the first):
  :class:`~ark_mesh.kube.errors.TerminalPhaseError`.
  The check and the write are bound together by the read's ``resourceVersion`` (a
  precondition inside the patch), so a concurrent writer that finished the object in between
  makes the write conflict, re-read, and refuse — instead of overwriting the outcome.
* **Transient failures are retried** (409 from that precondition, 429 honouring
  ``Retry-After``, 5xx, cut connections) with jittered exponential backoff.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from ark_mesh.contracts import TERMINAL_PHASES, Resource
from ark_mesh.kube.client import ApiResource, KubeClient
from ark_mesh.kube.errors import TerminalPhaseError, TransientKubeError, UndecodableError
from ark_mesh.kube.retry import RetryPolicy, retry_transient
from ark_mesh.telemetry import get_logger

__all__ = ["StatusGuard", "StatusWrite", "StatusWriter", "merge_patch"]

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=Resource)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``None`` deletes a key), on a copy of ``target``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


StatusGuard = Callable[[Mapping[str, Any]], str | None]
"""Checks the object as read inside the write loop; a returned reason skips the write.

The check runs against the very read whose ``resourceVersion`` the patch is conditioned on, so
a caller's own rule (status-sync's update order, the uid it expects) cannot be overtaken by a
concurrent writer: if the object moves, the patch conflicts and the guard runs again.
"""


@dataclass(frozen=True, slots=True)
class StatusWrite(Generic[T]):
    """Outcome of one :meth:`StatusWriter.write`: the object afterwards, and whether we wrote.

    ``skipped`` is the guard's reason when a guard declined the write.
    """

    object: T
    written: bool
    attempts: int
    skipped: str | None = None


class StatusWriter:
    """See the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        *,
        retry: RetryPolicy | None = None,
        terminal_phases: frozenset[str] = TERMINAL_PHASES,
    ) -> None:
        self._client = client
        self._retry = retry or RetryPolicy()
        self._terminal = terminal_phases

    async def write(
        self,
        kind: type[R],
        namespace: str,
        name: str,
        status: Mapping[str, Any] | msgspec.Struct,
        *,
        guard: StatusGuard | None = None,
    ) -> StatusWrite[R]:
        """Merge ``status`` (wire field names, or a Struct such as ``QueryStatus``) into it."""
        result = await self.write_object(ApiResource.of(kind), namespace, name, status, guard=guard)
        try:
            decoded = msgspec.convert(result.object, kind)
        except msgspec.ValidationError as exc:
            raise UndecodableError(f"{kind.KIND} {namespace}/{name}: {exc}") from exc
        return StatusWrite(decoded, result.written, result.attempts, result.skipped)

    async def write_object(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        status: Mapping[str, Any] | msgspec.Struct,
        *,
        guard: StatusGuard | None = None,
    ) -> StatusWrite[dict[str, Any]]:
        """As :meth:`write`, for any resource with a status subresource; returns the raw object."""
        patch = msgspec.to_builtins(status) if isinstance(status, msgspec.Struct) else dict(status)
        if not isinstance(patch, dict):
            raise TypeError("a status must encode to a JSON object")
        attempts = 0

        async def attempt() -> StatusWrite[dict[str, Any]]:
            nonlocal attempts
            attempts += 1
            current = await self._client.get_object(resource, namespace, name)
            if guard is not None:
                reason = guard(current)
                if reason is not None:
                    return StatusWrite(current, False, attempts, reason)
            before = current.get("status") or {}
            after = merge_patch(before, patch)
            if after == before:
                return StatusWrite(current, False, attempts)
            self._guard_terminal(resource, namespace, name, before, after)
            body = {
                # a precondition, not a change: the server refuses the patch with 409 if the
                # object moved since we read it (and checked the terminal guard against it)
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": patch,
            }
            updated = await self._client.patch_object(
                resource, namespace, name, body, subresource="status"
            )
            return StatusWrite(updated, True, attempts)

        def on_retry(exc: TransientKubeError, attempt_number: int) -> None:
            log.info(
                "status write retried",
                resource=resource.plural,
                namespace=namespace,
                name=name,
                attempt=attempt_number,
                code=exc.code,
                error=exc.message,
            )

        return await retry_transient(attempt, self._retry, on_retry=on_retry)

    def _guard_terminal(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> None:
        phase_before, phase_after = before.get("phase"), after.get("phase")
        if phase_before in self._terminal and after != before:
            change = (
                f"move it to {phase_after!r}"
                if phase_after != phase_before
                else "rewrite its outcome (exactly one terminal result)"
            )
            raise TerminalPhaseError(
                f"{resource.kind} {namespace}/{name} is {phase_before!r}, a terminal phase; "
                f"refusing to {change}"
            )
