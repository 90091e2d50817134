"""EventRecorder: events kubectl finds by involvedObject, through either Events API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ark_mesh.contracts import ObjectMeta, Query, QuerySpec, QueryTarget
from ark_mesh.kube import EVENTS, EventRecorder, KubeClient
from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl


async def make_query(kube: KubeClient, name: str) -> Query:
    return await kube.create(
        Query(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=QuerySpec(input="hi", target=QueryTarget(type="agent", name="a1")),
        )
    )


async def kubectl_events(kubeconfig: Path, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    """``kubectl get events --field-selector involvedObject.name=<name>``, as an operator would."""
    kubectl = Kubectl(kubeconfig, cache_dir=tmp_path / "kube-cache")
    listed = await kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


async def test_events_v1_are_found_by_involved_object(
    kube: KubeClient, kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    query = await make_query(kube, "q1")
    await make_query(kube, "q2")
    recorder = EventRecorder(kube, controller="ark-mesh/controller", instance="pod-0")
    assert await recorder.record(query, "QueryExecutionStart", "Query started")
    assert await recorder.record(query, "QueryExecutionError", "boom" * 400, type="Warning")

    assert kube_emulator.log.count(verb="create", group="events.k8s.io") == 2
    found = await kubectl_events(kube_emulator.kubeconfig_path, tmp_path, "q1")
    assert sorted((e["reason"], e["type"]) for e in found) == [
        ("QueryExecutionError", "Warning"),
        ("QueryExecutionStart", "Normal"),
    ]
    start = next(e for e in found if e["reason"] == "QueryExecutionStart")
    assert start["message"] == "Query started"
    assert start["involvedObject"] == {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "namespace": "default",
        "name": "q1",
        "uid": query.metadata.uid,
        "resourceVersion": query.metadata.resource_version,
    }
    error = next(e for e in found if e["reason"] == "QueryExecutionError")
    assert len(str(error["message"])) == 1024  # truncated to what events.k8s.io accepts
    assert await kubectl_events(kube_emulator.kubeconfig_path, tmp_path, "q2") == []

    through_new_api = await kube.list_objects(EVENTS, "default")
    assert {e["regarding"]["name"] for e in through_new_api.items} == {"q1"}
    assert all(e["reportingController"] == "ark-mesh/controller" for e in through_new_api.items)
