"""Writing an SSE answer: open it, pump a stream's entries into it, close what was read.

Every streaming route (a query's chunks, Ark's ``/stream/{name}`` and watches, chat completion
streams, the Responses API) writes the same way, so it is written once here: the answer opens
with ``: connected``; one read of the entries is kept pending across heartbeat comments (never
restarted, so nothing is skipped); the read is cancelled and the entries closed however the
pump ends. The framing itself (pure functions) is :mod:`.sse`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

from aiohttp import web

from ark_mesh.broker.sse import DONE, SSE_HEADERS, comment, event
from ark_mesh.bus import ReadAhead, StreamEntry

__all__ = ["Ending", "close_entries", "end_stream", "open_sse", "passed", "pump"]

M = TypeVar("M")

Ending = Literal["end", "timeout", "cut"]
"""How a pump ended: the entries ended, none came before ``first_by``, or ``end_by`` passed."""


async def open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(comment("connected"))
    return response


async def end_stream(response: web.StreamResponse, *lines: bytes | None) -> web.StreamResponse:
    """End an answer: each ``data:`` line given (``None``: none), then ``[DONE]``, then EOF."""
    for line in lines:
        if line is not None:
            await response.write(event(line))
    await response.write(DONE)
    await response.write_eof()
    return response


async def close_entries(entries: AsyncIterator[Any]) -> None:
    """Close a read (its consumer or its place in the shared feed); never raises."""
    aclose = getattr(entries, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def passed(now: float, first_by: float | None, end_by: float | None) -> Ending | None:
    if first_by is not None and now >= first_by:
        return "timeout"
    if end_by is not None and now >= end_by:
        return "cut"
    return None


async def pump(
    response: web.StreamResponse,
    entries: AsyncIterator[StreamEntry[M]],
    render: Callable[[StreamEntry[M]], bytes | None],
    heartbeat: float,
    *,
    pending: asyncio.Future[StreamEntry[M]] | None = None,
    first_by: float | None = None,
    end_by: float | None = None,
) -> Ending:
    """Write every entry ``render`` keeps (``None``: skipped), a heartbeat comment whenever
    none came for ``heartbeat`` seconds, until ``entries`` ends (``"end"``), the loop time
    ``first_by`` passes before the first entry (``"timeout"``) or ``end_by`` passes (``"cut"``).

    ``pending`` is a read of ``entries`` a caller already started (to look at the first entry
    before answering). The entries are read through a :class:`~ark_mesh.bus.ReadAhead`: one
    task and one timer per answer, not per chunk."""
    loop = asyncio.get_running_loop()
    deadline = first_by
    quiet_since = loop.time()
    """The last entry or heartbeat."""

    def due() -> float:
        return min(
            limit for limit in (quiet_since + heartbeat, deadline, end_by) if limit is not None
        )

    ahead = ReadAhead(aiter(entries), due, first=pending)
    try:
        while True:
            ending = passed(loop.time(), deadline, end_by)
            if ending is not None:
                return ending
            try:
                entry = await ahead.next()
            except StopAsyncIteration:
                return "end"
            if entry is None:  # a deadline passed with nothing to write
                now = loop.time()
                ending = passed(now, deadline, end_by)
                if ending is not None:
                    return ending
                if now >= quiet_since + heartbeat:
                    await response.write(comment("heartbeat"))
                    quiet_since = now
                continue
            quiet_since, deadline = loop.time(), None
            rendered = render(entry)
            if rendered is not None:
                await response.write(rendered)
    finally:
        await ahead.aclose()
