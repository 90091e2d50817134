"""The presets: what each preset name means, for the local mesh and the Helm chart alike.

One table, ``helm/ark-mesh/presets.yaml``: the chart's ``_helpers.tpl`` reads it with
``.Files.Get`` and this module loads the copy packaged next to it (``make schemas`` refreshes
the copy; ``tests/test_package.py`` fails when the two differ). A preset with ``bus`` runs
every service on NATS; without, the controller alone.
"""

from __future__ import annotations

from importlib import resources
from typing import Final, Literal, TypedDict

import yaml

__all__ = ["EVERY_SERVICE", "MODULES", "PRESETS", "Preset", "PresetSpec"]

Preset = Literal["simple", "scale-flexible", "scale-strict"]


class PresetSpec(TypedDict):
    default_reconciliation: str
    allowed_modes: list[str]
    bus: bool
    services: tuple[str, ...]


MODULES: Final[dict[str, str]] = {
    "controller": "ark_mesh.controller",
    "query-reconciler": "ark_mesh.query_reconciler",
    "status-sync": "ark_mesh.status_sync",
    "broker": "ark_mesh.broker",
    "responses-reconciler": "ark_mesh.responses_reconciler",
    "embeddings-reconciler": "ark_mesh.embeddings_reconciler",
}
"""The module each service runs as (``python -m <module> --config <file>``), as in the chart."""

EVERY_SERVICE: Final = tuple(MODULES)


def _load() -> dict[str, PresetSpec]:
    table = yaml.safe_load((resources.files("ark_mesh.devmesh") / "presets.yaml").read_text())
    return {
        name: {
            "default_reconciliation": str(entry["defaultReconciliation"]),
            "allowed_modes": [str(mode) for mode in entry["allowedModes"]],
            "bus": bool(entry["bus"]),
            "services": EVERY_SERVICE if entry["bus"] else ("controller",),
        }
        for name, entry in table.items()
    }


PRESETS: Final[dict[str, PresetSpec]] = _load()
