"""Ark's names: annotations, finalizer, conditions, reasons and defaults.

Clients and dashboards built for Ark match on these strings, so they are defined once here and
never spelled out elsewhere.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

__all__ = [
    "A2A_CONTEXT_ID_ANNOTATION",
    "A2A_SERVER_ADDRESS_ANNOTATION",
    "A2A_SERVER_NAME_ANNOTATION",
    "BROKER_MIRROR_LABEL",
    "COMPLETED",
    "DEFAULT_QUERY_TIMEOUT",
    "DEFAULT_QUERY_TTL",
    "FINALIZER",
    "MEMORY_DEGRADED",
    "MEMORY_UNAVAILABLE",
    "MIGRATION_WARNING_PREFIX",
    "RECONCILIATION_ANNOTATION",
    "RECONCILIATION_MODES",
    "STREAMING_ANNOTATION",
    "STREAMING_CONFIGMAP",
    "Reason",
    "ReconciliationMode",
]

FINALIZER: Final = "ark.mckinsey.com/finalizer"
A2A_CONTEXT_ID_ANNOTATION: Final = "ark.mckinsey.com/a2a-context-id"
"""Read as *input* (pin a context for a new query); ark-mesh never writes it."""
A2A_SERVER_ADDRESS_ANNOTATION: Final = "ark.mckinsey.com/a2a-server-address"
A2A_SERVER_NAME_ANNOTATION: Final = "ark.mckinsey.com/a2a-server-name"
"""Set by Ark's A2AServer discovery on the Agents it creates."""
STREAMING_ANNOTATION: Final = "ark.mckinsey.com/streaming-enabled"
STREAMING_CONFIGMAP: Final = "ark-config-streaming"
"""The namespace ConfigMap (``enabled: "true"``) that turns streamed model calls on, as in Ark."""
MIGRATION_WARNING_PREFIX: Final = "ark.mckinsey.com/migration-warning-"
"""Ark's webhooks annotate what they migrated (``…-input-type`` for ``type: messages``)."""
RECONCILIATION_ANNOTATION: Final = "ark.mckinsey.com/reconciliation"
"""Per-query request for a resolution mode (ark-mesh's addition; see ReconciliationMode)."""

BROKER_MIRROR_LABEL: Final = "ark.mckinsey.com/broker-mirror"
"""ark-mesh: set to ``"true"`` on a Query the broker created as a read-only mirror of a
broker-mode query (``createResource: true``). The controller leaves such a Query alone;
status-sync keeps its status."""

ReconciliationMode = Literal["inController", "standalone", "broker"]
RECONCILIATION_MODES: Final[tuple[ReconciliationMode, ...]] = (
    "inController",
    "standalone",
    "broker",
)

COMPLETED: Final = "Completed"
MEMORY_UNAVAILABLE: Final = "MemoryUnavailable"
MEMORY_DEGRADED: Final = "MemoryDegraded"

DEFAULT_QUERY_TIMEOUT: Final = timedelta(minutes=5)
DEFAULT_QUERY_TTL: Final = timedelta(hours=720)


class Reason:
    """Condition reasons Ark writes on ``Completed`` (and ark-mesh's one addition)."""

    NOT_STARTED: Final = "QueryNotStarted"
    QUEUED: Final = "QueryQueued"
    RUNNING: Final = "QueryRunning"
    SUCCEEDED: Final = "QuerySucceeded"
    ERRORED: Final = "QueryErrored"
    CANCELED: Final = "QueryCanceled"
    TIMED_OUT_IN_QUEUE: Final = "TimedOutInQueue"
    TIMED_OUT_IN_EXECUTION: Final = "TimedOutInExecution"
    MODE_NOT_ALLOWED: Final = "ReconciliationModeNotAllowed"
    """ark-mesh: the requested resolution mode is not in ``allowedModes``."""
