"""Where :class:`LocalMesh` used to live: it moved to :mod:`ark_mesh.devmesh`.

Kept as a thin re-export because runners outside this repository import
``from ark_mesh.testing.mesh import LocalMesh``. It needs ``ark-mesh-devmesh`` installed (the
workspace's dev group has it); ``ark-mesh-testing`` does not depend on it, since the dev mesh
depends on this package for its servers.
"""

from ark_mesh.devmesh import (
    CRDS,
    MODULES,
    PRESETS,
    LocalMesh,
    Preset,
    register_webhooks,
    register_webhooks_with,
)

CHART_CRDS = CRDS
"""Old name of :data:`ark_mesh.devmesh.CRDS`."""

__all__ = [
    "CHART_CRDS",
    "MODULES",
    "PRESETS",
    "LocalMesh",
    "Preset",
    "register_webhooks",
    "register_webhooks_with",
]
