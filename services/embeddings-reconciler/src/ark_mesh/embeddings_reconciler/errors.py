"""Errors of the embeddings reconciler.

The service reuses the resolver's tree for everything about the Model and the provider, so a
Model fails the same way here as in a query — permanent errors end the request ``failed``,
transient ones are redelivered by the bus with backoff::

    ResolutionError                         (ark_mesh.resolver.errors)
    ├── PermanentResolutionError            → EmbeddingsResult failed, never retried
    │   ├── InvalidSpecError
    │   │   ├── ParameterError              a Model value (key, URL) cannot be resolved
    │   │   └── InvalidEmbeddingsRequestError   (this module) the request itself is unusable
    │   ├── ResourceNotFoundError           the Model does not exist
    │   ├── ConfigurationError              the Model exists but cannot be used
    │   └── ModelRequestError               the provider refused the request (4xx), or
    │                                       answered with vectors that do not match the input
    └── TransientResolutionError
        └── ModelUnavailableError           429, 5xx, timeouts, connection failures
                                            → bus TransientError (redelivery with backoff)
"""

from __future__ import annotations

from ark_mesh.resolver import InvalidSpecError

__all__ = ["InvalidEmbeddingsRequestError"]


class InvalidEmbeddingsRequestError(InvalidSpecError):
    """The ``EmbeddingsRequest`` cannot be answered as sent (no input, bad ``dimensions``…)."""
