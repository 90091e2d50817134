"""No field of Ark's CRDs is lost: a maximal object of every kind survives the API server and msgspec.

``data/maximal/`` holds one object per kind (a file may hold variants) that sets every field the
kind's CRD declares, spec and status, newest and older Ark shapes alike. The CRDs are generated
from the Structs, so these tests check the whole chain a user's manifest takes: the real
``kubectl`` applies it to the K8s emulator (which prunes and validates like an API server with
the chart's CRDs), the status is written through the status subresource, and what comes back is
what was written; the Structs then decode and re-encode it without losing or renaming anything.
A field added to a Struct without a maximal value fails :func:`test_maximal_objects_set_every_field`.
The same objects, each broken in one field, show that Ark's enums, patterns and bounds are
enforced alike by the CRD and the Struct.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import yaml

from ark_mesh.contracts import KINDS, DecodeError, decode, encode
from ark_mesh.contracts.export import CRD_KINDS, PRINTER_COLUMNS, crd_manifest
from ark_mesh.contracts.resources import Resource
from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl
from ark_mesh.testing.k8s.openapi import validate

MAXIMAL = Path(__file__).parent / "data" / "maximal"
NAMESPACE = "default"


def _objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(MAXIMAL.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


OBJECTS = _objects()
IDS = [f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS]


def _kind(obj: Mapping[str, Any]) -> type[Resource]:
    return KINDS[obj["kind"]]


Field = tuple[type[msgspec.Struct], str]


def _declared_fields(info: mi.Type, seen: set[type[msgspec.Struct]]) -> Iterator[Field]:
    """Every (Struct, field) reachable from a type: the shape the CRD is generated from."""
    if isinstance(info, mi.StructType):
        if info.cls in seen:
            return
        seen.add(info.cls)
        for field in info.fields:
            yield info.cls, field.name
            yield from _declared_fields(field.type, seen)
    elif isinstance(info, mi.UnionType):
        for option in info.types:
            yield from _declared_fields(option, seen)
    elif isinstance(info, mi.ListType):
        yield from _declared_fields(info.item_type, seen)
    elif isinstance(info, mi.DictType):
        yield from _declared_fields(info.value_type, seen)
    elif isinstance(info, mi.Metadata):
        yield from _declared_fields(info.type, seen)


def _written_fields(value: Any) -> Iterator[Field]:
    """Every (Struct, field) a decoded object sets to something other than its default."""
    if isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            item = getattr(value, field.name)
            if item != field.default:
                yield type(value), field.name
                yield from _written_fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _written_fields(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _written_fields(item)


def test_every_crd_kind_has_a_maximal_object() -> None:
    assert {kind.KIND for kind in CRD_KINDS} == {o["kind"] for o in OBJECTS}


@pytest.mark.parametrize("kind", CRD_KINDS, ids=[k.KIND for k in CRD_KINDS])
def test_maximal_objects_set_every_field(kind: type[Resource]) -> None:
    """Every field of every Struct in the kind's spec and status has a value somewhere.

    A Struct has one schema wherever it appears in the CRD, so one value per field is enough.
    """
    info = mi.type_info(kind)
    assert isinstance(info, mi.StructType)
    seen: set[type[msgspec.Struct]] = set()
    declared = {
        item
        for field in info.fields
        if field.name in ("spec", "status")
        for item in _declared_fields(field.type, seen)
    }
    written = {
        item
        for manifest in OBJECTS
        if manifest["kind"] == kind.KIND
        for item in _written_fields(decode(encode(manifest), kind))
        if item[0] is not kind
    }
    missing = sorted(f"{cls.__name__}.{name}" for cls, name in declared - written)
    assert missing == []


@pytest.mark.parametrize("manifest", OBJECTS, ids=IDS)
def test_maximal_object_decodes_and_encodes_losslessly(manifest: dict[str, Any]) -> None:
    obj = decode(encode(manifest), _kind(manifest))
    assert decode(encode(obj), dict) == manifest
    assert decode(encode(obj), _kind(manifest)) == obj


def _resource_name(kind: type[Resource]) -> str:
    return f"{kind.PLURAL}.{kind.VERSION}.{kind.GROUP}"


def _scope(kind: type[Resource]) -> list[str]:
    return ["-n", NAMESPACE] if kind.NAMESPACED else []


@pytest.mark.parametrize("manifest", OBJECTS, ids=IDS)
async def test_maximal_object_round_trips_through_kubectl_unchanged(
    manifest: dict[str, Any], kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    kind = _kind(manifest)
    kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")
    name = manifest["metadata"]["name"]
    without_status = {k: v for k, v in manifest.items() if k != "status"}
    await kubectl.run("create", *_scope(kind), "-f", "-", stdin=json.dumps(without_status))
    if "status" in manifest:
        await kubectl.run(
            "patch",
            _resource_name(kind),
            name,
            *_scope(kind),
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": manifest["status"]}),
        )
    stored = await kubectl.json("get", _resource_name(kind), name, *_scope(kind))
    assert stored.get("spec") == manifest.get("spec")
    assert stored.get("status") == manifest.get("status")
    for key in ("labels", "annotations"):
        assert stored["metadata"].get(key) == manifest["metadata"].get(key)
    # What the server hands back is what ark-mesh's Structs read, field for field.
    assert decode(encode(decode(encode(stored), kind)), dict) == stored
    # ``kubectl get`` prints Ark's columns, filled for a maximal object. Columns that filter
    # the conditions (``[?(@.type=="Available")]``) are left out of the filled check: the
    # emulator's table printer evaluates plain ``.a.b`` paths only.
    table = await kubectl.run("get", _resource_name(kind), name, *_scope(kind))
    header, row = table.stdout.splitlines()
    columns = PRINTER_COLUMNS[kind.KIND]
    assert header.split() == ["NAME", *(column["name"].upper() for column in columns)]
    cells = dict(zip(["Name", *(column["name"] for column in columns)], row.split(), strict=True))
    unfilled = [
        column["name"]
        for column in columns
        if "[?(" not in column["jsonPath"] and cells[column["name"]] == "<none>"
    ]
    assert unfilled == []


INVALID = [
    ("Tool", ("spec", "http", "url"), "ftp://weather.example.com", "spec.http.url"),
    ("Tool", ("spec", "http", "method"), "FETCH", "spec.http.method"),
    ("Tool", ("spec", "http", "timeout"), "1m30s", "spec.http.timeout"),
    ("Tool", ("spec", "mcp", "toolName"), "", "spec.mcp.toolName"),
    ("MCPServer", ("spec", "toolCallTimeout"), "soon", "spec.toolCallTimeout"),
    ("MCPServer", ("status", "authorization", "state"), "Maybe", "status.authorization.state"),
    ("Model", ("spec", "config", "bedrock", "maxTokens"), 0, "spec.config.bedrock.maxTokens"),
    (
        "Model",
        ("spec", "config", "bedrock", "temperature"),
        "1.5",
        "spec.config.bedrock.temperature",
    ),
    ("Agent", ("spec", "modelRef", "name"), "", "spec.modelRef.name"),
    ("Agent", ("spec", "a2aPod", "port"), "http", "spec.a2aPod.port"),
    ("A2AServer", ("spec", "endpointResolution"), "dns", "spec.endpointResolution"),
    ("Memory", ("status", "phase"), "Ready", "status.phase"),
    ("Query", ("spec", "memory", "name"), "", "spec.memory.name"),
    ("Evaluator", ("spec", "selector", "resourceType"), "Agent", "spec.selector.resourceType"),
    ("Evaluation", ("spec", "type"), "vibes", "spec.type"),
    ("Evaluation", ("status", "score"), "1.5", "status.score"),
    ("A2ATask", ("spec", "taskId"), "", "spec.taskId"),
    ("A2ATask", ("status", "phase"), "done", "status.phase"),
    ("A2ATask", ("status", "protocolState"), "sleeping", "status.protocolState"),
]


@pytest.mark.parametrize(
    ("kind_name", "path", "value", "field"), INVALID, ids=[i[3] for i in INVALID]
)
def test_arks_schema_rules_are_enforced_by_the_crd_and_the_struct(
    kind_name: str, path: tuple[str, ...], value: Any, field: str
) -> None:
    """Enums, patterns, bounds and non-empty names of Ark's CRDs hold on both sides."""
    manifest = copy.deepcopy(next(o for o in OBJECTS if o["kind"] == kind_name))
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    kind = _kind(manifest)
    schema = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert [error.field for error in validate(schema, manifest)] == [field]
    with pytest.raises(DecodeError) as caught:
        decode(encode(manifest), kind)
    assert f"$.{field}" in caught.value.reason
