"""The in-memory ResourceStore, from objects and from a directory of manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ark_mesh.contracts import Agent, ConfigMap, Model, Tool
from ark_mesh.resolver import InMemoryResourceStore, ManifestError, MCPServer

MANIFESTS = """
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: {name: default, namespace: ns1}
spec:
  provider: openai
  model: {value: gpt-4o}
  config:
    openai:
      baseUrl: {value: "http://llm/v1"}
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata:
  name: helper
  labels: {role: helper}
spec:
  prompt: hi
  tools:
    - {type: mcp, name: calc-add}
---
apiVersion: v1
kind: Service
metadata: {name: ignored}
"""

MORE = """
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: ns1}
    data: {city: Rome}
  - apiVersion: ark.mckinsey.com/v1alpha1
    kind: MCPServer
    metadata: {name: calc, namespace: ns1}
    spec: {address: {value: "http://mcp/mcp"}}
"""


async def test_store_loads_a_directory_of_manifests(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MANIFESTS)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.yml").write_text(MORE)
    (tmp_path / "README.md").write_text("not a manifest")
    store = InMemoryResourceStore.from_path(tmp_path, namespace="ns1")
    model = await store.get(Model, "ns1", "default")
    assert model is not None
    assert model.spec.model.value == "gpt-4o"
    agent = await store.get(Agent, "ns1", "helper")
    assert agent is not None
    assert agent.spec.tools is not None
    assert agent.spec.tools[0].name == "calc-add"
    config_map = await store.get(ConfigMap, "ns1", "settings")
    assert config_map is not None
    assert config_map.data == {"city": "Rome"}
    assert await store.get(MCPServer, "ns1", "calc") is not None
    assert store.skipped == [f"{tmp_path / 'a.yaml'} document 2: kind 'Service'"]
    assert [
        a.metadata.name for a in await store.list(Agent, "ns1", {"matchLabels": {"role": "helper"}})
    ] == ["helper"]
    assert await store.list(Agent, "ns1", {"matchLabels": {"role": "x"}}) == []
    assert await store.list(Agent, "other", None) == []
    assert await store.get(Tool, "ns1", "helper") is None


def test_invalid_manifest_names_file_resource_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: ark.mckinsey.com/v1alpha1\nkind: Model\nmetadata: {name: broken}\nspec: {provider: openai}\n"
    )
    with pytest.raises(
        ManifestError, match=r"bad\.yaml: Model 'broken' is invalid: .*`model`.*spec"
    ):
        InMemoryResourceStore.from_path(tmp_path)
