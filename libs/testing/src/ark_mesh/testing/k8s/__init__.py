"""A Kubernetes API server emulator for tests (aiohttp, in-process or as a process).

Faithful where controllers can tell the difference: one global ``resourceVersion``,
``generation`` bumped only by spec changes, the status subresource, finalizers and
``deletionTimestamp``, optimistic concurrency (409 on a stale ``resourceVersion``), label and
field selectors, pagination, merge/JSON patch and strategic merge patch on built-in kinds
(refused on custom resources), watches that resume, send bookmarks and answer 410 once the
history is compacted, CRD registration with ``openAPIV3Schema`` validation and pruning, and
discovery good enough for ``kubectl`` and kubernetes-asyncio. Faithful where kubectl can tell
the difference too: protobuf request bodies of the built-in kinds ``kubectl create`` writes,
``core/v1`` and ``events.k8s.io/v1`` Events as one resource with the server's conversion,
validation, field selectors and table, RBAC kinds, ServiceAccounts (a ``default`` one per
namespace), Services, Pods and Deployments stored, server-side tables with CRD printer
columns (JSONPath filters included). Tests can inject faults and count requests and writes
per object at the server.

Admission webhooks registered as Mutating/ValidatingWebhookConfigurations are called over TLS
(:mod:`ark_mesh.testing.k8s.admission`). Not emulated: authentication/authorization (RBAC objects
are stored, never enforced), pods that run or Deployments that roll out, CEL rules, server-side
apply, protobuf responses and protobuf bodies of other kinds (answered 415), garbage collection
of owned objects, and conversion webhooks.
"""

from ark_mesh.testing.k8s.emulator import KubeEmulator, load_crd_files, write_kubeconfig
from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.faults import FaultInjector, FaultRule
from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError
from ark_mesh.testing.k8s.openapi import FieldError, admit, apply_defaults, prune, validate
from ark_mesh.testing.k8s.process import EmulatorProcess
from ark_mesh.testing.k8s.requestlog import RequestLog, RequestRecord
from ark_mesh.testing.k8s.server import EmulatorConfig
from ark_mesh.testing.k8s.store import ObjectActivity
from ark_mesh.testing.k8s.tracking import ObjectTracker, ObservedChange

__all__ = [
    "ApiError",
    "EmulatorConfig",
    "EmulatorProcess",
    "FaultInjector",
    "FaultRule",
    "FieldError",
    "KubeEmulator",
    "Kubectl",
    "KubectlError",
    "ObjectActivity",
    "ObjectTracker",
    "ObservedChange",
    "RequestLog",
    "RequestRecord",
    "admit",
    "apply_defaults",
    "load_crd_files",
    "prune",
    "validate",
    "write_kubeconfig",
]
