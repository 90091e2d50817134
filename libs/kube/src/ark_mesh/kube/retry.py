"""Exponential backoff with full jitter, and a retry loop for transient API errors.

Jitter matters here: after an API server restart or a 429 storm, every replica of every
service retries at once; randomising the delay spreads them out instead of synchronising
them into the next storm.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ark_mesh.kube.errors import TooManyRequestsError, TransientKubeError

__all__ = ["Backoff", "RetryPolicy", "retry_transient"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; delays grow from ``initial`` by ``factor`` up to ``maximum``."""

    attempts: int = 8
    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")


class Backoff:
    """Successive delays of one retry sequence; :meth:`reset` after a success."""

    def __init__(
        self, policy: RetryPolicy | None = None, *, rng: random.Random | None = None
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self, floor: float = 0.0) -> float:
        """The next delay: uniform in [0, cap] ("full jitter"), never below ``floor``."""
        cap = min(self.policy.maximum, self.policy.initial * self.policy.factor**self._attempt)
        self._attempt += 1
        return max(floor, self._rng.uniform(0, cap))

    async def sleep(self, floor: float = 0.0) -> None:
        await asyncio.sleep(self.next_delay(floor))


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None = None,
    *,
    on_retry: Callable[[TransientKubeError, int], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, retrying only :class:`TransientKubeError`.

    A 429's ``Retry-After`` is honoured as the minimum delay. The last error propagates once
    the attempts are used up; permanent errors propagate at once.
    """
    backoff = Backoff(policy)
    attempts = backoff.policy.attempts
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except TransientKubeError as exc:
            if attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            floor = exc.retry_after if isinstance(exc, TooManyRequestsError) else 0.0
            await backoff.sleep(floor)
    raise AssertionError("unreachable: the loop returns or raises")
