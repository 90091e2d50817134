"""Every preset of the local mesh enforces Ark's admission, through the real kubectl.

The controller process serves the webhooks over TLS and the emulator process calls them, as a
cluster's API server would; a valid object still runs to completion (status writes are never
sent to the webhooks).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError

pytestmark = pytest.mark.slow


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize("preset", ["simple", "scale-flexible", "scale-strict"])
async def test_the_preset_refuses_invalid_objects_and_defaults_valid_ones(
    start_mesh: Any, preset: str, tmp_path: Any
) -> None:
    mesh, probe = await start_mesh(preset=preset)
    kubectl = Kubectl(mesh.kubeconfig, cache_dir=tmp_path / "kubectl-cache")

    with pytest.raises(KubectlError) as refused:
        await kubectl.run("apply", "-f", "-", stdin=manifest("Query", "nowhere", {"input": "hi"}))
    assert (
        'admission webhook "vquery-v1.kb.io" denied the request: target or selector must be '
        "specified" in refused.value.result.stderr
    )

    await kubectl.run("apply", "-f", "-", stdin=manifest("Agent", "plain", {"prompt": "Be brief."}))
    agent = yaml.safe_load((await kubectl.run("get", "agent", "plain", "-o", "yaml")).stdout)
    assert agent["spec"]["modelRef"] == {"name": "default"}

    query = manifest(
        "Query", "asks-plain", {"input": "Hello", "target": {"type": "agent", "name": "plain"}}
    )
    await kubectl.run("apply", "-f", "-", stdin=query)
    done = await probe.wait_phase("asks-plain", "done", "error")
    assert done.status is not None
    assert done.status.phase == "done"
    assert done.spec.ttl == "720h0m0s"
