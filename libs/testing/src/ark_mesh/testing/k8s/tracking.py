"""Follow one object at the emulator and count what would make a controller reconcile it.

"No reconciliation loop" is a claim about the *server*: every stored change of an object is
a watch event, and every watch event wakes the controllers watching its kind. So the tracker
records each change the emulator stores for one object — its type, resourceVersion,
generation and which top-level parts changed — and answers the questions a test asks:

* ``reconcile_triggers`` — watch events a controller without predicates receives;
* ``generation_bumps`` — spec changes (what ``GenerationChangedPredicate`` lets through);
* ``status_writes`` / ``metadata_writes`` / ``spec_writes`` — by what changed.

Waiting is event-driven (:meth:`ObjectTracker.wait_for`, :meth:`ObjectTracker.settle`), never
sleep-and-hope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from ark_mesh.testing.k8s.emulator import KubeEmulator
from ark_mesh.testing.k8s.store import Change

__all__ = ["ObjectTracker", "ObservedChange"]


@dataclass(frozen=True, slots=True)
class ObservedChange:
    """One stored change of the tracked object."""

    type: str  # ADDED | MODIFIED | DELETED
    resource_version: str
    generation: int
    changed: frozenset[str]  # top-level parts that differ from before: spec, status, metadata…
    object: dict[str, Any]


def _changed_parts(change: Change) -> frozenset[str]:
    if change.old is None:
        return frozenset(k for k in change.obj if k not in ("apiVersion", "kind"))
    parts = set()
    for key in set(change.obj) | set(change.old):
        if key in ("apiVersion", "kind"):
            continue
        before, after = change.old.get(key), change.obj.get(key)
        if key == "metadata":
            before = {k: v for k, v in (before or {}).items() if k != "resourceVersion"}
            after = {k: v for k, v in (after or {}).items() if k != "resourceVersion"}
        if before != after:
            parts.add(key)
    return frozenset(parts)


class ObjectTracker:
    """Records the changes of ``resource``/``namespace``/``name`` from the moment it starts.

    Use as ``with ObjectTracker(kube, "queries", "default", "q1") as tracker: ...`` (or call
    :meth:`start`/:meth:`stop`). The object need not exist yet.
    """

    def __init__(
        self,
        emulator: KubeEmulator,
        resource: str,
        namespace: str,
        name: str,
        *,
        group: str | None = None,
    ) -> None:
        self._emulator = emulator
        self._key = emulator.object_key(resource, namespace, name, group)
        self.changes: list[ObservedChange] = []
        self._wakeup = asyncio.Event()

    def start(self) -> None:
        self._emulator.store.listeners.append(self._on_change)

    def stop(self) -> None:
        if self._on_change in self._emulator.store.listeners:
            self._emulator.store.listeners.remove(self._on_change)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _on_change(self, change: Change) -> None:
        if change.key != self._key:
            return
        self.changes.append(
            ObservedChange(
                type=change.type,
                resource_version=str(change.rv),
                generation=int(change.obj.get("metadata", {}).get("generation") or 0),
                changed=_changed_parts(change),
                object=change.obj,
            )
        )
        self._wakeup.set()

    # --- counts --------------------------------------------------------------------------

    @property
    def reconcile_triggers(self) -> int:
        return len(self.changes)

    @property
    def generation_bumps(self) -> int:
        bumps, last = 0, None
        for change in self.changes:
            if last is not None and change.generation > last:
                bumps += 1
            last = change.generation
        return bumps

    @property
    def status_writes(self) -> int:
        return sum(1 for c in self.changes if c.type == "MODIFIED" and c.changed == {"status"})

    @property
    def metadata_writes(self) -> int:
        return sum(
            1
            for c in self.changes
            if c.type == "MODIFIED" and "metadata" in c.changed and not (c.changed - {"metadata"})
        )

    @property
    def spec_writes(self) -> int:
        return sum(1 for c in self.changes if c.type == "MODIFIED" and "spec" in c.changed)

    # --- waiting -------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[list[ObservedChange]], bool]) -> None:
        """Until ``predicate(changes)`` holds (bound it with ``asyncio.timeout``)."""
        while not predicate(self.changes):
            self._wakeup.clear()
            await self._wakeup.wait()

    async def settle(self, *, quiet: float = 0.5) -> None:
        """Until no change arrived for ``quiet`` seconds.

        An object caught in a reconciliation loop never settles: bound the wait with
        ``asyncio.timeout`` and the loop shows up as a ``TimeoutError``.
        """
        while True:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), quiet)
            except TimeoutError:
                return
