"""Every error the bus raises, and the two a message handler raises to steer redelivery.

Bus errors (raised *by* the bus to its caller)::

    BusError
     ├── BusUnavailableError          cannot reach any NATS server (names the URLs tried)
     ├── BusAuthError                 NATS refused this client's credentials, or they cannot
     │                                be read (names the user and the setting to fix)
     ├── BusClosedError               the connection was closed or is draining
     ├── ServerVersionError           the nats-server is older than the supported floor
     ├── PublishError                 JetStream did not store a publish (names the subject)
     │    ├── PublishTimeoutError     …no acknowledgement in time (retries included)
     │    ├── PayloadTooLargeError    …larger than one message (or its pieces) can carry;
     │    │                           also a PermanentError, so a handler fails at once
     │    └── EncryptionRequiredError …refused: the tenant requires encryption and this
     │                                process has no key for it (fail closed; also an
     │                                EncryptionError)
     ├── EncryptionError              per-tenant payload encryption (:mod:`.encryption`)
     │    ├── EncryptionConfigError   a key is missing or malformed (names tenant and key id);
     │    │                           also a ValueError
     │    ├── EncryptionRequiredError (see above)
     │    └── DecryptionError         a body cannot be opened: wrong or unknown key, tampered,
     │                                moved to another subject, or clear text where encryption
     │                                is required (names subject and key id, never the plaintext)
     ├── ReadError                    a stream read cannot start or go on (names the subject)
     │    ├── ReaderUnavailableError  …its ordered consumer could not be (re)created, or NATS
     │    │                           stayed away, within the reader's bound
     │    └── ReaderLagError          …a live follower fell further behind the shared feed
     │                                than its buffer holds (resume from the last sequence)
     ├── RunLogError                  a run's step log in KV ``ark-runs`` (:mod:`.runs`)
     │    ├── RunLogConflictError     another writer saved the log since this one read it
     │    │                           (two replicas on one query): this run must stop
     │    └── RunLogUnreadableError   the stored log cannot be opened or decoded
     └── TopologyError
          ├── TopologyConfigError     the topology configuration contradicts itself
          ├── TopologyConflictError   the server cannot (or silently did not) apply a setting:
          │                           names the stream/consumer and the field
          └── TopologyMissingError    a stream or consumer the caller needs does not exist

Handler outcomes (raised *inside* a worker's handler, caught by the worker; modelled on kopf's
temporary/permanent errors)::

    HandlerError
     ├── TransientError   try again later: the worker naks with a growing delay
     │                    (``nak(delay=…)``; a plain nak would ignore any backoff) until the
     │                    consumer's MaxDeliver is used up, then dead-letters the message
     └── PermanentError   retrying cannot help: the worker terminates the message and copies
                          it to ``ARK_DLQ`` with the reason, then carries on

Any *other* exception escaping a handler is treated like a :class:`TransientError` without a
delay hint (a bug may be fixed by a redeploy; MaxDeliver bounds the damage) and is logged with
its traceback. A message that cannot be decoded is dead-lettered like a
:class:`PermanentError` (``ark_mesh.contracts.DecodeError`` carries the reason), and so is one
that cannot be decrypted (:class:`DecryptionError`).
"""

from __future__ import annotations

__all__ = [
    "BusAuthError",
    "BusClosedError",
    "BusError",
    "BusUnavailableError",
    "DecryptionError",
    "EncryptionConfigError",
    "EncryptionError",
    "EncryptionRequiredError",
    "HandlerError",
    "PayloadTooLargeError",
    "PermanentError",
    "PublishError",
    "PublishTimeoutError",
    "ReadError",
    "ReaderLagError",
    "ReaderUnavailableError",
    "RunLogConflictError",
    "RunLogError",
    "RunLogUnreadableError",
    "ServerVersionError",
    "TopologyConfigError",
    "TopologyConflictError",
    "TopologyError",
    "TopologyMissingError",
    "TransientError",
]


class BusError(Exception):
    """Base class of errors raised by the bus to its callers."""


class ServerVersionError(BusError):
    """The connected nats-server is older than ``floor``: the bus refuses to run on it, because
    an old server silently ignores settings the mesh relies on instead of refusing them."""

    def __init__(self, version: str, floor: str, server: str | None) -> None:
        self.version = version
        self.floor = floor
        self.server = server
        where = f" at {server}" if server else ""
        super().__init__(
            f"nats-server{where} is version {version or 'unknown'}; ark-mesh needs {floor} or "
            "newer (bus.connection.minServerVersion)"
        )


class BusUnavailableError(BusError):
    """No NATS server answered; ``urls`` are the servers tried, ``cause`` the last failure."""

    def __init__(self, urls: tuple[str, ...], cause: BaseException | None, attempts: int) -> None:
        self.urls = urls
        self.cause = cause
        self.attempts = attempts
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(
            f"NATS unreachable at {', '.join(urls)} after {attempts} attempt(s){detail}"
        )


class BusAuthError(BusError):
    """NATS refused this client's credentials (authorization violation, expired creds), or a
    credential named in ``bus.connection.auth``/``tls`` cannot be read. Not retried: the same
    credentials are refused again; the message says which user and which setting."""


class BusClosedError(BusError):
    """The bus connection is closed (or draining) and cannot be used any more."""


class PublishError(BusError):
    """JetStream refused or never acknowledged a message published on ``subject``."""

    def __init__(self, subject: str, detail: str) -> None:
        self.subject = subject
        self.detail = detail
        super().__init__(f"publish to {subject!r} failed: {detail}")


class PublishTimeoutError(PublishError):
    """No acknowledgement arrived in time (after retrying with the same ``Nats-Msg-Id``)."""


class ReadError(BusError):
    """A read of ``subject`` cannot start or continue; ``last_seq`` is the last stream sequence
    it delivered (0: none), so a caller can tell its client where to resume."""

    def __init__(self, subject: str, detail: str, *, last_seq: int = 0) -> None:
        self.subject = subject
        self.detail = detail
        self.last_seq = last_seq
        super().__init__(f"reading {subject!r}: {detail}")


class ReaderUnavailableError(ReadError):
    """The reader's ordered consumer could not be created (or re-created after a loss) within
    its bound, or NATS stayed unreachable longer than that: the read ends instead of hanging
    (nats-server ≤ 2.11 can place an ordered consumer on an offline node, and the creation
    then times out)."""


class ReaderLagError(ReadError):
    """A live follower of a shared feed fell further behind than its buffer holds: it is cut
    off rather than letting one slow client grow the broker's memory without bound."""


class EncryptionError(BusError):
    """Base class of per-tenant payload encryption problems."""


class EncryptionConfigError(EncryptionError, ValueError):
    """The encryption configuration cannot be used; names the tenant and the key id at fault."""

    def __init__(
        self, detail: str, *, tenant: str | None = None, key_id: str | None = None
    ) -> None:
        self.tenant = tenant
        self.key_id = key_id
        where = []
        if tenant is not None:
            where.append(f"tenant {tenant!r}")
        if key_id is not None:
            where.append(f"key {key_id!r}")
        prefix = f"encryption: {', '.join(where)}: " if where else "encryption: "
        super().__init__(prefix + detail)


class EncryptionRequiredError(EncryptionError, PublishError):
    """Publishing for a tenant listed in ``required_tenants`` without a key for it: refused,
    so that tenant's data never leaves this process in clear."""

    def __init__(self, subject: str, tenant: str) -> None:
        self.tenant = tenant
        PublishError.__init__(
            self,
            subject,
            f"tenant {tenant!r} requires encryption and no key is configured for it",
        )


class DecryptionError(EncryptionError):
    """A message body cannot be opened. Retrying cannot help (a permanent failure).

    ``subject`` is where it was stored, ``key_id`` the key named by the envelope (``None`` for
    clear text or an unreadable envelope), ``reason`` what went wrong. Never carries plaintext.
    """

    def __init__(self, subject: str, key_id: str | None, reason: str) -> None:
        self.subject = subject
        self.key_id = key_id
        self.reason = reason
        key = f"key {key_id!r}" if key_id is not None else "no key id"
        super().__init__(f"cannot decrypt message on {subject!r} ({key}): {reason}")


class TopologyError(BusError):
    """Base class of topology (streams, consumers, KV buckets) problems."""


class TopologyConfigError(TopologyError, ValueError):
    """The topology configuration is inconsistent; the message says which setting and why."""


class TopologyConflictError(TopologyError):
    """The server cannot apply a setting in place, or accepted it and silently ignored it.

    ``entity`` is ``"stream"`` or ``"consumer"``, ``name`` its name (``STREAM/consumer`` for
    consumers), ``field`` the configuration field at fault, ``wanted``/``actual`` the requested
    value and the one the server has.
    """

    def __init__(
        self,
        entity: str,
        name: str,
        field: str,
        *,
        wanted: object = None,
        actual: object = None,
        detail: str = "",
    ) -> None:
        self.entity = entity
        self.name = name
        self.field = field
        self.wanted = wanted
        self.actual = actual
        self.detail = detail
        message = f"{entity} {name}: field {field!r}: wanted {wanted!r}, server has {actual!r}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class RunLogError(BusError):
    """A run's step log (KV ``ark-runs``) could not be used; names the query."""

    def __init__(self, query_id: str, detail: str) -> None:
        self.query_id = query_id
        super().__init__(f"run log of query {query_id}: {detail}")


class RunLogConflictError(RunLogError):
    """The log changed since this writer read or last saved it.

    Only one process may extend a run: a second one (a replica that lost its delivery but kept
    running) learns here that it is no longer the run's owner, before it executes another step.
    """


class RunLogUnreadableError(RunLogError):
    """The stored log cannot be opened (key) or decoded (schema): it cannot be replayed, and
    running the query from the start could repeat side effects the log records."""


class TopologyMissingError(TopologyError):
    """A stream or consumer that must already exist (provisioned by the topology) does not."""


class HandlerError(Exception):
    """Base class of the outcomes a message handler may raise on purpose."""


class TransientError(HandlerError):
    """The message could be handled later (a dependency is down, a rate limit hit…).

    ``delay`` (seconds) overrides the worker's growing backoff for this one retry, e.g. with a
    provider's ``Retry-After``.
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentError(HandlerError):
    """The message can never succeed (invalid request, unknown target…); dead-letter it."""


class PayloadTooLargeError(PublishError, PermanentError):
    """A message cannot be stored whole: larger than the server's ``max_payload`` (headers
    included), or, sent in pieces (:mod:`ark_mesh.bus.large`), larger than the pieces allow.

    Also a :class:`PermanentError`: a handler that lets it escape is dead-lettered on its first
    delivery instead of being redelivered to fail the same way, so whoever waits on the
    outcome hears of it at once (the service's dead-letter ending answers them).
    """
