"""Errors of the query-reconciler service itself (the resolver, bus and kube have their own).

::

    QueryReconcilerError
    └── ResourceSourceError     the configured resource source cannot be opened (names why)

Handler outcomes are not errors of this tree: a transient resolver failure becomes the bus's
:class:`~ark_mesh.bus.TransientError` (redelivery with backoff), everything else ends the query
with a terminal status.
"""

from __future__ import annotations

__all__ = ["QueryReconcilerError", "ResourceSourceError"]


class QueryReconcilerError(Exception):
    """Base of the service's own errors."""


class ResourceSourceError(QueryReconcilerError):
    """``resources`` in the configuration names a source that cannot be used."""
