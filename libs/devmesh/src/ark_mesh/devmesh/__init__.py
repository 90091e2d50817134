"""The whole ark-mesh on one machine: :class:`LocalMesh`, the presets, and the CRDs it installs.

``ark-mesh dev`` (what ``make run`` calls) and the end-to-end tests start the mesh through
:class:`LocalMesh`; the servers it runs besides the services (nats-server, the Kubernetes API
emulator, the fake model) come from ``ark_mesh.testing``, which this package uses without pytest.

The mesh module (and the service, Kubernetes and bus code it imports) loads on first use, so
``ark-mesh --help`` and the first line of ``ark-mesh dev`` do not wait for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ark_mesh.devmesh.presets import MODULES, PRESETS, Preset, PresetSpec

if TYPE_CHECKING:
    from ark_mesh.devmesh.mesh import (
        CRDS,
        LocalMesh,
        ReadyCallback,
        register_webhooks,
        register_webhooks_with,
    )

__all__ = [
    "CRDS",
    "MODULES",
    "PRESETS",
    "LocalMesh",
    "Preset",
    "PresetSpec",
    "ReadyCallback",
    "register_webhooks",
    "register_webhooks_with",
]

_LAZY = frozenset(
    {"CRDS", "LocalMesh", "ReadyCallback", "register_webhooks", "register_webhooks_with"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("ark_mesh.devmesh.mesh"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
