"""KubeClient: typed access to contracts Structs through a real API server."""

from __future__ import annotations

import pytest

from ark_mesh.contracts import Agent, ConfigMap, ObjectMeta, Query, QuerySpec, QueryTarget
from ark_mesh.kube import (
    AlreadyExistsError,
    ApiResource,
    ConflictError,
    InvalidError,
    KubeClient,
    NotFoundError,
    RequestRejectedError,
)
from ark_mesh.testing.k8s import KubeEmulator


def make_query(name: str, *, labels: dict[str, str] | None = None) -> Query:
    return Query(
        metadata=ObjectMeta(name=name, namespace="default", labels=labels),
        spec=QuerySpec(input="hello", target=QueryTarget(type="agent", name="a1")),
    )


async def test_create_get_round_trip_decodes_into_structs(kube: KubeClient) -> None:
    created = await kube.create(make_query("q1"))
    assert isinstance(created, Query)
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.generation == 1
    fetched = await kube.get(Query, "default", "q1")
    assert fetched.spec.target == QueryTarget(type="agent", name="a1")
    assert fetched.spec.type == "user"  # the CRD default, filled in by the server
    assert fetched.metadata.uid == created.metadata.uid


async def test_errors_are_typed(kube: KubeClient) -> None:
    with pytest.raises(NotFoundError):
        await kube.get(Query, "default", "missing")
    await kube.create(make_query("dup"))
    with pytest.raises(AlreadyExistsError):
        await kube.create(make_query("dup"))
    bad = await kube.get_object(ApiResource.of(Query), "default", "dup")
    bad["spec"]["target"]["type"] = "robot"
    with pytest.raises(InvalidError) as invalid:
        await kube.replace_object(ApiResource.of(Query), "default", "dup", bad)
    assert [c.field for c in invalid.value.causes] == ["spec.target.type"]
    stale = await kube.get_object(ApiResource.of(Query), "default", "dup")
    await kube.patch(Query, "default", "dup", {"spec": {"input": "moved"}})
    with pytest.raises(ConflictError):
        await kube.replace_object(ApiResource.of(Query), "default", "dup", stale)
    with pytest.raises(RequestRejectedError) as rejected:
        await kube.patch(
            Query,
            "default",
            "dup",
            {"spec": {}},
            patch_type="application/strategic-merge-patch+json",
        )
    assert rejected.value.code == 415


async def test_list_with_label_selector_objects_and_pages(
    kube_emulator: KubeEmulator, kube_emulator_config: object
) -> None:
    client = await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path))
    paged = KubeClient(client.transport, page_size=2)
    async with client:
        for index, tier in enumerate(["gold", "silver", "gold", "bronze", "gold"]):
            await paged.create(make_query(f"q{index}", labels={"tier": tier, "app": "demo"}))
        everything = await paged.list(Query, "default")
        assert [q.metadata.name for q in everything] == [f"q{i}" for i in range(5)]
        assert kube_emulator.log.count(verb="list", resource="queries") == 3  # 2 + 2 + 1
        selected = await paged.list(
            Query,
            "default",
            label_selector={
                "matchLabels": {"app": "demo"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}],
            },
        )
        assert [q.metadata.name for q in selected] == ["q1", "q3"]
        across = await paged.list(Query, None, label_selector="tier=gold")
        assert [q.metadata.name for q in across] == ["q0", "q2", "q4"]


async def test_core_kinds_decode(kube: KubeClient) -> None:
    await kube.create(
        ConfigMap(metadata=ObjectMeta(name="cfg", namespace="default"), data={"k": "v"})
    )
    listed = await kube.list(ConfigMap, "default")
    assert [(c.metadata.name, c.data) for c in listed] == [("cfg", {"k": "v"})]
    agent = await kube.create(Agent(metadata=ObjectMeta(name="a1", namespace="default")))
    assert agent.kind == "Agent"
    assert agent.metadata.generation == 1
