"""Errors raised while setting up telemetry.

Exception tree::

    TelemetryError
     └── TelemetryConfigError   an environment variable or argument has a value we cannot use

Telemetry never raises while a service is *running* (a failed export is logged by the SDK and
dropped): observability must not take the data path down with it. These errors only happen at
start-up, where failing loudly beats running with logs nobody can parse.
"""

from __future__ import annotations

__all__ = ["TelemetryConfigError", "TelemetryError"]


class TelemetryError(Exception):
    """Base class of every telemetry error."""


class TelemetryConfigError(TelemetryError, ValueError):
    """A setting has an unusable value; the message names the setting and the accepted values."""

    def __init__(self, setting: str, value: object, expected: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        super().__init__(f"{setting}={value!r} is not valid: expected {expected}")
