"""Errors of the service runtime.

::

    ServiceError
    ├── ConfigError          the configuration file or an environment override is invalid
    └── ResourceSourceError  the configured resource source cannot be opened (names why)
"""

from __future__ import annotations

__all__ = ["ConfigError", "ResourceSourceError", "ServiceError"]


class ServiceError(Exception):
    """Base of every service-runtime error."""


class ConfigError(ServiceError):
    """Configuration that cannot be used; the message names the file, variable or field."""


class ResourceSourceError(ServiceError):
    """``resources`` in the configuration names a source that cannot be used.

    Found at start rather than at load (the path may appear later, the kinds are the
    resolver's), so it means "could not start" (exit 1), not "invalid configuration" (exit 2).
    """
