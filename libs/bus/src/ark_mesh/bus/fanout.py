"""Many live readers of a stream, one JetStream consumer: a shared feed fanned out in memory.

An SSE client following a query used to hold its own ordered consumer for as long as it
listened: 2,000 clients were 2,000 consumers on the server, and 2,000 consumer deletions when
they hung up together. Here a process holds **one feed per stream** — an ordered consumer on
``ark.*.query.*.<kind>`` (every tenant's chunks, or events…), started at the stream's end the
first time someone follows — and hands each entry to the followers of its subject (a literal
subject, or a tenant's ``ark.<tenant>.query.*.<kind>``) through a bounded in-memory queue.
Bodies travel sealed (:mod:`.encryption`): each follower opens only what it reads, so a tenant
nobody follows costs no decryption.

A follower that starts from an earlier point (from the beginning, ``Last-Event-ID``) first
registers with the feed, so everything the feed delivers from then on is buffered for it, then
catches up: when the subject's last stored entry is older than its start, there is nothing to
catch up (the feed will bring everything); otherwise a short-lived ordered consumer reads the
subject from the start to what the stream held (``caught_up``). The buffer is then drained,
skipping what the catch-up already sent (by stream sequence), so the switch has no gap and no
duplicate: an entry stored before the registration is in the catch-up, one stored after it
reaches the buffer (the feed is ordered and gap-free).

A follower more than ``buffer`` entries behind is cut off with
:class:`~ark_mesh.bus.errors.ReaderLagError` (its client resumes from its last sequence); when
the feed itself fails (its consumer cannot be re-created, NATS stays away: see
:class:`~ark_mesh.bus.reader.StreamReader`) every follower gets the error and the next follower
starts a new feed. Subjects outside ``ark.<tenant>.query.<id>.<kind>`` are read directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import TypeVar

from ark_mesh.bus.errors import BusError, DecryptionError, ReaderLagError, ReaderUnavailableError
from ark_mesh.bus.reader import StreamEntry, StreamReader
from ark_mesh.contracts import DecodeError
from ark_mesh.contracts.subjects import ROOT
from ark_mesh.telemetry import get_logger

__all__ = ["DEFAULT_BUFFER", "Fanout", "feed_filter"]

_log = get_logger(__name__)

M = TypeVar("M")

DEFAULT_BUFFER = 10_000
"""Entries a follower may be behind the feed before it is cut off (a few long answers)."""


def feed_filter(subject: str) -> str | None:
    """The feed serving ``subject``: ``ark.*.query.*.<kind>`` for ``ark.<t>.query.<id|*>.<kind>``,
    else ``None`` (read directly)."""
    tokens = subject.split(".")
    if len(tokens) != 5 or tokens[0] != ROOT or tokens[2] != "query" or "*" in tokens[4]:
        return None
    if tokens[1] in ("*", ">") or tokens[4] == ">":
        return None
    return f"{ROOT}.*.query.*.{tokens[4]}"


def _raw(data: bytes) -> bytes:
    return data


class _Follower:
    """One reader's queue. ``pattern``: a tenant-wide subject (``*`` as the query id)."""

    __slots__ = ("dead", "limit", "pattern", "queue", "subject")

    def __init__(self, subject: str, limit: int) -> None:
        self.subject = subject
        self.pattern = subject.split(".") if "*" in subject else None
        self.limit = limit
        self.queue: asyncio.Queue[StreamEntry[bytes] | BaseException] = asyncio.Queue()
        self.dead = False

    def matches(self, tokens: list[str]) -> bool:
        assert self.pattern is not None
        return all(want in ("*", got) for want, got in zip(self.pattern, tokens, strict=True))

    def offer(self, entry: StreamEntry[bytes]) -> None:
        if self.dead:
            return
        if self.queue.qsize() >= self.limit:
            self.fail(
                ReaderLagError(
                    self.subject,
                    f"this reader fell more than {self.limit} entries behind the live feed",
                )
            )
            return
        self.queue.put_nowait(entry)

    def fail(self, error: BaseException) -> None:
        if not self.dead:
            self.dead = True
            self.queue.put_nowait(error)


class _Feed:
    """One ordered consumer on ``filter`` of ``stream``, dispatching by subject."""

    def __init__(self, reader: StreamReader, stream: str, filter: str) -> None:
        self.reader = reader
        self.stream = stream
        self.filter = filter
        self.exact: dict[str, set[_Follower]] = {}
        self.patterns: set[_Follower] = set()
        self.position = 0
        """The last stream sequence handed to the followers (or the stream's end at start)."""
        self.task: asyncio.Task[None] | None = None
        self.done = False

    async def start(self) -> None:
        info = await self.reader.bus.jsm.stream_info(self.stream)
        self.position = info.state.last_seq
        self.task = asyncio.create_task(self._run(self.position + 1), name=f"fanout-{self.stream}")

    async def _run(self, start: int) -> None:
        try:
            read = self.reader.read(self.filter, decoder=_raw, start_seq=start, sealed=True)
            async for entry in read:
                self.position = entry.seq
                self._dispatch(entry)
            error: BaseException = ReaderUnavailableError(
                self.filter, "the shared feed ended", last_seq=self.position
            )
        except asyncio.CancelledError:
            error = ReaderUnavailableError(self.filter, "the broker is stopping")
            self._fail_all(error)
            raise
        except BusError as exc:
            error = exc
        except Exception as exc:  # nats errors, and anything unexpected: followers must end
            error = ReaderUnavailableError(
                self.filter, f"the shared feed failed: {type(exc).__name__}: {exc}"
            )
        self.done = True
        _log.warning("shared feed ended", stream=self.stream, error=str(error))
        self._fail_all(error)

    def _dispatch(self, entry: StreamEntry[bytes]) -> None:
        for follower in self.exact.get(entry.subject, ()):
            follower.offer(entry)
        if self.patterns:
            tokens = entry.subject.split(".")
            for follower in self.patterns:
                if follower.matches(tokens):
                    follower.offer(entry)

    def _fail_all(self, error: BaseException) -> None:
        self.done = True
        for followers in self.exact.values():
            for follower in followers:
                follower.fail(error)
        for follower in self.patterns:
            follower.fail(error)

    def add(self, follower: _Follower) -> None:
        if follower.pattern is not None:
            self.patterns.add(follower)
        else:
            self.exact.setdefault(follower.subject, set()).add(follower)

    def remove(self, follower: _Follower) -> None:
        if follower.pattern is not None:
            self.patterns.discard(follower)
            return
        followers = self.exact.get(follower.subject)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self.exact[follower.subject]

    @property
    def followers(self) -> int:
        return len(self.patterns) + sum(len(group) for group in self.exact.values())

    async def stop(self) -> None:
        # nats-py's next_msg sits on asyncio.wait_for, which on Python 3.11 can swallow a
        # cancellation that races its own timeout: cancel until the task has ended.
        task = self.task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()


class Fanout:
    """Live followers of query subjects, one shared consumer per stream (module docstring)."""

    def __init__(self, reader: StreamReader, *, buffer: int = DEFAULT_BUFFER) -> None:
        self.reader = reader
        self.buffer = buffer
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._starting: dict[tuple[str, str], asyncio.Future[_Feed]] = {}
        self._closed = False

    @property
    def feeds(self) -> int:
        """How many shared consumers this process holds now."""
        return sum(1 for feed in self._feeds.values() if not feed.done)

    @property
    def followers(self) -> int:
        return sum(feed.followers for feed in self._feeds.values())

    async def _feed(self, stream: str, filter: str) -> _Feed:
        key = (stream, filter)
        feed = self._feeds.get(key)
        if feed is not None and not feed.done:
            return feed
        starting = self._starting.get(key)
        if starting is not None:
            return await asyncio.shield(starting)
        future: asyncio.Future[_Feed] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            feed = _Feed(self.reader, stream, filter)
            await feed.start()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone starter must not log "never retrieved"
            raise
        finally:
            del self._starting[key]
        self._feeds[key] = feed
        future.set_result(feed)
        return feed

    async def follow(
        self,
        subject: str,
        *,
        decoder: Callable[[bytes], M],
        start_seq: int | None = None,
        until: Callable[[StreamEntry[M]], bool] | None = None,
    ) -> AsyncGenerator[StreamEntry[M], None]:
        """Yield the entries of ``subject`` from ``start_seq`` (default: the first), live,
        until ``until(entry)`` (that entry is yielded) or the caller stops. Raises a
        :class:`~ark_mesh.bus.errors.ReadError` when the read cannot go on (never hangs on a
        lost feed). Undecodable entries are logged and skipped, as the reader does."""
        filter = feed_filter(subject)
        if filter is None or self._closed:
            async for entry in self.reader.read(
                subject, decoder=decoder, start_seq=start_seq, until=until
            ):
                yield entry
            return
        stream = await self.reader.stream_of(subject)
        cipher = self.reader.bus.cipher
        feed = await self._feed(stream, filter)
        follower = _Follower(subject, self.buffer)
        feed.add(follower)
        try:
            start = max(start_seq or 1, 1)
            delivered = start - 1
            if feed.position >= start and await self._stored_since(subject, follower, start):
                async for entry in self.reader.read(
                    subject, decoder=decoder, start_seq=start, caught_up=True
                ):
                    delivered = entry.seq
                    yield entry
                    if until is not None and until(entry):
                        return
            while True:
                item = await follower.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item.seq <= delivered:
                    continue
                delivered = item.seq
                try:
                    data = cipher.open(item.subject, item.data, item.headers)
                    message = decoder(data)
                except (DecodeError, DecryptionError) as error:
                    _log.warning(
                        "skipping unreadable stream entry",
                        stream=stream,
                        seq=item.seq,
                        reason=error.reason,
                    )
                    continue
                entry = StreamEntry(
                    seq=item.seq,
                    subject=item.subject,
                    data=data,
                    headers=item.headers,
                    message=message,
                    pending=follower.queue.qsize(),
                )
                yield entry
                if until is not None and until(entry):
                    return
        finally:
            feed.remove(follower)

    async def _stored_since(self, subject: str, follower: _Follower, start: int) -> bool:
        """Whether ``subject`` may hold entries at or after ``start`` stored before the
        follower registered (a catch-up is needed). A literal subject asks for its last entry
        (no consumer); a tenant-wide one always catches up."""
        if follower.pattern is not None:
            return True
        last = await self.reader.last(subject, decoder=_raw)
        return last is not None and last.seq >= start

    async def close(self) -> None:
        """Stop every feed; their followers end with
        :class:`~ark_mesh.bus.errors.ReaderUnavailableError`."""
        self._closed = True
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()
