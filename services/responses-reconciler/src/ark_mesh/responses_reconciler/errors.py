"""Why a responses request cannot be answered, as types.

::

    ResponsesError                  the request ends with a ``failed`` ResponsesResult
    ├── InvalidRequestError         malformed request: no user message, bad timeout or target
    └── UnknownTargetError          ``target`` names no Agent, Team or Model of the namespace

Transient failures are not in this tree: a model that is briefly unavailable surfaces as the
resolver's :class:`~ark_mesh.resolver.TransientResolutionError` and becomes the bus's
:class:`~ark_mesh.bus.TransientError` (redelivery with backoff). Resolver permanent errors end
the request ``failed`` with their own text.
"""

from __future__ import annotations

__all__ = ["InvalidRequestError", "ResponsesError", "UnknownTargetError"]


class ResponsesError(Exception):
    """Base of the service's own errors; ``str()`` becomes the result's ``error``."""


class InvalidRequestError(ResponsesError):
    """The request itself is malformed; retrying it cannot help."""


class UnknownTargetError(ResponsesError):
    """The target does not exist in the request's namespace."""
