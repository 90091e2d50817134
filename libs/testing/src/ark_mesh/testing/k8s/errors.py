"""Kubernetes ``Status`` failures, raised by the store and rendered by the server.

The shapes (reason, code, message wording, ``details``) follow what a real API server sends,
because clients branch on them: kubernetes-asyncio raises ``ApiException`` with the code,
kubectl prints ``Error from server (<reason>): <message>``, and controllers decide between
retrying and giving up from ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ark_mesh.testing.k8s.openapi import FieldError

__all__ = ["ApiError", "status_success"]


class ApiError(Exception):
    """A request failure carrying the ``Status`` object the server answers with."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    # --- constructors named after the server's reasons -------------------------------------

    @classmethod
    def not_found(cls, qualified_resource: str, name: str, group: str, plural: str) -> ApiError:
        return cls(
            404,
            "NotFound",
            f'{qualified_resource} "{name}" not found',
            details=_details(name, group, plural),
        )

    @classmethod
    def no_such_route(cls) -> ApiError:
        return cls(
            404,
            "NotFound",
            "the server could not find the requested resource",
            details={
                "causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]
            },
        )

    @classmethod
    def already_exists(
        cls, qualified_resource: str, name: str, group: str, plural: str
    ) -> ApiError:
        return cls(
            409,
            "AlreadyExists",
            f'{qualified_resource} "{name}" already exists',
            details=_details(name, group, plural),
        )

    @classmethod
    def conflict(
        cls, qualified_resource: str, name: str, group: str, plural: str, why: str
    ) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified_resource} "{name}": {why}',
            details=_details(name, group, plural),
        )

    @classmethod
    def stale(cls, qualified_resource: str, name: str, group: str, plural: str) -> ApiError:
        return cls.conflict(
            qualified_resource,
            name,
            group,
            plural,
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
        )

    @classmethod
    def invalid(
        cls, qualified_kind: str, kind: str, group: str, name: str, causes: Sequence[FieldError]
    ) -> ApiError:
        rendered = [str(cause) for cause in causes]
        summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
        details: dict[str, Any] = {"name": name, "kind": kind}
        if group:
            details["group"] = group
        details["causes"] = [
            {"reason": cause.reason, "message": cause.message, "field": cause.field}
            for cause in causes
        ]
        return cls(
            422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details=details
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, qualified_resource: str, name: str, message: str) -> ApiError:
        return cls(403, "Forbidden", f'{qualified_resource} "{name}" is forbidden: {message}')

    @classmethod
    def method_not_allowed(cls, verb: str) -> ApiError:
        return cls(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({verb})",
        )

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: Sequence[str]) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}",
            details={"causes": [{"reason": "UnexpectedHeader", "message": content_type}]},
        )

    @classmethod
    def expired(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def too_many_requests(cls, retry_after: int) -> ApiError:
        return cls(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            details={"retryAfterSeconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def internal(cls, message: str) -> ApiError:
        return cls(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            details={"causes": [{"message": message}]},
        )


def _details(name: str, group: str, plural: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def status_success(name: str, group: str, plural: str, uid: str) -> dict[str, Any]:
    """The body a core kind answers a completed DELETE with."""
    details = _details(name, group, plural)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
