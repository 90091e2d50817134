"""The CRDs and the Structs agree: what one accepts the other accepts, and both reject bad types.

Objects are checked the way the API server checks them (prune, default, validate against the
CRD's openAPIV3Schema, using the K8s emulator's validator) and the way ark-mesh decodes them
(msgspec Structs).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from ark_mesh.contracts import KINDS, DecodeError, decode, encode
from ark_mesh.contracts.export import CRD_KINDS, crd_manifest
from ark_mesh.testing.k8s.openapi import admit, prune, validate

SCHEMAS = {
    kind.KIND: crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for kind in CRD_KINDS
}


def test_every_crd_kind_has_a_sample(sample: dict[str, Any]) -> None:
    assert sample["kind"] in SCHEMAS


def test_sample_is_accepted_by_both_unchanged(sample: dict[str, Any]) -> None:
    schema = SCHEMAS[sample["kind"]]
    assert validate(schema, sample) == []
    # The server keeps spec and status as written: the CRD declares every field the Struct has.
    pruned = prune(schema, sample)
    assert (pruned.get("spec"), pruned.get("status")) == (sample.get("spec"), sample.get("status"))
    obj = decode(encode(sample), KINDS[sample["kind"]])
    assert decode(encode(obj), dict) == sample
    stored, errors = admit(schema, sample)
    assert errors == []
    assert decode(encode(stored), KINDS[sample["kind"]]).spec is not None


def test_server_defaults_are_what_the_structs_default() -> None:
    minimal = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": "m"},
        "spec": {"input": "hi", "target": {"type": "model", "name": "x"}},
    }
    stored, errors = admit(SCHEMAS["Query"], minimal)
    assert errors == []
    assert stored["spec"]["type"] == "user"
    # The Struct leaves what the user did not write unset; the server's default reads back fine.
    assert decode(encode(minimal), KINDS["Query"]).spec.type is None
    assert decode(encode(stored), KINDS["Query"]).spec.type == "user"


def test_raw_json_input_and_output_schema_survive_pruning(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    query = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": "m"},
        "spec": {"input": [{"role": "user", "content": "hi"}], "type": "messages"},
    }
    stored, errors = admit(SCHEMAS["Query"], query)
    assert errors == []
    assert stored["spec"]["input"] == [{"role": "user", "content": "hi"}]
    agent = load_sample("agent-tools.yaml")
    stored, _ = admit(SCHEMAS["Agent"], agent)
    assert stored["spec"]["outputSchema"] == agent["spec"]["outputSchema"]


BAD = [
    ("query-done-a2a.yaml", ("spec", "target", "type"), "bogus", "spec.target.type"),
    ("query-done-a2a.yaml", ("spec", "timeout"), 300, "spec.timeout"),
    ("query-done-a2a.yaml", ("status", "phase"), "finished", "status.phase"),
    (
        "query-done-a2a.yaml",
        ("status", "tokenUsage", "totalTokens"),
        "many",
        "status.tokenUsage.totalTokens",
    ),
    ("query-selector-secret-params.yaml", ("spec", "cancel"), "yes", "spec.cancel"),
    ("team-selector.yaml", ("spec", "strategy"), "democracy", "spec.strategy"),
    ("team-selector.yaml", ("spec", "maxTurns"), "six", "spec.maxTurns"),
    ("model-azure.yaml", ("spec", "provider"), "gemini", "spec.provider"),
    ("agent-tools.yaml", ("spec", "tools"), {"not": "a list"}, "spec.tools"),
    ("tool-http.yaml", ("spec", "type"), "shell", "spec.type"),
    ("memory.yaml", ("spec", "address"), "http://x", "spec.address"),
]


@pytest.mark.parametrize(("name", "path", "value", "field"), BAD, ids=[b[3] for b in BAD])
def test_wrong_type_is_rejected_by_both(
    load_sample: Callable[[str], dict[str, Any]],
    name: str,
    path: tuple[str, ...],
    value: Any,
    field: str,
) -> None:
    manifest = copy.deepcopy(load_sample(name))
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = validate(SCHEMAS[manifest["kind"]], manifest)
    assert [e.field for e in errors] == [field], errors
    with pytest.raises(DecodeError) as caught:
        decode(encode(manifest), KINDS[manifest["kind"]])
    assert f"$.{field}" in caught.value.reason


def test_missing_required_field_is_rejected_by_both(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    manifest = load_sample("query-done-a2a.yaml")
    del manifest["spec"]["input"]
    errors = validate(SCHEMAS["Query"], manifest)
    assert [(e.field, e.reason) for e in errors] == [("spec.input", "FieldValueRequired")]
    with pytest.raises(DecodeError, match="missing required field `input`"):
        decode(encode(manifest), KINDS["Query"])


def test_crds_have_status_subresource_and_arks_printer_columns() -> None:
    query = crd_manifest(KINDS["Query"])  # type: ignore[arg-type]
    version = query["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Type",
        "Phase",
        "Duration",
        "Age",
    ]
    assert yaml.safe_load(yaml.safe_dump(query)) == query
