"""status-sync: applies ``StatusUpdate``s from JetStream to the status of Query resources.

Run it with ``python -m ark_mesh.status_sync --config FILE``. The pieces:

* :class:`StatusSyncConfig` — the typed configuration (:mod:`.config`);
* :class:`StatusSyncService` — wiring and lifecycle (:mod:`.service`);
* :class:`StatusApplier` — one update: uid check, order check, ``/status`` merge patch under a
  resourceVersion precondition, a Kubernetes Event per phase change (:mod:`.applier`);
* :func:`decide` — the pure ordering rules (:mod:`.ordering`).

The service raises no errors of its own: configuration problems are
:class:`ark_mesh.service.ConfigError` / :class:`ark_mesh.bus.TopologyConfigError`, API failures
the :mod:`ark_mesh.kube.errors` tree, mapped to the bus's transient/permanent outcomes.
"""

from ark_mesh.contracts.ordering import PHASE_RANK, Verdict, decide, order_key, rank
from ark_mesh.status_sync.applier import Applied, NewestLookup, StatusApplier
from ark_mesh.status_sync.config import EventsConfig, StatusSyncConfig
from ark_mesh.status_sync.newest import NewestPublished
from ark_mesh.status_sync.service import StatusSyncService
from ark_mesh.status_sync.transitions import Transition, transition

__all__ = [
    "PHASE_RANK",
    "Applied",
    "EventsConfig",
    "NewestLookup",
    "NewestPublished",
    "StatusApplier",
    "StatusSyncConfig",
    "StatusSyncService",
    "Transition",
    "Verdict",
    "decide",
    "order_key",
    "rank",
    "transition",
]
