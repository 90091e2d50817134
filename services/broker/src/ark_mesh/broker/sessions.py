"""The sessions read model (Ark's broker ``/sessions``): folded from ``ARK_EVENTS`` into KV.

Ark's broker keeps, per session, a :class:`SessionEntry`: the session's queries (by query
**name**), their phases, who took part, the conversations and a status (``active``, ``idle``,
``error``). It folds every operation event (``applyEvent``) into it. Here the aggregate lives in
KV ``ark-sessions`` under ``<tenant>.<session key>`` (the tenant is in the key, so a lookup with
the caller's tenant never finds another tenant's session), sealed with the tenant's key when the
tenant has one.

Who applies the events: one durable consumer on ``ARK_EVENTS`` (``broker-sessions``) *shared*
by every broker replica, as the status consumer is. Each event is then applied once by one
replica (not once per replica), nothing is replayed when a replica starts, and the position
survives restarts. A consumer per replica (or an ordered consumer from the start of the
stream) would make every replica fold every event into the same keys — N times the writes for
the same result. Because replicas (and the slots of one replica) apply *different* events of
the same session at the same time, every write is a compare-and-set on the entry's revision,
re-read and re-folded when another writer won.

Idempotence and order, as Ark's Postgres backend does it: each query keeps the stream sequence
of the newest event that set its phase (``watermarks``). A redelivered event (at or below the
watermark) changes no phase; an event that arrives after a newer one (two replicas, or two
slots, took them out of order) only contributes what cannot go backwards: the fields that are
set once, the earliest ``createdAt`` and the latest ``lastActivity``. Every timestamp is the
event's own, never the clock of the replica applying it, so the aggregate is a function of the
events alone and replicas converge on the same bytes.

The fold rules are Ark's ``session-aggregate``: the phase from the reason
(``QueryExecutionComplete`` → ``done``, or ``error`` when it carries one; a reason containing
``Canceled`` → ``canceled``; containing ``Error`` → ``error``; anything else → ``running``);
``conversationId``/``agent``/``team``/``tool`` set once (``toolName`` counts as ``tool``);
``error`` wins over everything but a later ``done``; ``canceled`` does not override ``error``.
The session is ``active`` while a query runs, else ``error`` if the most recently active query
failed, else ``idle``; conversations and participants are recomputed from the queries.

Listings (``GET /sessions``) read :class:`SessionIndex`, one watch of the whole bucket per
replica (as :class:`~ark_mesh.broker.readmodel.InFlight` does for queries); one session is read
from KV directly, so ``GET /sessions/{id}`` answers the same on every replica at once.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal

import msgspec

from ark_mesh.broker.errors import UnavailableError
from ark_mesh.broker.readmodel import parse_instant
from ark_mesh.bus import (
    BucketIndex,
    DecryptionError,
    InvalidKeyError,
    KeyNotFoundError,
    KeyValue,
    KeyWrongLastSequenceError,
    MessageContext,
    NatsError,
    PayloadCipher,
)
from ark_mesh.contracts import QueryEvent, subjects
from ark_mesh.telemetry import get_logger

__all__ = [
    "ConversationSummary",
    "Participant",
    "QueryEntry",
    "SessionEntry",
    "SessionIndex",
    "SessionStore",
    "StoredSession",
    "fold",
    "session_key",
]

_log = get_logger(__name__)

Phase = Literal["pending", "running", "done", "error", "canceled", "unknown"]
SessionStatus = Literal["active", "idle", "error"]
ParticipantType = Literal["agent", "team", "tool"]

_COMPLETE = "QueryExecutionComplete"
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Participant(msgspec.Struct, kw_only=True):
    id: str
    name: str
    type: ParticipantType


class ConversationSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """One conversation of a session; ``messageCount`` counts its queries, as in Ark."""

    conversation_id: str
    name: str
    participants: list[str]
    message_count: int
    duration: str
    start_time: str
    participant_type: ParticipantType
    error_count: int


class QueryEntry(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One query of a session (keyed by the query's name)."""

    name: str
    target_type: str
    phase: Phase
    created_at: str
    last_activity: str
    namespace: str | None = None
    conversation_id: str | None = None
    agent: str | None = None
    team: str | None = None
    tool: str | None = None
    error: str | None = None
    completed_at: str | None = None


class SessionEntry(msgspec.Struct, kw_only=True, rename="camel"):
    """Ark's ``SessionEntry`` as ``GET /sessions/{id}`` answers it."""

    session_id: str
    name: str
    queries: dict[str, QueryEntry]
    status: SessionStatus
    error_count: int
    participants: list[Participant]
    conversations: list[ConversationSummary]
    created_at: str
    last_activity: str


class StoredSession(msgspec.Struct, kw_only=True, rename="camel"):
    """What KV holds: the entry, its tenant, and per query the stream sequence of the newest
    event that set its phase (the idempotence watermark)."""

    tenant: str
    entry: SessionEntry
    watermarks: dict[str, int] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StoredSession)


def session_key(tenant: str, session_id: str) -> str:
    """``<tenant>.<id>``; an id that is not a plain KV token is written ``=<base64url>`` (plain
    ids never start with ``=``, so the two forms cannot collide)."""
    subjects.validate_token(tenant, "tenant")
    if _PLAIN_KEY.match(session_id):
        return f"{tenant}.{session_id}"
    encoded = base64.urlsafe_b64encode(session_id.encode()).decode().rstrip("=")
    return f"{tenant}.={encoded}"


# --------------------------------------------------------------------------- the fold


def _phase_of(reason: str, error: str | None) -> Phase:
    if reason == _COMPLETE:
        return "error" if error else "done"
    if "Canceled" in reason:
        return "canceled"
    if "Error" in reason:
        return "error"
    return "running"


def _instant(text: str) -> datetime:
    return parse_instant(text) or datetime.min.replace(tzinfo=UTC)


def _earlier(a: str, b: str) -> str:
    return a if _instant(a) <= _instant(b) else b


def _later(a: str, b: str) -> str:
    return a if _instant(a) >= _instant(b) else b


def _duration(start: str, end: str | None) -> str:
    if not end:
        return "ongoing"
    seconds = int((_instant(end) - _instant(start)).total_seconds())
    minutes = seconds // 60
    return f"{minutes}m {seconds % 60}s" if minutes > 0 else f"{seconds}s"


def _participant_type(target_type: str) -> ParticipantType:
    return "team" if target_type == "team" else "tool" if target_type == "tool" else "agent"


def _merge_fields(query: QueryEntry, data: dict[str, str]) -> None:
    """The fields Ark sets once (the first non-empty value wins)."""
    if data.get("conversationId") and not query.conversation_id:
        query.conversation_id = data["conversationId"]
    if data.get("agent") and not query.agent:
        query.agent = data["agent"]
    if data.get("team") and not query.team:
        query.team = data["team"]
    tool = data.get("tool") or data.get("toolName")
    if tool and not query.tool:
        query.tool = tool
    if data.get("targetType") and query.target_type == "agent":
        query.target_type = data["targetType"]
    if data.get("queryNamespace") and not query.namespace:
        query.namespace = data["queryNamespace"]


def _advance(query: QueryEntry, phase: Phase, error: str | None, at: str) -> None:
    """Ark's transition of an existing query: error wins but a later done clears it; canceled
    does not override error; done does not override canceled; running changes nothing."""
    if phase == "error":
        query.phase, query.error, query.completed_at = "error", error, at
    elif phase == "canceled" and query.phase != "error":
        query.phase, query.completed_at = "canceled", at
    elif phase == "done" and query.phase != "canceled":
        query.phase, query.error, query.completed_at = "done", None, at


def _recompute(entry: SessionEntry) -> None:
    queries = list(entry.queries.values())
    if not queries:
        entry.status, entry.error_count = "idle", 0
        entry.participants, entry.conversations = [], []
        return
    entry.error_count = sum(1 for query in queries if query.phase == "error")
    if any(query.phase in ("running", "pending") for query in queries):
        entry.status = "active"
    else:
        latest = queries[0]
        for query in queries[1:]:
            if _instant(query.last_activity) > _instant(latest.last_activity):
                latest = query
        entry.status = "error" if latest.phase == "error" else "idle"
    grouped: dict[str, list[QueryEntry]] = {}
    for query in queries:
        if query.conversation_id:
            grouped.setdefault(query.conversation_id, []).append(query)
    conversations: list[ConversationSummary] = []
    for conversation_id, members in grouped.items():
        names = list(
            dict.fromkeys(name for name in (q.team or q.agent or q.tool for q in members) if name)
        )
        first = members[0]
        conversations.append(
            ConversationSummary(
                conversation_id=conversation_id,
                name=names[0] if names else conversation_id,
                participants=names,
                message_count=len(members),
                duration=_duration(first.created_at, members[-1].completed_at),
                start_time=first.created_at,
                participant_type=_participant_type(first.target_type),
                error_count=sum(1 for q in members if q.phase == "error"),
            )
        )
    entry.conversations = conversations
    seen: dict[str, Participant] = {}
    for conversation in conversations:
        if conversation.name not in seen:
            seen[conversation.name] = Participant(
                id=conversation.name, name=conversation.name, type=conversation.participant_type
            )
    entry.participants = list(seen.values())


def fold(
    stored: StoredSession | None, tenant: str, event: QueryEvent, seq: int
) -> StoredSession | None:
    """``stored`` with ``event`` (stream sequence ``seq``) applied; ``None`` when the event
    changes nothing (no ``sessionId``/``queryName``, or already applied)."""
    data = event.data
    session_id, query_name = data.get("sessionId"), data.get("queryName")
    if not session_id or not query_name:
        return None
    at = event.timestamp
    error = data.get("error") or None
    phase = _phase_of(event.reason, error)
    if stored is None:
        name = session_id[len("session-") :] if session_id.startswith("session-") else session_id
        stored = StoredSession(
            tenant=tenant,
            entry=SessionEntry(
                session_id=session_id,
                name=name,
                queries={},
                status="idle",
                error_count=0,
                participants=[],
                conversations=[],
                created_at=at,
                last_activity=at,
            ),
        )
    else:
        stored = msgspec.json.decode(_encoder.encode(stored), type=StoredSession)  # a copy
    entry = stored.entry
    watermark = stored.watermarks.get(query_name, 0)
    query = entry.queries.get(query_name)
    if query is not None and seq == watermark:
        return None  # redelivered
    before = _encoder.encode(entry)
    entry.created_at = _earlier(entry.created_at, at)
    entry.last_activity = _later(entry.last_activity, at)
    if query is None:
        query = QueryEntry(
            name=query_name,
            target_type=data.get("targetType") or "agent",
            phase=phase,
            error=error,
            created_at=at,
            completed_at=None if phase == "running" else at,
            last_activity=at,
        )
        _merge_fields(query, data)
        entry.queries[query_name] = query
        stored.watermarks[query_name] = seq
    else:
        _merge_fields(query, data)
        query.created_at = _earlier(query.created_at, at)
        query.last_activity = _later(query.last_activity, at)
        if seq > watermark:
            _advance(query, phase, error, at)
            stored.watermarks[query_name] = seq
    _recompute(entry)
    if _encoder.encode(entry) == before and stored.watermarks.get(query_name) == watermark:
        return None
    return stored


# --------------------------------------------------------------------------- KV


class SessionStore:
    """Reads and compare-and-set folds of the sessions in KV ``ark-sessions``."""

    def __init__(self, kv: KeyValue, cipher: PayloadCipher | None = None) -> None:
        self.kv = kv
        self._cipher = cipher

    @staticmethod
    def _subject(key: str) -> str:
        return f"$KV.{subjects.SESSIONS_BUCKET}.{key}"

    def encode(self, key: str, stored: StoredSession) -> bytes:
        body = _encoder.encode(stored)
        if self._cipher is None:
            return body
        return self._cipher.seal(self._subject(key), body, tenant=stored.tenant)

    def decode(self, key: str, data: bytes) -> StoredSession | None:
        """The stored session, or ``None`` (logged) when it cannot be opened or decoded."""
        try:
            if self._cipher is not None:
                data = self._cipher.open(self._subject(key), data, tenant=key.partition(".")[0])
            return _decoder.decode(data)
        except (DecryptionError, msgspec.DecodeError) as exc:
            _log.warning("unreadable session", key=key, error=str(exc))
            return None

    async def get(self, tenant: str, session_id: str) -> SessionEntry | None:
        try:
            key = session_key(tenant, session_id)
        except ValueError:
            return None
        try:
            with _unavailable("get"):
                entry = await self.kv.get(key)
        except (KeyNotFoundError, InvalidKeyError):
            return None
        stored = self.decode(key, entry.value) if entry.value else None
        return stored.entry if stored is not None and stored.tenant == tenant else None

    async def purge(self, keys: Iterable[str]) -> None:
        """Forget these sessions (their keys, as :meth:`SessionIndex.keys` lists them)."""
        for key in keys:
            with contextlib.suppress(KeyNotFoundError, InvalidKeyError), _unavailable("purge"):
                await self.kv.purge(key)

    async def remove_query(self, key: str, query_name: str) -> bool:
        """Drop query ``query_name`` from the session at ``key`` (Ark's
        ``DELETE /sessions/queries/{name}``, the finalizer's); a session left without queries
        is purged. ``False`` when the session did not hold it."""
        while True:
            try:
                with _unavailable("get"):
                    current = await self.kv.get(key)
            except (KeyNotFoundError, InvalidKeyError):
                return False
            stored = self.decode(key, current.value) if current.value else None
            if stored is None or query_name not in stored.entry.queries:
                return False
            if len(stored.entry.queries) == 1:
                await self.purge([key])
                return True
            del stored.entry.queries[query_name]
            stored.watermarks.pop(query_name, None)
            _recompute(stored.entry)  # lastActivity stays: a delete is not activity
            try:
                with _unavailable("write"):
                    await self.kv.update(key, self.encode(key, stored), last=current.revision)
            except KeyWrongLastSequenceError:
                continue
            return True

    async def apply_message(self, key: str, query_name: str, conversation_id: str, at: str) -> bool:
        """Ark's ``applyMessage``: messages of a known query were stored — the session's
        ``lastActivity`` moves (the query's does not: it elects the session's status) and the
        query joins ``conversation_id`` if it had none. ``False`` when nothing changed."""
        while True:
            try:
                with _unavailable("get"):
                    current = await self.kv.get(key)
            except (KeyNotFoundError, InvalidKeyError):
                return False
            stored = self.decode(key, current.value) if current.value else None
            query = stored.entry.queries.get(query_name) if stored is not None else None
            if stored is None or query is None:
                return False
            before = _encoder.encode(stored.entry)
            stored.entry.last_activity = _later(stored.entry.last_activity, at)
            if not query.conversation_id:
                query.conversation_id = conversation_id
                _recompute(stored.entry)
            if _encoder.encode(stored.entry) == before:
                return False
            try:
                with _unavailable("write"):
                    await self.kv.update(key, self.encode(key, stored), last=current.revision)
            except KeyWrongLastSequenceError:
                continue
            return True

    async def apply(self, tenant: str, event: QueryEvent, seq: int) -> bool:
        """Fold one event in; ``False`` when it changed nothing."""
        session_id = event.data.get("sessionId")
        if not session_id or not event.data.get("queryName"):
            _log.debug("event without sessionId/queryName skipped", reason=event.reason)
            return False
        key = session_key(tenant, session_id)
        while True:
            stored: StoredSession | None = None
            revision: int | None = None
            try:
                with _unavailable("get"):
                    current = await self.kv.get(key)
                revision = current.revision
                stored = self.decode(key, current.value) if current.value else None
            except KeyNotFoundError:
                pass
            changed = fold(stored, tenant, event, seq)
            if changed is None:
                return False
            try:
                with _unavailable("write"):
                    if revision is None:
                        await self.kv.create(key, self.encode(key, changed))
                    else:
                        await self.kv.update(key, self.encode(key, changed), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote first: fold into its version
            return True

    async def handle(self, event: QueryEvent, context: MessageContext) -> None:
        """The ``broker-sessions`` consumer's handler: the tenant from the subject."""
        tenant = context.tenant
        if tenant is None:
            return
        await self.apply(tenant, event, context.stream_seq)


@contextlib.contextmanager
def _unavailable(action: str) -> Iterator[None]:
    try:
        yield
    except (KeyNotFoundError, KeyWrongLastSequenceError, InvalidKeyError):
        raise
    except (NatsError, TimeoutError) as exc:
        raise UnavailableError(
            f"the sessions read model is unavailable ({action}): {type(exc).__name__}: {exc}"
        ) from exc


class SessionIndex(BucketIndex):
    """Every tenant's sessions, from one watch of the whole bucket (for listings)."""

    def __init__(self, store: SessionStore) -> None:
        super().__init__(store.kv, name="broker-sessions-index")
        self._store = store
        self._sessions: dict[str, dict[str, SessionEntry]] = defaultdict(dict)

    def sessions(self, tenant: str) -> list[SessionEntry]:
        return list(self._sessions.get(tenant, {}).values())

    def keys(self, tenant: str) -> list[str]:
        return list(self._sessions.get(tenant, {}))

    def holding(self, tenant: str, query_name: str) -> list[str]:
        """Keys of the tenant's sessions that hold query ``query_name``."""
        return [
            key
            for key, entry in self._sessions.get(tenant, {}).items()
            if query_name in entry.queries
        ]

    def on_put(self, key: str, value: bytes) -> None:
        stored = self._store.decode(key, value)
        if stored is not None:
            self._sessions[key.partition(".")[0]][key] = stored.entry

    def on_delete(self, key: str) -> None:
        self._sessions[key.partition(".")[0]].pop(key, None)


def status_counts(entries: Iterable[SessionEntry]) -> dict[str, int]:
    counts = {"active": 0, "idle": 0, "error": 0}
    for entry in entries:
        counts[entry.status] += 1
    return counts
