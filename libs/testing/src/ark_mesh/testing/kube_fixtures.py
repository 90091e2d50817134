"""pytest fixtures for the Kubernetes API emulator.

* ``kube_emulator`` — an in-process :class:`~ark_mesh.testing.k8s.KubeEmulator` on a free
  127.0.0.1 port with the project's CRDs registered; it has ``.url``, ``.kubeconfig_path``,
  ``.faults``, ``.log``, ``.activity(...)``, ``.drop_watches()`` and ``.compact()``.
* ``kube_emulator_process`` — the same server as a real subprocess
  (:class:`~ark_mesh.testing.k8s.process.EmulatorProcess`), driven over its control endpoint.
* ``kube_crd_paths`` / ``kube_emulator_config`` — override these in a ``conftest.py`` to
  choose other CRDs or settings.

The project's CRDs are found at ``helm/ark-mesh/crds`` under pytest's root directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ark_mesh.testing.k8s.emulator import KubeEmulator
from ark_mesh.testing.k8s.process import EmulatorProcess
from ark_mesh.testing.k8s.server import EmulatorConfig

__all__ = [
    "kube_crd_paths",
    "kube_emulator",
    "kube_emulator_config",
    "kube_emulator_process",
]

CHART_CRDS = Path("helm") / "ark-mesh" / "crds"


@pytest.fixture
def kube_crd_paths(request: pytest.FixtureRequest) -> list[Path]:
    """The CRD files/directories the emulator fixtures register (the chart's CRDs)."""
    crds = request.config.rootpath / CHART_CRDS
    return [crds] if crds.is_dir() else []


@pytest.fixture
def kube_emulator_config() -> EmulatorConfig:
    """Settings of the emulator fixtures; a short bookmark interval keeps watch tests quick."""
    return EmulatorConfig(bookmark_interval=0.5)


@pytest.fixture
async def kube_emulator(
    tmp_path: Path, kube_crd_paths: list[Path], kube_emulator_config: EmulatorConfig
) -> AsyncIterator[KubeEmulator]:
    emulator = KubeEmulator(
        crd_paths=kube_crd_paths,
        config=kube_emulator_config,
        kubeconfig_path=tmp_path / "kubeconfig",
    )
    async with emulator:
        yield emulator


@pytest.fixture
async def kube_emulator_process(
    tmp_path: Path, kube_crd_paths: list[Path], kube_emulator_config: EmulatorConfig
) -> AsyncIterator[EmulatorProcess]:
    process = EmulatorProcess(
        crd_paths=kube_crd_paths,
        kubeconfig_path=tmp_path / "kubeconfig-process",
        history_size=kube_emulator_config.history_size,
        bookmark_interval=kube_emulator_config.bookmark_interval,
    )
    async with process:
        yield process
