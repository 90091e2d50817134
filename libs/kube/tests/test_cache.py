"""ResourceCache: the resolver's ResourceStore port, served from a watch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import pytest

from ark_mesh.contracts import Agent, AgentSpec, Model, ObjectMeta, Resource, Team
from ark_mesh.kube import ApiResource, KubeClient, NotFoundError, ResourceCache
from ark_mesh.testing.k8s import KubeEmulator

R = TypeVar("R", bound=Resource)


class ResourceStore(Protocol):
    """The resolver's port, restated here: the adapter must not import the resolver."""

    async def get(self, kind: type[R], namespace: str, name: str) -> R | None: ...

    async def list(
        self, kind: type[R], namespace: str, label_selector: Mapping[str, Any] | None = None
    ) -> list[R]: ...


def agent(name: str, labels: dict[str, str] | None = None, prompt: str = "be brief") -> Agent:
    return Agent(
        metadata=ObjectMeta(name=name, namespace="default", labels=labels),
        spec=AgentSpec(prompt=prompt),
    )


async def test_serves_get_and_list_from_the_watch(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    await kube.create(agent("a1", {"role": "writer"}))
    await kube.create(agent("a2", {"role": "critic"}))
    await kube.create(agent("a3"))
    async with ResourceCache(kube, kinds=[Agent]) as cache:
        store: ResourceStore = cache
        listed_before = kube_emulator.log.count(verb="list", resource="agents")
        found = await store.get(Agent, "default", "a1")
        assert found is not None
        assert found.spec.prompt == "be brief"
        assert await store.get(Agent, "default", "nope") is None
        writers = await store.list(
            Agent, "default", {"matchExpressions": [{"key": "role", "operator": "Exists"}]}
        )
        assert [a.metadata.name for a in writers] == ["a1", "a2"]
        assert [a.metadata.name for a in await store.list(Agent, "default")] == ["a1", "a2", "a3"]
        assert await store.list(Agent, "other") == []
        # answered from memory: no further list requests reached the server
        assert kube_emulator.log.count(verb="list", resource="agents") == listed_before
        assert kube_emulator.log.count(verb="get", resource="agents") == 0

        await kube.patch(Agent, "default", "a1", {"spec": {"prompt": "be verbose"}})
        async with asyncio.timeout(30):
            changed = await cache.wait_for(
                Agent, "default", "a1", lambda a: a is not None and a.spec.prompt == "be verbose"
            )
        assert changed is not None
        assert changed.metadata.generation == 2
        await kube.delete(Agent, "default", "a2")
        async with asyncio.timeout(30):
            assert await cache.wait_for(Agent, "default", "a2", lambda a: a is None) is None


async def test_kinds_start_on_first_use(kube: KubeClient, kube_emulator: KubeEmulator) -> None:
    await kube.create_object(
        ApiResource.of(Model),
        "default",
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m1", "namespace": "default"},
            "spec": {
                "model": {"value": "gpt-4o"},
                "type": "openai",
                "config": {"openai": {"baseUrl": {"value": "http://x"}, "apiKey": {"value": "k"}}},
            },
        },
    )
    async with ResourceCache(kube) as cache:
        assert kube_emulator.log.count(verb="list", resource="models") == 0
        model = await cache.get(Model, "default", "m1")
        assert model is not None
        assert model.metadata.name == "m1"
        assert kube_emulator.log.count(verb="list", resource="models") == 1


async def test_a_namespaced_cache_refuses_other_namespaces(kube: KubeClient) -> None:
    async with ResourceCache(kube, namespace="default") as cache:
        with pytest.raises(ValueError, match="follows namespace 'default'"):
            await cache.get(Agent, "elsewhere", "a")


async def test_transient_list_failures_are_retried(
    kube: KubeClient, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.faults.fail(500, verb="list", path="/agents$", times=2)
    async with ResourceCache(kube) as cache:
        assert await cache.list(Agent, "default") == []
    assert kube_emulator.log.count(verb="list", resource="agents", status=500) == 2


async def test_a_kind_the_server_does_not_serve_fails_loudly(kube: KubeClient) -> None:
    crds = ApiResource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
    )
    await kube.delete_object(crds, None, "teams.ark.mckinsey.com")
    async with ResourceCache(kube) as cache:
        with pytest.raises(NotFoundError, match="could not find the requested resource"):
            await cache.get(Team, "default", "t1")
        assert isinstance(cache.failure(Team), NotFoundError)
