"""Emulator tests register the chart's CRDs plus a small CRD of their own (``crds/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def kube_crd_paths(request: pytest.FixtureRequest) -> list[Path]:
    chart = request.config.rootpath / "helm" / "ark-mesh" / "crds"
    return [HERE / "crds", *([chart] if chart.is_dir() else [])]
