"""Errors raised by the contracts package.

Every error here is *permanent*: retrying the same bytes or the same subject cannot succeed, so
the bus dead-letters a message that fails to decode instead of redelivering it::

    ContractError
    ├── DecodeError       bytes that are not a valid message of the expected schema
    ├── SubjectError      a subject or subject token that breaks the grammar
    └── DurationError     a duration string that is not a Go/Kubernetes duration
"""

from __future__ import annotations

__all__ = ["ContractError", "DecodeError", "DurationError", "SubjectError"]


class ContractError(ValueError):
    """Base of every contracts error; a ``ValueError`` because the input is at fault."""


class DecodeError(ContractError):
    """Bytes could not be decoded as the expected message or resource.

    ``reason`` is a one-line explanation that names the offending field; the bus copies it into
    the dead letter so whoever reads the DLQ sees why without re-decoding.
    """

    def __init__(self, reason: str, *, schema: str | None = None) -> None:
        self.reason = reason
        self.schema = schema
        prefix = f"cannot decode {schema}: " if schema else "cannot decode message: "
        super().__init__(prefix + reason)


class SubjectError(ContractError):
    """A subject does not follow the ark-mesh grammar, or a token is not a valid NATS token."""


class DurationError(ContractError):
    """A duration string is not in Go's ``time.ParseDuration`` format (``5m``, ``1h30m``, ``1ms``)."""
