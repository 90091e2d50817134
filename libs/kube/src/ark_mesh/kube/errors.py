"""Errors of the Kubernetes adapter, split by what the caller should do about them.

::

    KubeError                        anything the API server (or the way to it) refused
    ├── TransientKubeError           the same request may succeed later: retry with backoff
    │   ├── ConflictError            409: stale resourceVersion (re-read, re-apply)
    │   ├── TooManyRequestsError     429: the server sheds load (``retry_after`` seconds)
    │   ├── ServerError              5xx: the server failed
    │   ├── ConnectionLostError      no answer: refused, reset, or a stream cut mid-body
    │   └── ResourceExpiredError     410: the resourceVersion is too old (relist, then watch)
    └── PermanentKubeError           the same request will fail again: fix the request
        ├── NotFoundError            404
        ├── AlreadyExistsError       409 with reason AlreadyExists
        ├── InvalidError             422: ``causes`` name the fields
        ├── RequestRejectedError     400, 401, 403, 405, 415 and other 4xx
        ├── UndecodableError         the answer does not fit the expected contracts Struct
        └── TerminalPhaseError       the StatusWriter refused to move a terminal phase

The split follows the kopf convention of temporary vs permanent errors: a loop that retries
only ``TransientKubeError`` can never spin on a request that cannot succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "Cause",
    "ConflictError",
    "ConnectionLostError",
    "InvalidError",
    "KubeError",
    "NotFoundError",
    "PermanentKubeError",
    "RequestRejectedError",
    "ResourceExpiredError",
    "ServerError",
    "TerminalPhaseError",
    "TooManyRequestsError",
    "TransientKubeError",
    "UndecodableError",
    "error_from_status",
]


@dataclass(frozen=True, slots=True)
class Cause:
    """One entry of ``Status.details.causes``: which field, and why."""

    field: str
    reason: str
    message: str


class KubeError(Exception):
    """Base of every adapter error. ``code``/``reason`` are the server's when it answered."""

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class TransientKubeError(KubeError):
    """Retrying the same request later may succeed."""


class PermanentKubeError(KubeError):
    """Retrying the same request will not help."""


class ConflictError(TransientKubeError):
    """409: somebody else changed the object first (optimistic concurrency)."""


class TooManyRequestsError(TransientKubeError):
    """429: back off for at least ``retry_after`` seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        code: int = 429,
        reason: str | None = "TooManyRequests",
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.retry_after = retry_after


class ServerError(TransientKubeError):
    """5xx."""


class ConnectionLostError(TransientKubeError):
    """The server could not be reached, or a response (watch stream) was cut."""


class ResourceExpiredError(TransientKubeError):
    """410 Gone/Expired: the requested resourceVersion is older than the server's history."""


class NotFoundError(PermanentKubeError):
    """404."""


class AlreadyExistsError(PermanentKubeError):
    """409 AlreadyExists on create."""


class InvalidError(PermanentKubeError):
    """422: the object violates the schema; ``causes`` name the fields."""

    def __init__(
        self,
        message: str,
        *,
        causes: Sequence[Cause],
        code: int = 422,
        reason: str | None = "Invalid",
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.causes = tuple(causes)


class RequestRejectedError(PermanentKubeError):
    """Any other 4xx (BadRequest, Unauthorized, Forbidden, MethodNotAllowed, 415…)."""


class UndecodableError(PermanentKubeError):
    """The server's object does not decode into the requested Struct (schema drift)."""


class TerminalPhaseError(PermanentKubeError):
    """A status write would move a Query out of ``done``/``error``/``canceled``."""


def error_from_status(
    code: int, body: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None
) -> KubeError:
    """The exception for a non-2xx answer, from its HTTP code and ``Status`` body."""
    status: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    raw_reason = status.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) else None
    message = str(status.get("message") or f"HTTP {code}")
    raw_details = status.get("details")
    details: Mapping[str, Any] = raw_details if isinstance(raw_details, Mapping) else {}
    if code == 404:
        return NotFoundError(message, code=code, reason=reason)
    if code == 409:
        if reason == "AlreadyExists":
            return AlreadyExistsError(message, code=code, reason=reason)
        return ConflictError(message, code=code, reason=reason)
    if code == 410:
        return ResourceExpiredError(message, code=code, reason=reason)
    if code == 422:
        causes = [
            Cause(str(c.get("field", "")), str(c.get("reason", "")), str(c.get("message", "")))
            for c in details.get("causes") or ()
            if isinstance(c, Mapping)
        ]
        return InvalidError(message, causes=causes, code=code, reason=reason)
    if code == 429:
        return TooManyRequestsError(
            message, retry_after=_retry_after(headers, details), code=code, reason=reason
        )
    if code >= 500:
        return ServerError(message, code=code, reason=reason)
    return RequestRejectedError(message, code=code, reason=reason)


def _retry_after(headers: Mapping[str, str] | None, details: Mapping[str, Any]) -> float:
    header = (headers or {}).get("Retry-After")
    for candidate in (header, details.get("retryAfterSeconds")):
        try:
            if candidate is not None:
                return max(0.0, float(candidate))
        except (TypeError, ValueError):
            continue
    return 1.0
