"""Validation, defaulting and pruning of objects against a CRD's ``openAPIV3Schema``.

The Kubernetes API server treats a custom resource body in three steps, and this module
mirrors each as a pure function so tests can reason about them separately:

1. :func:`prune` drops every field the schema does not declare (unless a node says
   ``x-kubernetes-preserve-unknown-fields: true``) and nulls in fields that are not
   ``nullable`` — that is why a client sending an unknown field gets a silent success rather
   than an error, and why a controller must never depend on fields missing from the CRD;
2. :func:`apply_defaults` fills ``default:`` values for absent properties;
3. :func:`validate` checks the result and reports *every* violation, each as a
   :class:`FieldError` whose ``reason`` is the cause type the real server puts into
   ``Status.details.causes`` (``FieldValueRequired``, ``FieldValueInvalid``,
   ``FieldValueNotSupported``, ``FieldValueTypeInvalid``, ``FieldValueTooLong``,
   ``FieldValueTooMany``) and whose ``message`` reads like the server's.

:func:`admit` runs the three in the server's order. :func:`validate` on its own validates the
object *as given*: a ``null`` in a non-nullable field is reported, because the server would
drop it and a client relying on it would lose data silently.

Only the structural-schema subset that CRDs may use is supported: ``type``, ``properties``,
``required``, ``enum``, ``items``, ``additionalProperties``, ``nullable``, ``format``
(``int32``, ``int64``, ``date-time``, ``date``, ``byte`` loosely), string/number/array
bounds, ``pattern``, ``allOf``/``anyOf``/``oneOf``/``not`` value validations,
``x-kubernetes-preserve-unknown-fields`` and ``x-kubernetes-int-or-string``. CEL rules
(``x-kubernetes-validations``) are not evaluated. The functions have no dependencies beyond
the standard library so that contract tests can import them anywhere.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

__all__ = [
    "FieldError",
    "admit",
    "apply_defaults",
    "prune",
    "validate",
]

REQUIRED: Final = "FieldValueRequired"
INVALID: Final = "FieldValueInvalid"
NOT_SUPPORTED: Final = "FieldValueNotSupported"
TYPE_INVALID: Final = "FieldValueTypeInvalid"
TOO_LONG: Final = "FieldValueTooLong"
TOO_MANY: Final = "FieldValueTooMany"

# The root of a custom resource always keeps these, whatever the schema says: the server
# handles them itself (ObjectMeta has its own validation, apiVersion/kind select the type),
# so a CRD listing ``metadata: {type: object}`` never loses an object's name or labels.
_ROOT_ENVELOPE: Final = frozenset({"apiVersion", "kind", "metadata"})

_INT_RANGES: Final = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One violation, shaped like an entry of ``Status.details.causes``.

    ``field`` is the dotted path the server reports (``spec.parameters[0].name``);
    ``reason`` is the cause type; ``message`` is the human part after the field.
    """

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def validate(schema: Mapping[str, Any], obj: Any) -> list[FieldError]:
    """Every violation of ``schema`` by ``obj``, in document order (empty when valid)."""
    errors: list[FieldError] = []
    _validate(schema, obj, "", errors, root=True)
    return errors


def prune(schema: Mapping[str, Any], obj: Any) -> Any:
    """A copy of ``obj`` without the fields ``schema`` does not declare, as the server stores it.

    Also drops ``null`` values of fields that are not ``nullable``. Values of the wrong type are
    kept (validation reports them); pruning never raises.
    """
    return _prune(schema, copy.deepcopy(obj), root=True)


def apply_defaults(schema: Mapping[str, Any], obj: Any) -> Any:
    """A copy of ``obj`` with the schema's ``default`` values filled in for absent properties."""
    return _default(schema, copy.deepcopy(obj), root=True)


def admit(schema: Mapping[str, Any], obj: Any) -> tuple[Any, list[FieldError]]:
    """Prune, default, then validate — the server's order. Returns the stored form and errors."""
    stored = apply_defaults(schema, prune(schema, obj))
    return stored, validate(schema, stored)


# --- pruning -------------------------------------------------------------------------------


def _preserves_unknown(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _prune(schema: Mapping[str, Any], value: Any, *, root: bool = False) -> Any:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        keep_unknown = _preserves_unknown(schema) or additional is True
        for key in list(value):
            child = value[key]
            if root and key in _ROOT_ENVELOPE:
                continue
            if key in properties:
                child_schema = properties[key]
            elif isinstance(additional, Mapping):
                child_schema = additional
            elif keep_unknown:
                continue
            else:
                del value[key]
                continue
            if child is None and not child_schema.get("nullable"):
                del value[key]
                continue
            value[key] = _prune(child_schema, child)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_prune(items, item) for item in value]
    return value


# --- defaulting ----------------------------------------------------------------------------


def _default(schema: Mapping[str, Any], value: Any, *, root: bool = False) -> Any:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        for key, child_schema in properties.items():
            if root and key == "metadata":
                continue
            if key not in value and "default" in child_schema:
                value[key] = copy.deepcopy(child_schema["default"])
            if key in value:
                value[key] = _default(child_schema, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value:
                if key not in properties:
                    value[key] = _default(additional, value[key])
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_default(items, item) for item in value]
    return value


# --- validation ----------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """A value the way the server quotes it in messages (strings quoted, numbers bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_matches(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def _label(path: str) -> str:
    return path or "<root>"


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _validate(
    schema: Mapping[str, Any],
    value: Any,
    path: str,
    errors: list[FieldError],
    *,
    root: bool = False,
) -> None:
    if value is None:
        if schema.get("nullable") or (_preserves_unknown(schema) and "type" not in schema):
            return
        expected = schema.get("type")
        if expected:
            errors.append(_type_error(path, value, str(expected)))
        return

    if schema.get("x-kubernetes-int-or-string"):
        if _json_type(value) not in ("integer", "string"):
            errors.append(
                FieldError(
                    path,
                    TYPE_INVALID,
                    f"Invalid value: {render_value(value)}: {_label(path)} in body must be of type "
                    f"integer or string: {render_value(_json_type(value))}",
                )
            )
            return
    else:
        expected = schema.get("type")
        if isinstance(expected, str) and not _type_matches(expected, value):
            errors.append(_type_error(path, value, expected))
            return

    _validate_enum(schema, value, path, errors)
    _validate_format(schema, value, path, errors)
    if isinstance(value, str):
        _validate_string(schema, value, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(schema, value, path, errors)
    elif isinstance(value, list):
        _validate_array(schema, value, path, errors)
    elif isinstance(value, dict):
        _validate_object(schema, value, path, errors, root=root)
    _validate_combinators(schema, value, path, errors)


def _type_error(path: str, value: Any, expected: str) -> FieldError:
    return FieldError(
        path,
        TYPE_INVALID,
        f"Invalid value: {render_value(value)}: {_label(path)} in body must be of type {expected}: "
        f"{render_value(_json_type(value))}",
    )


def _validate_enum(
    schema: Mapping[str, Any], value: Any, path: str, errors: list[FieldError]
) -> None:
    allowed = schema.get("enum")
    if allowed is None or value in allowed:
        return
    supported = ", ".join(render_value(item) for item in allowed)
    errors.append(
        FieldError(
            path,
            NOT_SUPPORTED,
            f"Unsupported value: {render_value(value)}: supported values: {supported}",
        )
    )


def _validate_format(
    schema: Mapping[str, Any], value: Any, path: str, errors: list[FieldError]
) -> None:
    fmt = schema.get("format")
    if not isinstance(fmt, str):
        return
    if fmt in _INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INT_RANGES[fmt]
        if not low <= value <= high:
            errors.append(
                FieldError(
                    path,
                    INVALID,
                    f"Invalid value: {value}: {_label(path)} in body must be of type {fmt}",
                )
            )
    elif isinstance(value, str) and not _string_has_format(fmt, value):
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {render_value(value)}: {_label(path)} in body must be of type {fmt}: "
                f"{render_value(value)}",
            )
        )


def _string_has_format(fmt: str, value: str) -> bool:
    try:
        if fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        elif fmt == "date":
            date.fromisoformat(value)
        elif fmt == "byte":
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                return False
    except ValueError:
        return False
    return True


def _validate_string(
    schema: Mapping[str, Any], value: str, path: str, errors: list[FieldError]
) -> None:
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {render_value(value)}: {_label(path)} in body should be at least "
                f"{min_length} chars long",
            )
        )
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        errors.append(FieldError(path, TOO_LONG, f"Too long: may not be longer than {max_length}"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and re.search(pattern, value) is None:
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {render_value(value)}: {_label(path)} in body should match "
                f"'{pattern}'",
            )
        )


def _validate_number(
    schema: Mapping[str, Any], value: float, path: str, errors: list[FieldError]
) -> None:
    minimum = schema.get("minimum")
    if isinstance(minimum, int | float):
        exclusive = bool(schema.get("exclusiveMinimum"))
        if value < minimum or (exclusive and value == minimum):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(
                FieldError(
                    path,
                    INVALID,
                    f"Invalid value: {render_value(value)}: {_label(path)} in body should be "
                    f"{relation} {render_value(minimum)}",
                )
            )
    maximum = schema.get("maximum")
    if isinstance(maximum, int | float):
        exclusive = bool(schema.get("exclusiveMaximum"))
        if value > maximum or (exclusive and value == maximum):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(
                FieldError(
                    path,
                    INVALID,
                    f"Invalid value: {render_value(value)}: {_label(path)} in body should be "
                    f"{relation} {render_value(maximum)}",
                )
            )


def _validate_array(
    schema: Mapping[str, Any], value: list[Any], path: str, errors: list[FieldError]
) -> None:
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {len(value)}: {_label(path)} in body should have at least "
                f"{min_items} items",
            )
        )
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        errors.append(
            FieldError(
                path, TOO_MANY, f"Too many: {len(value)}: must have at most {max_items} items"
            )
        )
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _validate(items, item, f"{path}[{index}]", errors)


def _validate_object(
    schema: Mapping[str, Any],
    value: Mapping[str, Any],
    path: str,
    errors: list[FieldError],
    *,
    root: bool,
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required: Sequence[str] = schema.get("required") or ()
    for name in required:
        if name not in value:
            errors.append(FieldError(_child(path, name), REQUIRED, "Required value"))
    additional = schema.get("additionalProperties")
    for key, child in value.items():
        if root and (key == "metadata" or (key in _ROOT_ENVELOPE and key not in properties)):
            continue
        if key in properties:
            _validate(properties[key], child, _child(path, key), errors)
        elif isinstance(additional, Mapping):
            _validate(additional, child, _child(path, key), errors)
    for bound, relation in (("minProperties", "at least"), ("maxProperties", "at most")):
        limit = schema.get(bound)
        if not isinstance(limit, int):
            continue
        if (bound == "minProperties" and len(value) < limit) or (
            bound == "maxProperties" and len(value) > limit
        ):
            errors.append(
                FieldError(
                    path,
                    INVALID,
                    f"Invalid value: {len(value)}: {_label(path)} in body should have {relation} "
                    f"{limit} properties",
                )
            )


def _validate_combinators(
    schema: Mapping[str, Any], value: Any, path: str, errors: list[FieldError]
) -> None:
    # Structural schemas may carry value validations in allOf/anyOf/oneOf/not (no types or
    # structure of their own); int-or-string uses anyOf [integer, string], already handled.
    for sub in schema.get("allOf") or ():
        _validate(sub, value, path, errors)
    any_of = schema.get("anyOf")
    if (
        any_of
        and not schema.get("x-kubernetes-int-or-string")
        and all(_probe(sub, value, path) for sub in any_of)
    ):
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {render_value(value)}: must validate at least one schema (anyOf)",
            )
        )
    one_of = schema.get("oneOf")
    if one_of:
        matching = sum(1 for sub in one_of if not _probe(sub, value, path))
        if matching != 1:
            errors.append(
                FieldError(
                    path,
                    INVALID,
                    f"Invalid value: {render_value(value)}: must validate one and only one schema "
                    "(oneOf)",
                )
            )
    negated = schema.get("not")
    if isinstance(negated, Mapping) and not _probe(negated, value, path):
        errors.append(
            FieldError(
                path,
                INVALID,
                f"Invalid value: {render_value(value)}: must not validate the schema (not)",
            )
        )


def _probe(schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    _validate(schema, value, path, found)
    return found
