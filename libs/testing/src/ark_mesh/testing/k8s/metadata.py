"""ObjectMeta checks the server applies to every kind: label and annotation keys and values,
and the shape of finalizers. Bad labels are rejected with 422 rather than stored, so that a
selector written against them later cannot silently match nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ark_mesh.testing.k8s import openapi
from ark_mesh.testing.k8s.openapi import FieldError

__all__ = ["check_metadata"]

_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_metadata(meta: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for section in ("labels", "annotations"):
        values = meta.get(section)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            errors.append(openapi_type_error(f"metadata.{section}", values, "object"))
            continue
        for key, value in values.items():
            path = f"metadata.{section}"
            if not isinstance(value, str):
                errors.append(openapi_type_error(f"{path}.{key}", value, "string"))
                continue
            errors.extend(_check_qualified_key(path, key))
            if section == "labels" and value and (len(value) > 63 or not _LABEL_NAME.match(value)):
                errors.append(
                    FieldError(
                        path,
                        openapi.INVALID,
                        f'Invalid value: "{value}": a valid label must be an empty string or '
                        "consist of alphanumeric characters, '-', '_' or '.', and must start "
                        "and end with an alphanumeric character",
                    )
                )
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        errors.append(openapi_type_error("metadata.finalizers", finalizers, "array of strings"))
    return errors


def _check_qualified_key(path: str, key: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and bool(_LABEL_NAME.match(name))
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        ok = False
    if ok:
        return []
    return [
        FieldError(
            path,
            openapi.INVALID,
            f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character",
        )
    ]


def openapi_type_error(path: str, value: Any, expected: str) -> FieldError:
    return FieldError(
        path,
        openapi.TYPE_INVALID,
        f"Invalid value: {openapi.render_value(value)}: {path} in body must be of type {expected}",
    )
