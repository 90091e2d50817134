"""Errors of the broker, each one an HTTP answer in Ark's broker envelope.

::

    BrokerError                      anything the broker refuses or cannot do
    └── ApiError                     answered as ``{"error": {code, message, field?, requestId}}``
        ├── BadRequestError          400 malformed JSON / 422 a field is invalid (``field`` names it)
        ├── UnauthorizedError        401 no or unknown bearer token
        ├── NotFoundError            404 unknown id, or another tenant's id (never 403: ids don't leak)
        ├── ConflictError            409 the name is taken, or an Idempotency-Key is still being accepted
        ├── TooLargeError            413 larger than the bus can carry (``field`` names what)
        ├── TooManyRequestsError     429 the tenant has too many queries in flight (``Retry-After``)
        ├── UnavailableError         503 NATS or Kubernetes did not take the request; retry later
        └── GatewayTimeoutError      504 the mesh gave no answer in time (embeddings)

:class:`UnavailableError` and :class:`GatewayTimeoutError` are temporary: a client may retry
the same request unchanged (with the same ``Idempotency-Key`` it cannot create a second query).
Every other error needs a different request.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ApiError",
    "BadRequestError",
    "BrokerError",
    "ConflictError",
    "GatewayTimeoutError",
    "NotFoundError",
    "TooLargeError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnavailableError",
]


class BrokerError(Exception):
    """Base of every broker error."""


class ApiError(BrokerError):
    """An error with an HTTP status and Ark's error ``code``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.http_status = status or self.status
        self.headers = headers or {}


class BadRequestError(ApiError):
    status = 422
    code = "BAD_REQUEST"


class UnauthorizedError(ApiError):
    status = 401
    code = "UNAUTHORIZED"


class NotFoundError(ApiError):
    status = 404
    code = "NOT_FOUND"


class ConflictError(ApiError):
    status = 409
    code = "CONFLICT"


class TooLargeError(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class TooManyRequestsError(ApiError):
    status = 429
    code = "TOO_MANY_REQUESTS"


class UnavailableError(ApiError):
    status = 503
    code = "UNAVAILABLE"


class GatewayTimeoutError(ApiError):
    status = 504
    code = "TIMEOUT"
