"""Where resources and memory come from: a Kubernetes watch cache (the K8s emulator) or a
directory of manifests; conversation history on JetStream."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import yaml

from ark_mesh.bus import StreamReader
from ark_mesh.contracts import (
    Agent,
    ConversationMessages,
    Model,
    QueryTarget,
    decoder_for,
    subjects,
)
from ark_mesh.kube import ApiResource, KubeClient
from ark_mesh.service import ResourcesConfig, ResourceSourceError, open_resources
from ark_mesh.testing.k8s import KubeEmulator


async def test_resources_from_a_manifests_directory(mesh: Any, tmp_path: Any) -> None:
    directory = tmp_path / "more"
    directory.mkdir()
    documents = yaml.safe_load_all((mesh.write_manifests() / "resources.yaml").read_text())
    agent = next(d for d in documents if d["kind"] == "Agent")
    agent["metadata"]["name"] = "from-files"
    agent["metadata"].pop("namespace")  # lands in the configured default namespace
    (directory / "agent.yml").write_text(yaml.safe_dump(agent))
    (directory / "model.yaml").write_text((mesh.write_manifests() / "resources.yaml").read_text())
    (directory / "other.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    config = mesh.config()
    resources = msgspec.structs.replace(config.resources, manifests=str(directory))
    await mesh.start(msgspec.structs.replace(config, resources=resources))
    request = mesh.request(target=QueryTarget(type="agent", name="from-files"))
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert outcome.statuses[-1].phase == "done"
    assert outcome.chunks[-1].ark.target == "agent/from-files"


async def test_a_missing_manifests_directory_is_named(tmp_path: Any) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ResourceSourceError, match="nowhere does not exist"):
        await open_resources(ResourcesConfig(source="manifests", manifests=str(missing)))
    with pytest.raises(ResourceSourceError, match="names no file"):
        await open_resources(ResourcesConfig(source="manifests"))
    with pytest.raises(ResourceSourceError, match="unknown kind"):
        await open_resources(ResourcesConfig(preload=("Agent", "Gadget")))


async def test_resources_from_the_kubernetes_watch_cache(
    mesh: Any, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.ensure_namespace(mesh.tenant)
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as kube:
        for document in yaml.safe_load_all((mesh.write_manifests() / "resources.yaml").read_text()):
            kind = Model if document["kind"] == "Model" else Agent
            await kube.create_object(ApiResource.of(kind), mesh.tenant, document)
    config = mesh.config(
        resources=ResourcesConfig(
            source="kubernetes",
            kubeconfig=str(kube_emulator.kubeconfig_path),
            namespace=mesh.tenant,
        )
    )
    service = await mesh.start(config)
    assert service.resources is not None
    assert service.resources.ready()
    request = mesh.request()
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert outcome.statuses[-1].phase == "done"
    assert outcome.content == "Echo: Hello there"


async def test_two_queries_sharing_a_conversation_see_each_others_history(mesh: Any) -> None:
    await mesh.start(mesh.memory_config())
    first = mesh.request("first", input="My name is Ada")
    await mesh.submit(first)
    first_outcome = await mesh.outcome(first)
    conversation_id = first_outcome.statuses[-1].status.conversation_id
    assert conversation_id is not None

    second = mesh.request("second", input="What is my name?", conversation_id=conversation_id)
    await mesh.submit(second)
    second_outcome = await mesh.outcome(second)

    assert second_outcome.statuses[-1].status.conversation_id == conversation_id
    messages = mesh.fake.requests_to("chat")[-1].body["messages"]
    contents = [message.get("content") for message in messages]
    assert "My name is Ada" in contents
    assert "Echo: My name is Ada" in contents
    assert contents[-1] == "What is my name?"
    reader = StreamReader(mesh.bus, subjects.ARK_MEMORY)
    records = [
        entry.message
        async for entry in reader.read(
            subjects.memory(mesh.tenant, conversation_id),
            decoder=decoder_for(ConversationMessages),
            caught_up=True,
            idle_timeout=10.0,
        )
    ]
    assert [record.query_id for record in records] == ["first", "second"]
    assert records[1].messages[-1]["content"] == "Echo: What is my name?"


async def test_a_fresh_conversation_starts_without_history(mesh: Any) -> None:
    await mesh.start(mesh.memory_config())
    request = mesh.request(input="Hi", conversation_id="brand-new")
    await mesh.submit(request)

    outcome = await mesh.outcome(request)

    assert outcome.statuses[-1].status.conversation_id == "brand-new"
    messages = mesh.fake.requests_to("chat")[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "MemoryGetMessagesComplete" in outcome.reasons()
