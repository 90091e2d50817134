"""What ``ark-mesh`` prints: narration lines, live tokens, and a query's ending."""

from __future__ import annotations

import json
import sys
from typing import Any

from .errors import Exit

__all__ = ["Ending", "ending", "say", "token"]

TIMEOUT_REASONS = frozenset({"TimedOutInQueue", "TimedOutInExecution"})


class Ending:
    """How a followed query ended: its phase and status (Ark's JSON shape), or no ending seen."""

    def __init__(self, status: dict[str, Any] | None, seconds: float, *, streamed: bool) -> None:
        self.status = status or {}
        self.seconds = seconds
        self.streamed = streamed

    @property
    def phase(self) -> str | None:
        phase = self.status.get("phase")
        return str(phase) if phase is not None else None

    @property
    def reasons(self) -> list[str]:
        return [
            str(c.get("reason")) for c in self.status.get("conditions") or [] if c.get("reason")
        ]

    @property
    def exit_code(self) -> Exit:
        if self.phase == "done":
            return Exit.OK
        if self.phase == "canceled":
            return Exit.CANCELED
        if self.phase == "error":
            return Exit.TIMED_OUT if TIMEOUT_REASONS & set(self.reasons) else Exit.QUERY_ERROR
        return Exit.TIMED_OUT  # still running when we stopped waiting


def say(text: str = "") -> None:
    print(text, flush=True)


def token(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def ending(end: Ending) -> None:
    """Phase, token usage and duration; the answer too when no token was streamed."""
    status = end.status
    response = status.get("response") or {}
    if not end.streamed and response.get("content"):
        say(str(response["content"]))
    say()
    say(f"phase: {end.phase or 'not finished (stopped waiting)'}")
    usage = status.get("tokenUsage")
    if usage:
        say(
            f"tokens: prompt {usage.get('promptTokens', 0)}, "
            f"completion {usage.get('completionTokens', 0)}, total {usage.get('totalTokens', 0)}"
        )
    duration = status.get("duration")
    say(f"duration: {duration or '-'} (query), {end.seconds:.1f}s (here)")
    if end.phase not in (None, "done"):
        message = status.get("error") or next(
            (c.get("message") for c in status.get("conditions") or [] if c.get("message")), None
        )
        say(f"reason: {', '.join(end.reasons) or '-'}" + (f": {message}" if message else ""))


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)
