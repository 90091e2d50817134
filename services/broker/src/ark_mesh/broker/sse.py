"""Server-sent events framing (pure functions, no I/O).

Format as Ark's broker writes it: ``id: <n>`` (the JetStream stream sequence, which makes
``Last-Event-ID`` resume exact), ``data: <json>``, a blank line; comments (``: heartbeat``)
keep proxies from closing an idle stream; ``data: [DONE]`` ends a query's stream.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DONE", "MAX_SEQUENCE", "SSE_HEADERS", "comment", "event", "parse_last_event_id"]

SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "Access-Control-Allow-Origin": "*",
    # nginx buffers responses unless told not to, which would hold tokens back.
    "X-Accel-Buffering": "no",
}

DONE = b"data: [DONE]\n\n"


def event(data: bytes, *, id: int | None = None) -> bytes:
    """One event; ``data`` must be a single line (compact JSON is)."""
    head = b"id: %d\n" % id if id is not None else b""
    return head + b"data: " + data + b"\n\n"


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


MAX_SEQUENCE = 2**63 - 1
"""The largest stream sequence a resume may name: JetStream sequences are unsigned 64-bit, and
nats-server refuses a start sequence past the signed range, so a larger number is the client's
mistake (a 400), not a consumer that never starts."""


def parse_last_event_id(
    value: str | None, *, name: str = "Last-Event-ID", allow_empty: bool = True
) -> int | None:
    """The sequence to resume after, or ``None`` (no value, or an empty one where
    ``allow_empty``: an EventSource that has seen no event sends none). Anything else that is
    not a sequence is an error, resuming from the start instead would silently replay
    everything; ``name`` is what the client sent it as (the header, or the ``after``
    parameter), for the message."""
    if value is None or (allow_empty and value == ""):
        return None
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} {value!r} is not a stream sequence (a whole number)")
    if len(value) > 19 or int(value) > MAX_SEQUENCE:
        raise ValueError(f"{name} {value!r} is larger than any stream sequence ({MAX_SEQUENCE})")
    return int(value)
