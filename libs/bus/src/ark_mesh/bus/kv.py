"""The KV bucket handle and the errors of its operations, named through the bus.

Services keep state in the KV buckets the topology provisions (the broker's ``ark-queries`` read
model) and read streams through the bus; they name these types from here, so nats-py stays the
bus's dependency alone and a service never imports ``nats`` itself (an import-linter contract).
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import InvalidKeyError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = [
    "BucketIndex",
    "InvalidKeyError",
    "KeyNotFoundError",
    "KeyValue",
    "KeyWatcher",
    "KeyWrongLastSequenceError",
    "NatsError",
    "NatsTimeoutError",
]

KeyWatcher = KeyValue.KeyWatcher
"""What :meth:`KeyValue.watch` returns: ``updates()`` yields entries, ``None`` once caught up."""


class BucketIndex:
    """An in-memory view of a whole KV bucket, kept current by one watch.

    Why one skeleton: every replica that answers listings from a bucket (the broker's in-flight
    and query index, its sessions index) needs the same loop — watch ``>``, apply each put or
    delete, report "synced" once the initial values are in — and the same care: a quiet watch
    times out and goes on, the watcher is stopped with the task. Subclasses say what a put and a
    delete mean with :meth:`on_put` / :meth:`on_delete`; :meth:`start` returns once synced.
    """

    def __init__(self, kv: KeyValue, *, name: str) -> None:
        self.kv = kv
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    @property
    def synced(self) -> bool:
        return self._synced.is_set() and self._task is not None and not self._task.done()

    def on_put(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    def on_delete(self, key: str) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        watcher = await self.kv.watch(">")
        self._task = asyncio.create_task(self._follow(watcher), name=self._name)
        await self._synced.wait()

    async def _follow(self, watcher: KeyWatcher) -> None:
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=60.0)  # type: ignore[no-untyped-call]
                except NatsTimeoutError:
                    continue
                if entry is None:  # caught up with the values present at the start
                    self._synced.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self.on_delete(entry.key)
                else:
                    self.on_put(entry.key, entry.value)
                if entry.delta == 0:
                    self._synced.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
