"""Kubernetes adapter over kubernetes-asyncio: typed access, watches, status, events, leases.

* :class:`KubeClient` — get/list/create/patch/delete of contracts Structs (and raw objects);
* :class:`ResumableWatch` — list+watch that never loses or repeats an event;
* :class:`ResourceCache` — watch-backed store satisfying the resolver's ``ResourceStore`` port;
* :class:`StatusWriter` — status-subresource-only merge patches, no-op free, terminal-safe;
* :class:`EventRecorder` — ``events.k8s.io/v1`` events with a ``core/v1`` fallback;
* :class:`LeaderElector` — client-go compatible leader election on a Lease;
* :func:`open_approval_task` / :func:`decision_of` — an approval's A2ATask (human-in-the-loop).

Errors form the tree documented in :mod:`ark_mesh.kube.errors` (transient vs permanent).
Only :mod:`ark_mesh.kube.transport` touches kubernetes-asyncio.
"""

from ark_mesh.kube.approvals import (
    A2ATASKS,
    QUERY_LABEL,
    RUN_LOG_KEY,
    approval_task_body,
    approval_task_status,
    decision_of,
    open_approval_task,
    run_log_of,
)
from ark_mesh.kube.cache import ResourceCache
from ark_mesh.kube.client import (
    CORE_EVENTS,
    EVENTS,
    JSON_PATCH,
    LEASES,
    MERGE_PATCH,
    ApiResource,
    KubeClient,
    ObjectList,
    RawWatchEvent,
)
from ark_mesh.kube.errors import (
    AlreadyExistsError,
    Cause,
    ConflictError,
    ConnectionLostError,
    InvalidError,
    KubeError,
    NotFoundError,
    PermanentKubeError,
    RequestRejectedError,
    ResourceExpiredError,
    ServerError,
    TerminalPhaseError,
    TooManyRequestsError,
    TransientKubeError,
    UndecodableError,
)
from ark_mesh.kube.events import EventRecorder, ObjectReference
from ark_mesh.kube.leader import LeaderElectionConfig, LeaderElector, LeadershipLostError
from ark_mesh.kube.retry import Backoff, RetryPolicy, retry_transient
from ark_mesh.kube.selectors import SelectorError, selector_matches, selector_to_query
from ark_mesh.kube.status import StatusGuard, StatusWrite, StatusWriter, merge_patch
from ark_mesh.kube.transport import ApiClientTransport, HttpResponse, Transport
from ark_mesh.kube.watch import ResumableWatch, WatchEvent

__all__ = [
    "A2ATASKS",
    "CORE_EVENTS",
    "EVENTS",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "QUERY_LABEL",
    "RUN_LOG_KEY",
    "AlreadyExistsError",
    "ApiClientTransport",
    "ApiResource",
    "Backoff",
    "Cause",
    "ConflictError",
    "ConnectionLostError",
    "EventRecorder",
    "HttpResponse",
    "InvalidError",
    "KubeClient",
    "KubeError",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeadershipLostError",
    "NotFoundError",
    "ObjectList",
    "ObjectReference",
    "PermanentKubeError",
    "RawWatchEvent",
    "RequestRejectedError",
    "ResourceCache",
    "ResourceExpiredError",
    "ResumableWatch",
    "RetryPolicy",
    "SelectorError",
    "ServerError",
    "StatusGuard",
    "StatusWrite",
    "StatusWriter",
    "TerminalPhaseError",
    "TooManyRequestsError",
    "TransientKubeError",
    "Transport",
    "UndecodableError",
    "WatchEvent",
    "approval_task_body",
    "approval_task_status",
    "decision_of",
    "merge_patch",
    "open_approval_task",
    "retry_transient",
    "run_log_of",
    "selector_matches",
    "selector_to_query",
]
