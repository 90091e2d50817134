"""A read that waits with deadlines for less than a task and a timer per item.

Readers that must act when nothing arrives for a while — the broker's SSE answers (a heartbeat
comment, a first-chunk timeout), a query's chunks in ``seq`` order (a missing number given up,
a silent stream's end) — used to wrap every read of their entries in a task and wait for it with
a timeout, keeping it pending across the timeout so nothing is skipped. Per chunk per client that
was a task, a timer and their callbacks; most of what the broker's chunk path cost beside the
socket write (issue 14).

:class:`ReadAhead` reads the source in **one** task into a one-place queue (so it reads at most
one entry ahead, and a slow consumer still backs up into the source, where a lagging follower of
the shared feed is cut off as before) and keeps **one** timer for the caller's earliest deadline,
moved only when it fires: while entries come, the deadline moves later and the timer, firing
early, re-arms itself once per deadline period. When a deadline passes with nothing waiting, the
read answers ``None``; the caller looks at its clock and acts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar, cast

__all__ = ["ReadAhead"]

T = TypeVar("T")

_TICK = object()
"""Posted by the timer when a deadline passed and nothing is waiting."""


class _Ended:
    """Posted by the read task when the source ended (``error``: how, ``None``: normally)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Items of ``source`` (after ``first``, a read the caller already started), one task
    reading them, and ``due()`` — the caller's earliest deadline in loop time, ``None`` for
    none, asked again whenever the timer fires — bounding each wait. Close with
    :meth:`aclose` (cancels the read, closes the source)."""

    def __init__(
        self,
        source: AsyncIterator[T],
        due: Callable[[], float | None],
        *,
        first: Awaitable[T] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._source = source
        self._due = due
        self._inbox: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
        self._timer: asyncio.TimerHandle | None = None
        self._task = asyncio.ensure_future(self._read(first))

    async def _read(self, first: Awaitable[T] | None) -> None:
        try:
            if first is not None:
                await self._inbox.put(await first)
            async for item in self._source:
                await self._inbox.put(item)
            await self._inbox.put(_Ended(None))
        except asyncio.CancelledError:
            raise
        except StopAsyncIteration:  # ``first`` found the source empty
            await self._inbox.put(_Ended(None))
        except BaseException as exc:  # raised by next(), where the caller reads
            await self._inbox.put(_Ended(exc))

    def _arm(self) -> None:
        when = self._due()
        if when is None:
            return
        timer = self._timer
        if timer is not None and timer.when() <= when:
            return  # fires first, and re-arms if the deadline moved
        if timer is not None:
            timer.cancel()
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        when = self._due()
        if when is None:
            return
        if self._loop.time() < when:
            self._timer = self._loop.call_at(when, self._fire)
        elif self._inbox.empty():
            self._inbox.put_nowait(_TICK)
        # else an entry waits: no deadline applies while there is something to hand out

    async def next(self) -> T | None:
        """The next item; ``None`` when the deadline passed with nothing waiting (it may have
        moved since: check the clock). Raises ``StopAsyncIteration`` after the last item, or
        the error the source raised."""
        self._arm()
        item = await self._inbox.get()
        if item is _TICK:
            return None
        if isinstance(item, _Ended):
            self._inbox.put_nowait(item)  # ended for good: every later call says so too
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return cast(T, item)

    async def aclose(self) -> None:
        """Stop reading (a read in progress is cancelled) and close the source; never raises."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait({self._task})
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
