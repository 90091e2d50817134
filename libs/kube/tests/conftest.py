"""Every kube adapter test talks to a real HTTP API server: the project's emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ark_mesh.kube import KubeClient
from ark_mesh.testing.k8s import KubeEmulator


@pytest.fixture
async def kube(kube_emulator: KubeEmulator) -> AsyncIterator[KubeClient]:
    """A KubeClient configured the way services are: from a kubeconfig file."""
    client = await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path))
    async with client:
        yield client
