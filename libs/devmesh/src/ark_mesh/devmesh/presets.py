"""The presets' table: what each preset name means, for the local mesh and the Helm chart.

The chart (``helm/ark-mesh/templates/_helpers.tpl``) states the same three presets in Go
templates; ``tests/deploy/test_chart.py`` renders the chart per preset and asserts it deploys
exactly these services with these reconciliation modes, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final, Literal, TypedDict

__all__ = ["MODULES", "PRESETS", "Preset", "PresetSpec"]

Preset = Literal["simple", "scale-flexible", "scale-strict"]


class PresetSpec(TypedDict):
    default_reconciliation: str
    allowed_modes: list[str]
    services: tuple[str, ...]


_EVERY_SERVICE: Final = (
    "controller",
    "query-reconciler",
    "status-sync",
    "broker",
    "responses-reconciler",
    "embeddings-reconciler",
)

PRESETS: Final[dict[str, PresetSpec]] = {
    "simple": {
        "default_reconciliation": "inController",
        "allowed_modes": ["inController"],
        "services": ("controller",),
    },
    "scale-flexible": {
        "default_reconciliation": "standalone",
        "allowed_modes": ["inController", "standalone"],
        "services": _EVERY_SERVICE,
    },
    "scale-strict": {
        "default_reconciliation": "standalone",
        "allowed_modes": ["standalone", "broker"],
        "services": _EVERY_SERVICE,
    },
}

MODULES: Final[dict[str, str]] = {
    "controller": "ark_mesh.controller",
    "query-reconciler": "ark_mesh.query_reconciler",
    "status-sync": "ark_mesh.status_sync",
    "broker": "ark_mesh.broker",
    "responses-reconciler": "ark_mesh.responses_reconciler",
    "embeddings-reconciler": "ark_mesh.embeddings_reconciler",
}
"""The module each service runs as (``python -m <module> --config <file>``), as in the chart."""
