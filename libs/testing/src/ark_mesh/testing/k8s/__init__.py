"""A Kubernetes API server emulator for tests (aiohttp, in-process or as a process).

Faithful where controllers can tell the difference: one global ``resourceVersion``,
``generation`` bumped only by spec changes, the status subresource, finalizers and
``deletionTimestamp``, optimistic concurrency (409 on a stale ``resourceVersion``), label and
field selectors, pagination, merge/JSON patch (strategic merge refused on custom resources),
watches that resume, send bookmarks and answer 410 once the history is compacted, CRD
registration with ``openAPIV3Schema`` validation and pruning, and discovery good enough for
``kubectl`` and kubernetes-asyncio. Tests can inject faults and count requests and writes
per object at the server.

Admission webhooks registered as Mutating/ValidatingWebhookConfigurations are called over TLS
(:mod:`ark_mesh.testing.k8s.admission`). Not emulated: authentication/authorization, CEL rules,
server-side apply, protobuf, garbage collection of owned objects, and conversion webhooks.
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
