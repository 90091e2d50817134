"""EventRecorder on a cluster that does not serve events.k8s.io/v1: core/v1 fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ark_mesh.contracts import ObjectMeta, Query, QuerySpec, QueryTarget
from ark_mesh.kube import CORE_EVENTS, EventRecorder, KubeClient
from ark_mesh.testing.k8s import EmulatorConfig, KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl


@pytest.fixture
def kube_emulator_config() -> EmulatorConfig:
    """An emulator with events.k8s.io/v1 turned off, like an old or trimmed-down cluster."""
    return EmulatorConfig(bookmark_interval=0.5, disabled_apis=("events.k8s.io/v1",))


async def test_falls_back_to_core_v1_when_events_api_is_not_served(
    kube: KubeClient, kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    query = await kube.create(
        Query(
            metadata=ObjectMeta(name="q3", namespace="default"),
            spec=QuerySpec(input="hi", target=QueryTarget(type="agent", name="a1")),
        )
    )
    recorder = EventRecorder(kube, controller="ark-mesh/controller", instance="pod-0")
    assert await recorder.record(query, "QueryExecutionComplete", "done")
    assert await recorder.record(query, "QueryExecutionComplete", "done again")
    # one failed attempt at events.k8s.io, then straight to core/v1
    assert len([r for r in kube_emulator.log if "events.k8s.io" in r.path]) == 1
    assert kube_emulator.log.count(verb="create", resource="events", group="") == 2
    kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")
    listed_by_kubectl = await kubectl.json(
        "get", "events", "-n", "default", "--field-selector", "involvedObject.name=q3"
    )
    found: list[dict[str, Any]] = listed_by_kubectl["items"]
    assert sorted(e["message"] for e in found) == ["done", "done again"]
    assert all(e["source"] == {"component": "ark-mesh/controller"} for e in found)
    listed = await kube.list_objects(
        CORE_EVENTS, "default", field_selector="reason=QueryExecutionComplete"
    )
    assert len(listed.items) == 2


async def test_core_v1_repeats_count_up_like_the_event_correlator(
    kube: KubeClient, kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    query = await kube.create(
        Query(
            metadata=ObjectMeta(name="q6", namespace="default"),
            spec=QuerySpec(input="hi", target=QueryTarget(type="agent", name="a1")),
        )
    )
    recorder = EventRecorder(kube, controller="ark-mesh/controller", instance="pod-0")
    for _ in range(3):
        assert await recorder.record(query, "QueryExecutionComplete", "done", type="Warning")
    assert kube_emulator.log.count(verb="create", resource="events", group="") == 1
    assert kube_emulator.log.count(verb="patch", resource="events", group="") == 2
    [event] = (await kube.list_objects(CORE_EVENTS, "default")).items
    assert event["count"] == 3
    assert event["firstTimestamp"] <= event["lastTimestamp"]
    assert event["reportingComponent"] == "ark-mesh/controller"
    assert event["reportingInstance"] == "pod-0"
    kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")
    shown = await kubectl.run("events", "-n", "default", "--for", "query/q6")
    assert "(x3 over" in shown.stdout
