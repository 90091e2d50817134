"""The openAPIV3Schema validator, pruner and defaulter (pure functions, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from ark_mesh.testing.k8s.openapi import FieldError, admit, apply_defaults, prune, validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["target"],
            "properties": {
                "target": {
                    "type": "object",
                    "required": ["type", "name"],
                    "properties": {
                        "type": {"type": "string", "enum": ["agent", "team"]},
                        "name": {"type": "string", "minLength": 1, "maxLength": 8},
                    },
                },
                "replicas": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 5},
                "count": {"type": "integer", "format": "int32"},
                "ratio": {"type": "number", "exclusiveMaximum": True, "maximum": 1},
                "code": {"type": "string", "pattern": "^[a-z]+$"},
                "when": {"type": "string", "format": "date-time"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {
                    "type": "array",
                    "maxItems": 2,
                    "minItems": 1,
                    "items": {"type": "string"},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "raw": {"x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string", "nullable": True},
                "mode": {"type": "string", "default": "fast"},
                "enabled": {"type": "boolean"},
            },
        },
    },
}


def body(**spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {"target": {"type": "agent", "name": "a"}}
    full.update(spec)
    return {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": full}


def test_a_valid_object_has_no_errors() -> None:
    assert (
        validate(
            SCHEMA,
            body(
                replicas=3,
                port="http",
                tags=["a"],
                note=None,
                when="2024-01-01T00:00:00Z",
                raw={"any": [1, {"x": None}]},
            ),
        )
        == []
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"target": {"type": "robot", "name": "a"}},
            FieldError(
                "spec.target.type",
                "FieldValueNotSupported",
                'Unsupported value: "robot": supported values: "agent", "team"',
            ),
        ),
        (
            {"target": {"type": "agent"}},
            FieldError("spec.target.name", "FieldValueRequired", "Required value"),
        ),
        (
            {"replicas": "3"},
            FieldError(
                "spec.replicas",
                "FieldValueTypeInvalid",
                'Invalid value: "3": spec.replicas in body must be of type integer: "string"',
            ),
        ),
        (
            {"replicas": 0},
            FieldError(
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            ),
        ),
        (
            {"count": 2**40},
            FieldError(
                "spec.count",
                "FieldValueInvalid",
                f"Invalid value: {2**40}: spec.count in body must be of type int32",
            ),
        ),
        (
            {"ratio": 1},
            FieldError(
                "spec.ratio",
                "FieldValueInvalid",
                "Invalid value: 1: spec.ratio in body should be less than 1",
            ),
        ),
        (
            {"code": "ABC"},
            FieldError(
                "spec.code",
                "FieldValueInvalid",
                "Invalid value: \"ABC\": spec.code in body should match '^[a-z]+$'",
            ),
        ),
        (
            {"when": "yesterday"},
            FieldError(
                "spec.when",
                "FieldValueInvalid",
                'Invalid value: "yesterday": spec.when in body must be of type date-time: '
                '"yesterday"',
            ),
        ),
        (
            {"port": 1.5},
            FieldError(
                "spec.port",
                "FieldValueTypeInvalid",
                'Invalid value: 1.5: spec.port in body must be of type integer or string: "number"',
            ),
        ),
        (
            {"tags": ["a", "b", "c"]},
            FieldError("spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
        ),
        (
            {"tags": []},
            FieldError(
                "spec.tags",
                "FieldValueInvalid",
                "Invalid value: 0: spec.tags in body should have at least 1 items",
            ),
        ),
        (
            {"tags": ["a", 1]},
            FieldError(
                "spec.tags[1]",
                "FieldValueTypeInvalid",
                'Invalid value: 1: spec.tags[1] in body must be of type string: "integer"',
            ),
        ),
        (
            {"labels": {"k": 1}},
            FieldError(
                "spec.labels.k",
                "FieldValueTypeInvalid",
                'Invalid value: 1: spec.labels.k in body must be of type string: "integer"',
            ),
        ),
        (
            {"target": {"type": "agent", "name": "much-too-long"}},
            FieldError(
                "spec.target.name", "FieldValueTooLong", "Too long: may not be longer than 8"
            ),
        ),
        (
            {"enabled": None},
            FieldError(
                "spec.enabled",
                "FieldValueTypeInvalid",
                'Invalid value: null: spec.enabled in body must be of type boolean: "null"',
            ),
        ),
    ],
)
def test_each_violation_names_field_reason_and_message(
    spec: dict[str, Any], expected: FieldError
) -> None:
    assert validate(SCHEMA, body(**spec)) == [expected]


def test_every_violation_is_reported_in_document_order() -> None:
    errors = validate(SCHEMA, {"spec": {"replicas": 9, "target": {"type": "x", "name": ""}}})
    assert [(e.field, e.reason) for e in errors] == [
        ("spec.replicas", "FieldValueInvalid"),
        ("spec.target.type", "FieldValueNotSupported"),
        ("spec.target.name", "FieldValueInvalid"),
    ]
    assert str(errors[1]).startswith("spec.target.type: Unsupported value")


def test_prune_drops_unknown_fields_but_keeps_envelope_and_preserved_subtrees() -> None:
    obj = body(unknown=1, raw={"kept": {"deep": True}}, labels={"a": "b"}, note=None, enabled=None)
    obj["metadata"]["labels"] = {"app": "x"}  # a schema that types metadata never prunes it
    obj["extraTop"] = "gone"
    obj["spec"]["target"]["extra"] = "gone"
    pruned = prune(SCHEMA, obj)
    assert "extraTop" not in pruned
    assert "unknown" not in pruned["spec"]
    assert "extra" not in pruned["spec"]["target"]
    assert pruned["spec"]["raw"] == {"kept": {"deep": True}}
    assert pruned["spec"]["labels"] == {"a": "b"}
    assert pruned["spec"]["note"] is None  # nullable: kept
    assert "enabled" not in pruned["spec"]  # null in a non-nullable field: dropped
    assert pruned["metadata"] == {"name": "n", "labels": {"app": "x"}}
    assert obj["extraTop"] == "gone"  # the input is not modified


def test_defaults_fill_absent_fields_only() -> None:
    assert apply_defaults(SCHEMA, body())["spec"]["mode"] == "fast"
    assert apply_defaults(SCHEMA, body(mode="slow"))["spec"]["mode"] == "slow"


def test_admit_prunes_then_defaults_then_validates() -> None:
    stored, errors = admit(SCHEMA, body(enabled=None, bogus=True))
    assert errors == []
    assert stored["spec"] == {"target": {"type": "agent", "name": "a"}, "mode": "fast"}


def test_value_validations_in_combinators() -> None:
    schema = {
        "type": "object",
        "properties": {"v": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]}},
    }
    assert validate(schema, {"v": "beta"}) == []
    assert [e.field for e in validate(schema, {"v": "gamma"})] == ["v"]
