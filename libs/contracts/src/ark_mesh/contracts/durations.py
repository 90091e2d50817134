"""Go/Kubernetes duration strings (``metav1.Duration``), the format of ``spec.timeout`` and ``spec.ttl``.

Ark writes durations the way Go prints them (``5m0s``, ``720h0m0s``) and users write them the way
they think (``5m``, ``1ms``); both must parse, and what we write back must be what Go prints so
``kubectl get queries`` looks the same as with Ark.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ark_mesh.contracts.errors import DurationError

__all__ = ["format_duration", "parse_duration", "rfc3339"]

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration such as ``5m``, ``1h30m``, ``1.5s`` or ``-2m``; ``0`` is zero."""
    raw = text.strip()
    if not raw:
        raise DurationError("empty duration")
    sign = 1.0
    body = raw
    if body[0] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise DurationError(
                f"invalid duration {text!r}: expected a number and a unit at {body[pos:]!r}"
            )
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise DurationError(f"invalid duration {text!r}")
    return timedelta(seconds=sign * seconds)


def format_duration(value: timedelta) -> str:
    """Format like Go's ``Duration.String()``: ``1m30s``, ``720h0m0s``, ``1.5s``, ``250ms``."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 1:
        for unit, scale in (("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
            if total >= scale:
                return f"{sign}{_trim(total / scale)}{unit}"
        return f"{sign}0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{_trim(seconds)}s"
    if minutes:
        return f"{sign}{int(minutes)}m{_trim(seconds)}s"
    return f"{sign}{_trim(seconds)}s"


def _trim(number: float) -> str:
    text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def rfc3339(moment: datetime) -> str:
    """``2025-01-02T03:04:05.123456Z``: the UTC form Go's RFC3339Nano readers (Ark, kubectl) accept.

    Every timestamp we put into a status, a chunk or an event goes through here, so they all
    read the same and sort as text.
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
