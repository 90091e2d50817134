"""ReadAhead: every item once and in order, ``None`` when a deadline passes with nothing to
hand out, the source's end and errors where the caller reads, and a bounded read-ahead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ark_mesh.bus import ReadAhead


class Source:
    """An async iterator fed by the test; records how far it was read and whether it was
    closed (the finally of a generator)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int | BaseException | None] = asyncio.Queue()
        self.taken = 0
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.taken += 1
                yield item
        finally:
            self.closed = True


def never() -> float | None:
    return None


async def test_items_arrive_once_in_order_then_the_end_for_good() -> None:
    source = Source()
    for item in (1, 2, 3, None):
        source.queue.put_nowait(item)
    ahead = ReadAhead(source.items(), never)
    assert [await ahead.next(), await ahead.next(), await ahead.next()] == [1, 2, 3]
    for _ in range(2):
        with pytest.raises(StopAsyncIteration):
            await ahead.next()
    await ahead.aclose()
    assert source.closed


async def test_a_passed_deadline_answers_none_only_while_nothing_waits() -> None:
    source = Source()
    loop = asyncio.get_running_loop()
    ahead = ReadAhead(source.items(), loop.time)  # always due
    assert await ahead.next() is None
    source.queue.put_nowait(7)
    await asyncio.sleep(0.05)  # let the read task take it
    assert await ahead.next() == 7  # waiting: handed out although the deadline passed
    assert await ahead.next() is None
    await ahead.aclose()


async def test_a_later_deadline_is_reached_after_entries_moved_it() -> None:
    source = Source()
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    ahead = ReadAhead(source.items(), lambda: quiet_since + 0.05)
    source.queue.put_nowait(1)
    assert await ahead.next() == 1
    quiet_since = loop.time()  # the caller's clock moves the deadline later
    assert await ahead.next() is None
    assert loop.time() >= quiet_since + 0.05
    await ahead.aclose()


async def test_the_sources_error_is_raised_where_the_caller_reads() -> None:
    source = Source()
    source.queue.put_nowait(1)
    source.queue.put_nowait(RuntimeError("feed lost"))
    ahead = ReadAhead(source.items(), never)
    assert await ahead.next() == 1
    with pytest.raises(RuntimeError, match="feed lost"):
        await ahead.next()
    await ahead.aclose()


async def test_a_started_read_comes_first_and_an_empty_one_ends_the_read() -> None:
    source = Source()
    iterator = source.items()
    source.queue.put_nowait(1)
    source.queue.put_nowait(2)
    first = asyncio.ensure_future(anext(iterator))
    ahead = ReadAhead(iterator, never, first=first)
    assert [await ahead.next(), await ahead.next()] == [1, 2]
    await ahead.aclose()

    empty = Source()
    empty.queue.put_nowait(None)
    iterator = empty.items()
    ahead = ReadAhead(iterator, never, first=asyncio.ensure_future(anext(iterator)))
    with pytest.raises(StopAsyncIteration):
        await ahead.next()
    await ahead.aclose()


async def test_it_reads_at_most_two_ahead_and_closing_stops_a_blocked_read() -> None:
    """A slow consumer backs up into the source (where a lagging follower is cut off)."""
    source = Source()
    for item in range(10):
        source.queue.put_nowait(item)
    ahead = ReadAhead(source.items(), never)
    await asyncio.sleep(0.05)
    assert source.taken == 2  # one in the queue, one in the read task's hand
    assert await ahead.next() == 0
    await ahead.aclose()
    assert source.closed
    assert source.taken <= 3
