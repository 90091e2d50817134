"""In which order a reader hands out one query's chunks: by ``seq``, each once.

Part of the contract of ``ark.<tenant>.query.<id>.chunk``: the broker applies it to every stream
it serves, and a custom consumer of the subject should apply it too.

Why stream order is not enough. A reconciler publishes a query's chunks without waiting for
each acknowledgement (a bounded window), and re-sends one whose acknowledgement did not come.
When the stream's leader dies, chunks sent after the lost one can be stored by the next leader
*before* the re-sent one: the stream holds ``… 3, 6, 7, 4, 5, 8 …``. A replica cut off from the
cluster long enough for its work to be handed over may also store a number the new attempt
stores too. Two facts make order recoverable:

* ``seq`` is dense per query (1, 2, 3 … across attempts: a new attempt continues after the
  largest number stored), so a reader always knows which number comes next;
* the final chunk is published only after every chunk before it is stored (the publisher
  settles the subject first), so when the final chunk arrives nothing it waits for is missing.

The rule: hand out the next expected ``seq`` at once and everything held that follows it; hold
a later one; drop a number already handed out (a duplicate). The final chunk releases everything
held, in ``seq`` order, then itself — a number still missing then was never stored. A reader
that has held chunks for long (longer than the publisher retries, so the missing one cannot
come any more) or holds too many releases them the same way (:meth:`ChunkSequencer.skip_gap`).
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["DEFAULT_HOLD", "ChunkSequencer"]

T = TypeVar("T")

DEFAULT_HOLD = 4096
"""How many chunks a reader holds behind a missing one before it gives up waiting for it."""


class ChunkSequencer(Generic[T]):
    """The module's rule for one query's chunks, as a state machine without I/O or clocks.

    ``after`` is the last ``seq`` the reader already has (0: none; a resumed stream passes the
    last one it delivered). Items are whatever the caller carries (a stream entry); only their
    ``seq`` and whether they are final are given alongside.
    """

    __slots__ = ("_held", "expected", "hold", "skipped")

    def __init__(self, after: int = 0, *, hold: int = DEFAULT_HOLD) -> None:
        self.expected = after + 1
        """The ``seq`` handed out next."""
        self.hold = hold
        self.skipped = 0
        """How many numbers were given up as missing (for the caller's log and metrics)."""
        self._held: dict[int, T] = {}

    @property
    def holding(self) -> int:
        """How many chunks wait for a missing one."""
        return len(self._held)

    def push(self, seq: int, item: T, *, final: bool = False) -> list[T]:
        """What to hand out, in order, now that ``item`` (numbered ``seq``) has arrived."""
        if final:
            released = self._release_all()
            if seq > self.expected:
                self.skipped += seq - self.expected
            self.expected = max(self.expected, seq + 1)
            return [*released, item]
        if seq < self.expected or seq in self._held:
            return []  # handed out (or held) already: a duplicate
        if seq > self.expected:
            self._held[seq] = item
            return self.skip_gap() if len(self._held) > self.hold else []
        self.expected = seq + 1
        if not self._held:
            return [item]
        released = [item]
        while (following := self._held.pop(self.expected, None)) is not None:
            released.append(following)
            self.expected += 1
        return released

    def skip_gap(self) -> list[T]:
        """Give up on the missing numbers: everything held, in ``seq`` order."""
        return self._release_all()

    def _release_all(self) -> list[T]:
        if not self._held:
            return []
        numbers = sorted(self._held)
        self.skipped += numbers[-1] - self.expected + 1 - len(numbers)
        self.expected = numbers[-1] + 1
        held, self._held = self._held, {}
        return [held[n] for n in numbers]
