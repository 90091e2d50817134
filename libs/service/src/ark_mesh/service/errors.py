"""Errors of the service runtime.

::

    ServiceError
    └── ConfigError     the configuration file or an environment override is invalid
"""

from __future__ import annotations

__all__ = ["ConfigError", "ServiceError"]


class ServiceError(Exception):
    """Base of every service-runtime error."""


class ConfigError(ServiceError):
    """Configuration that cannot be used; the message names the file, variable or field."""
