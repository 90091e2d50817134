"""Server-side printing: the ``meta.k8s.io/v1`` ``Table`` that ``kubectl get`` asks for.

kubectl requests ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` for its default
output and renders whatever columns the server sends; CRDs contribute their
``additionalPrinterColumns`` (``.a.b`` JSON paths, and list filters such as
``.status.conditions[?(@.type=="Ready")].status``, the form Ark's availability columns use).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ark_mesh.testing.k8s.resources import ResourceType

__all__ = ["render_table", "wants_table"]

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE_COLUMN = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp is a timestamp representing the server time when this "
    "object was created.",
    "priority": 0,
}


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


_PATH_STEP = re.compile(r'\.?([^.\[]+)|\[\?\(@\.([\w-]+)\s*==\s*["\']([^"\']*)["\']\)\]')


def _json_path(obj: Mapping[str, Any], path: str) -> Any:
    """A field (``.a.b``) or, through a filter step (``[?(@.k=="v")]``), the matching list
    items' fields; several matches print comma-separated, like kubectl's JSONPath printer."""
    current: list[Any] = [obj]
    for match in _PATH_STEP.finditer(path.strip()):
        key, filter_key, filter_value = match.groups()
        if key is not None:
            current = [item.get(key) for item in current if isinstance(item, Mapping)]
        else:
            current = [
                entry
                for item in current
                if isinstance(item, list)
                for entry in item
                if isinstance(entry, Mapping) and str(entry.get(filter_key)) == filter_value
            ]
        current = [item for item in current if item is not None]
    if not current:
        return None
    return current[0] if len(current) == 1 else ",".join(str(item) for item in current)


def _builtin_columns(rt: ResourceType) -> list[tuple[dict[str, Any], Any]]:
    """(column definition, cell function) pairs for built-in kinds."""

    def column(name: str, kind: str = "string") -> dict[str, Any]:
        return {"name": name, "type": kind, "format": "", "description": name, "priority": 0}

    match rt.kind:
        case "Namespace":
            return [(column("Status"), lambda o: _json_path(o, ".status.phase") or "")]
        case "ConfigMap":
            return [(column("Data", "integer"), lambda o: len(o.get("data") or {}))]
        case "Secret":
            return [
                (column("Type"), lambda o: o.get("type", "")),
                (column("Data", "integer"), lambda o: len(o.get("data") or {})),
            ]
        case "Lease":
            return [(column("Holder"), lambda o: _json_path(o, ".spec.holderIdentity") or "")]
        case "Event":
            return [
                (column("Type"), lambda o: o.get("type", "")),
                (column("Reason"), lambda o: o.get("reason", "")),
                (
                    column("Object"),
                    lambda o: "{}/{}".format(
                        str(
                            _json_path(o, ".involvedObject.kind")
                            or _json_path(o, ".regarding.kind")
                            or ""
                        ).lower(),
                        _json_path(o, ".involvedObject.name") or _json_path(o, ".regarding.name"),
                    ),
                ),
                (column("Message"), lambda o: o.get("message") or o.get("note") or ""),
            ]
    return []


def render_table(
    rt: ResourceType,
    objects: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> dict[str, Any]:
    columns: list[dict[str, Any]] = [dict(_NAME_COLUMN)]
    cells: list[Any] = []
    if rt.custom and rt.printer_columns:
        for spec in rt.printer_columns:
            columns.append(
                {
                    "name": spec.get("name", ""),
                    "type": spec.get("type", "string"),
                    "format": spec.get("format", ""),
                    "description": spec.get("description", ""),
                    "priority": int(spec.get("priority", 0)),
                }
            )
            path = str(spec.get("jsonPath", ""))
            if path == ".metadata.creationTimestamp":
                cells.append(lambda o: _age(_json_path(o, ".metadata.creationTimestamp")))
            else:
                cells.append(lambda o, p=path: _json_path(o, p))
        if not any(c["name"] == "Age" for c in columns):
            columns.append(dict(_AGE_COLUMN))
            cells.append(lambda o: _age(_json_path(o, ".metadata.creationTimestamp")))
    else:
        for definition, cell in [] if rt.custom else _builtin_columns(rt):
            columns.append(definition)
            cells.append(cell)
        columns.append(dict(_AGE_COLUMN))
        cells.append(lambda o: _age(_json_path(o, ".metadata.creationTimestamp")))
    rows = []
    for obj in objects:
        row_cells = [obj.get("metadata", {}).get("name", "")]
        for cell in cells:
            value = cell(obj)
            row_cells.append("<none>" if value is None else value)
        row: dict[str, Any] = {"cells": row_cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
