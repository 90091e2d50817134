"""A bounded, namespace-fair admission gate for in-controller resolution.

Ark's stress tests (#2597) showed what an unbounded controller does under load: it runs out of
memory, then wedges. Ark's answer (#2698) is a global cap with a per-namespace fair share and a
``queued`` phase; this is the same idea without polling. When the cap is reached, callers wait;
each freed slot goes to the waiting namespace with the fewest queries in flight (max-min
fairness), oldest waiter first, so one busy tenant cannot starve the others and nobody waits
behind a tenant that already has more.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

__all__ = ["FairScheduler"]


@dataclass(order=True)
class _Waiter:
    ticket: int
    namespace: str = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class FairScheduler:
    """At most ``capacity`` slots in use; ``capacity <= 0`` means unbounded (Ark's default)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._waiting: defaultdict[str, deque[_Waiter]] = defaultdict(deque)
        self._tickets = itertools.count()

    @property
    def in_use(self) -> int:
        return sum(self._in_flight.values())

    def in_flight(self, namespace: str) -> int:
        return self._in_flight.get(namespace, 0)

    def waiting(self, namespace: str | None = None) -> int:
        if namespace is not None:
            return len(self._waiting.get(namespace, ()))
        return sum(len(queue) for queue in self._waiting.values())

    def try_acquire(self, namespace: str) -> bool:
        """Take a slot now if one is free and nobody is waiting ahead; never blocks."""
        if self.capacity > 0 and (self.in_use >= self.capacity or self.waiting()):
            return False
        self._in_flight[namespace] += 1
        return True

    async def acquire(self, namespace: str) -> None:
        """Wait for a slot (fairly); cancellation leaves the queue without leaking a slot."""
        if self.try_acquire(namespace):
            return
        waiter = _Waiter(next(self._tickets), namespace, asyncio.get_running_loop().create_future())
        self._waiting[namespace].append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(namespace)  # granted just as we were cancelled: hand it on
            else:
                self._discard(waiter)
            raise

    def release(self, namespace: str) -> None:
        """Give a slot back; it goes straight to the fairest waiter."""
        if self._in_flight.get(namespace, 0) <= 0:
            raise RuntimeError(f"release of namespace {namespace!r} without a slot held")
        self._in_flight[namespace] -= 1
        if not self._in_flight[namespace]:
            del self._in_flight[namespace]
        self._grant()

    @asynccontextmanager
    async def slot(self, namespace: str) -> AsyncIterator[None]:
        await self.acquire(namespace)
        try:
            yield
        finally:
            self.release(namespace)

    def _grant(self) -> None:
        while self.waiting() and (self.capacity <= 0 or self.in_use < self.capacity):
            candidates = [queue[0] for queue in self._waiting.values() if queue]
            chosen = min(candidates, key=lambda w: (self._in_flight.get(w.namespace, 0), w.ticket))
            self._waiting[chosen.namespace].popleft()
            if not self._waiting[chosen.namespace]:
                del self._waiting[chosen.namespace]
            self._in_flight[chosen.namespace] += 1
            chosen.future.set_result(None)

    def _discard(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.namespace)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[waiter.namespace]
