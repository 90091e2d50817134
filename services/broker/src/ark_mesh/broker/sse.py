"""Server-sent events framing (pure functions, no I/O).

Format as Ark's broker writes it: ``id: <n>`` (the JetStream stream sequence, which makes
``Last-Event-ID`` resume exact), ``data: <json>``, a blank line; comments (``: heartbeat``)
keep proxies from closing an idle stream; ``data: [DONE]`` ends a query's stream.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DONE", "SSE_HEADERS", "comment", "event", "parse_last_event_id"]

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


def parse_last_event_id(value: str | None) -> int | None:
    """The sequence to resume after, or ``None``; a value that is not a sequence is an error
    (resuming from the start instead would silently replay everything)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isdigit():
        raise ValueError(f"Last-Event-ID {value!r} is not a stream sequence (a whole number)")
    return int(text)
