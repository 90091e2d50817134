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


async def test_repeats_fold_into_a_series_that_kubectl_shows(
    kube: KubeClient, kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    query = await make_query(kube, "q4")
    recorder = EventRecorder(kube, controller="ark-mesh/controller", instance="pod-0")
    for _ in range(3):
        assert await recorder.record(query, "QueryResolved", "resolved")
    assert await recorder.record(query, "QueryResolved", "resolved", action="Retry")

    # one create and two series patches for the repeats, a new event for the other action
    assert kube_emulator.log.count(verb="create", group="events.k8s.io") == 2
    assert kube_emulator.log.count(verb="patch", group="events.k8s.io") == 2
    [folded] = [
        e
        for e in (await kube.list_objects(EVENTS, "default")).items
        if e["action"] == "QueryResolved"
    ]
    assert folded["series"]["count"] == 3
    assert folded["series"]["lastObservedTime"] >= folded["eventTime"]
    assert folded["reportingInstance"] == "pod-0"
    assert "deprecatedCount" not in folded  # events.k8s.io/v1 refuses it on create

    kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")
    sorted_table = await kubectl.run("get", "events", "-n", "default", "--sort-by=.lastTimestamp")
    assert len(sorted_table.stdout.splitlines()) == 3  # header and the two events
    wide = await kubectl.run("get", "events", "-n", "default", "-o", "wide")
    counts = sorted(row.split()[-2] for row in wide.stdout.splitlines()[1:])
    assert counts == ["1", "3"]
    for_query = await kubectl.run("events", "-n", "default", "--for", "query/q4")
    rows = for_query.stdout.splitlines()[1:]
    assert len(rows) == 2
    assert any("(x3 over" in row for row in rows)
    found = await kubectl_events(kube_emulator.kubeconfig_path, tmp_path, "q4")
    assert {e["source"].get("component") for e in found} == {None}
    assert {e["reportingComponent"] for e in found} == {"ark-mesh/controller"}


async def test_a_repeat_of_a_deleted_event_records_a_new_one(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    query = await make_query(kube, "q5")
    recorder = EventRecorder(kube, controller="ark-mesh/controller", instance="pod-0")
    assert await recorder.record(query, "QueryResolved", "resolved")
    [first] = (await kube.list_objects(EVENTS, "default")).items
    await kube.delete_object(EVENTS, "default", first["metadata"]["name"])
    assert await recorder.record(query, "QueryResolved", "resolved")
    [second] = (await kube.list_objects(EVENTS, "default")).items
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert "series" not in second
