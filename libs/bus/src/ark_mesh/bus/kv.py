"""The KV bucket handle and the errors of its operations, named through the bus.

Services keep state in the KV buckets the topology provisions (the broker's ``ark-queries`` read
model) and read streams through the bus; they name these types from here, so nats-py stays the
bus's dependency alone and a service never imports ``nats`` itself (an import-linter contract).
"""

from __future__ import annotations

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import InvalidKeyError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = [
    "InvalidKeyError",
    "KeyNotFoundError",
    "KeyValue",
    "KeyWatcher",
    "KeyWrongLastSequenceError",
    "NatsError",
    "NatsTimeoutError",
]

KeyWatcher = KeyValue.KeyWatcher
"""What :meth:`KeyValue.watch` returns: ``updates()`` yields entries, ``None`` once caught up."""
