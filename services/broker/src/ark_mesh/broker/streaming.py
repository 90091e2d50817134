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
from ark_mesh.bus import StreamEntry

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
    before answering)."""
    loop = asyncio.get_running_loop()
    iterator = aiter(entries)
    deadline = first_by
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            ending = passed(loop.time(), deadline, end_by)
            if ending is not None:
                return ending
            limits = [limit - loop.time() for limit in (deadline, end_by) if limit is not None]
            wait = min([heartbeat, *limits])
            done, _ = await asyncio.wait({pending}, timeout=max(wait, 0.0))
            if not done:
                ending = passed(loop.time(), deadline, end_by)
                if ending is not None:
                    return ending
                await response.write(comment("heartbeat"))
                continue
            try:
                entry = pending.result()
            except StopAsyncIteration:
                return "end"
            pending, deadline = None, None
            rendered = render(entry)
            if rendered is not None:
                await response.write(rendered)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        await close_entries(iterator)
