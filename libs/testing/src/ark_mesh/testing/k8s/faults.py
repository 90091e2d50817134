"""Fault injection: make the next matching requests fail, slow down, or lose their watch.

Rules are consumed in the order they were added; a request takes the first rule that matches
its Kubernetes verb and path and still has uses left. The same rule shape travels as JSON to
the control endpoint, so a test can drive an emulator running in another process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ark_mesh.testing.k8s.errors import ApiError

__all__ = ["FaultInjector", "FaultRule"]

_FAILURES = {409, 429, 500, 503, 504}


@dataclass(slots=True)
class FaultRule:
    """What to do to the next ``times`` requests matching ``verb`` and ``path``.

    ``verb`` is a regular expression matched fully against the Kubernetes verb (``get``,
    ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
    ``deletecollection``); ``path`` is searched in the URL path (``/status$`` picks status
    writes). ``status`` fails the request (409, 429 with ``Retry-After: retry_after``, 500,
    503, 504); ``latency`` delays it first; ``drop_watch_after`` lets a watch deliver that
    many events and then cuts the connection without a clean end.
    """

    status: int | None = None
    times: int = 1
    verb: str | None = None
    path: str | None = None
    latency: float = 0.0
    retry_after: int = 1
    drop_watch_after: int | None = None
    hits: int = field(default=0)

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in _FAILURES:
            raise ValueError(f"status must be one of {sorted(_FAILURES)}, not {self.status}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.status is None and not self.latency and self.drop_watch_after is None:
            raise ValueError("a fault needs a status, a latency or drop_watch_after")
        for pattern in (self.verb, self.path):
            if pattern is not None:
                re.compile(pattern)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        known = {f for f in cls.__dataclass_fields__ if f != "hits"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**dict(data))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, verb: str, path: str) -> bool:
        if self.verb is not None and not re.fullmatch(self.verb, verb):
            return False
        return self.path is None or re.search(self.path, path) is not None

    def error(self, verb: str, path: str) -> ApiError | None:
        match self.status:
            case None:
                return None
            case 409:
                return ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {path}: the object has been modified; "
                    "please apply your changes to the latest version and try again "
                    "(injected fault)",
                )
            case 429:
                return ApiError.too_many_requests(self.retry_after)
            case 503:
                return ApiError(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request (injected fault)",
                )
            case 504:
                return ApiError(
                    504,
                    "Timeout",
                    "the server was unable to return a response in "
                    "the time allotted (injected fault)",
                )
            case _:
                return ApiError.internal(f"injected fault on {verb} {path}")


class FaultInjector:
    """The pending rules of one emulator."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._used = asyncio.Event()

    def inject(self, rule: FaultRule) -> FaultRule:
        self._rules.append(rule)
        return rule

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        verb: str | None = None,
        path: str | None = None,
        retry_after: int = 1,
    ) -> FaultRule:
        """Shorthand: the next ``times`` matching requests answer ``status``."""
        return self.inject(
            FaultRule(status=status, times=times, verb=verb, path=path, retry_after=retry_after)
        )

    def delay(
        self, seconds: float, *, times: int = 1, verb: str | None = None, path: str | None = None
    ) -> FaultRule:
        return self.inject(FaultRule(latency=seconds, times=times, verb=verb, path=path))

    def drop_watch(
        self, after_events: int, *, times: int = 1, path: str | None = None
    ) -> FaultRule:
        return self.inject(
            FaultRule(drop_watch_after=after_events, times=times, verb="watch", path=path)
        )

    def clear(self) -> None:
        self._rules.clear()

    @property
    def pending(self) -> list[FaultRule]:
        return list(self._rules)

    def take(self, verb: str, path: str) -> FaultRule | None:
        """The rule this request triggers (one use of it is consumed), if any."""
        for rule in self._rules:
            if rule.matches(verb, path):
                rule.hits += 1
                if rule.hits >= rule.times:
                    self._rules.remove(rule)
                self._used.set()
                return rule
        return None

    async def wait_used(self, rule: FaultRule, times: int = 1) -> None:
        """Until ``rule`` has been applied to ``times`` requests (they reached the server)."""
        while rule.hits < times:
            self._used.clear()
            await self._used.wait()
