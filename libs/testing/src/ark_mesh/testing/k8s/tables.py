"""Server-side printing: the ``meta.k8s.io/v1`` ``Table`` that ``kubectl get`` asks for.

kubectl requests ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` for its default
output and renders whatever columns the server sends; CRDs contribute their
``additionalPrinterColumns`` (simple ``.a.b`` JSON paths are evaluated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ark_mesh.testing.k8s.events import event_from_events_v1
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
    """How long ago, written as the server writes ages (apimachinery's ``HumanDuration``)."""
    if not timestamp:
        return "<unknown>"
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return human_duration(int((datetime.now(UTC) - moment).total_seconds()))


def human_duration(seconds: int) -> str:
    """``90s``, ``4m30s``, ``25m``, ``3h5m``, ``2d4h``, ... with the server's cut-offs."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    minutes, hours = seconds // 60, seconds // 3600
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


_PATH_TOKEN = re.compile(
    r"""\.\.|\.([A-Za-z0-9_\-]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+)\s*\]"""
    r"""|\[\s*\*\s*\]|\[\?\(\s*@((?:\.[A-Za-z0-9_\-]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|([^)\s]+))\s*\)\]"""
)


def json_path_values(obj: Any, path: str) -> list[Any]:
    """Every value a Kubernetes JSONPath (``.a.b``, ``[0]``, ``[*]``, ``[?(@.k=="v")]``) selects.

    The subset CRD ``additionalPrinterColumns`` use, conditions filters included
    (``.status.conditions[?(@.type=="Ready")].status``). ``{}`` around the path is accepted.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    current: list[Any] = [obj]
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None:
            return []  # not in the supported subset: no value, like an unmatched path
        pos = match.end()
        name = match.group(1) or match.group(2) or match.group(3)
        token = match.group(0)
        if name is not None:
            current = [item[name] for item in current if isinstance(item, dict) and name in item]
        elif match.group(4) is not None:
            index = int(match.group(4))
            current = [
                item[index]
                for item in current
                if isinstance(item, list) and -len(item) <= index < len(item)
            ]
        elif token.replace(" ", "") == "[*]":
            current = [
                child
                for item in current
                for child in (item if isinstance(item, list) else (item or {}).values())
            ]
        elif match.group(5) is not None:
            field, operator = match.group(5), match.group(6)
            literal = next((g for g in match.group(7, 8, 9) if g is not None), "")
            current = [
                child
                for item in current
                if isinstance(item, list)
                for child in item
                if (_filter_value(child, field) == literal) == (operator == "==")
            ]
        else:
            return []  # ".." (recursive descent) is not supported
    return current


def _filter_value(item: Any, field: str) -> str | None:
    found = json_path_values(item, field)
    if not found:
        return None
    value = found[0]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_path(obj: Mapping[str, Any], path: str) -> Any:
    found = json_path_values(obj, path)
    return found[0] if found else None


def _printer_cell(value: Any, column_type: str) -> Any:
    """A CRD column's cell from the first value its path selects, typed as the column says."""
    if value is None:
        return None
    if column_type == "date":
        return _age(str(value)) if isinstance(value, str) else None
    if column_type == "integer":
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
    if column_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        case "Service":
            return [
                (column("Type"), lambda o: _json_path(o, ".spec.type") or "ClusterIP"),
                (column("Cluster-IP"), lambda o: _json_path(o, ".spec.clusterIP") or "<none>"),
                (column("External-IP"), lambda o: "<none>"),
                (column("Port(s)"), _service_ports),
            ]
        case "Deployment":
            return [
                (
                    column("Ready"),
                    lambda o: "{}/{}".format(
                        _json_path(o, ".status.readyReplicas") or 0,
                        _json_path(o, ".spec.replicas") or 0,
                    ),
                ),
                (
                    column("Up-to-date", "integer"),
                    lambda o: _json_path(o, ".status.updatedReplicas") or 0,
                ),
                (
                    column("Available", "integer"),
                    lambda o: _json_path(o, ".status.availableReplicas") or 0,
                ),
            ]
        case "Pod":
            return [
                (
                    column("Ready"),
                    lambda o: "{}/{}".format(
                        sum(
                            1
                            for c in _json_path(o, ".status.containerStatuses") or []
                            if c.get("ready")
                        ),
                        len(_json_path(o, ".spec.containers") or []),
                    ),
                ),
                (column("Status"), lambda o: _json_path(o, ".status.phase") or "Pending"),
                (column("Restarts", "integer"), lambda o: 0),
            ]
        case "RoleBinding" | "ClusterRoleBinding":
            return [
                (
                    column("Role"),
                    lambda o: "{}/{}".format(
                        _json_path(o, ".roleRef.kind") or "", _json_path(o, ".roleRef.name") or ""
                    ),
                )
            ]
    return []


def _service_ports(obj: Mapping[str, Any]) -> str:
    ports = [
        f"{port.get('port')}/{port.get('protocol', 'TCP')}"
        for port in _json_path(obj, ".spec.ports") or []
        if isinstance(port, Mapping)
    ]
    return ",".join(ports) or "<none>"


def _event_columns() -> list[tuple[dict[str, Any], Any]]:
    """The server's Event table: no Name or Age first, "Last Seen" from whichever time is set.

    Last Seen is the series' last observation, else ``lastTimestamp``, else the first sighting
    (``firstTimestamp``, else ``eventTime``); Count is the series count, else ``count``, else 1.
    """

    def column(name: str, priority: int = 0, kind: str = "string") -> dict[str, Any]:
        spec = {"name": name, "type": kind, "format": "", "description": name, "priority": priority}
        if name == "Name":
            spec["format"] = "name"
        return spec

    def first_seen(o: Mapping[str, Any]) -> str:
        return _age(o.get("firstTimestamp") or o.get("eventTime"))

    def last_seen(o: Mapping[str, Any]) -> str:
        series = o.get("series") or {}
        if series.get("lastObservedTime"):
            return _age(series["lastObservedTime"])
        return _age(o["lastTimestamp"]) if o.get("lastTimestamp") else first_seen(o)

    def count(o: Mapping[str, Any]) -> int:
        series = o.get("series") or {}
        return int(series.get("count") or o.get("count") or 1)

    def target(o: Mapping[str, Any]) -> str:
        ref = o.get("involvedObject") or {}
        kind = str(ref.get("kind") or "").lower()
        return f"{kind}/{ref['name']}" if ref.get("name") else kind

    def source(o: Mapping[str, Any]) -> str:
        legacy = o.get("source") or {}
        component = legacy.get("component") or o.get("reportingComponent") or ""
        instance = legacy.get("host") or o.get("reportingInstance") or ""
        return f"{component}, {instance}" if instance else str(component)

    return [
        (column("Last Seen"), last_seen),
        (column("Type"), lambda o: o.get("type") or ""),
        (column("Reason"), lambda o: o.get("reason") or ""),
        (column("Object"), target),
        (column("Subobject", 1), lambda o: (o.get("involvedObject") or {}).get("fieldPath", "")),
        (column("Source", 1), source),
        (column("Message"), lambda o: str(o.get("message") or "").strip()),
        (column("First Seen", 1), first_seen),
        (column("Count", 1, "integer"), count),
        (column("Name", 1), lambda o: o.get("metadata", {}).get("name", "")),
    ]


def render_table(
    rt: ResourceType,
    objects: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> dict[str, Any]:
    columns: list[dict[str, Any]] = [dict(_NAME_COLUMN)]
    cells: list[Any] = [lambda o: o.get("metadata", {}).get("name", "")]
    if rt.kind == "Event" and not rt.custom:
        columns, cells = [], []
        for definition, cell in _event_columns():
            columns.append(definition)
            # events.k8s.io/v1 objects are printed from their core/v1 form, as the server does
            cells.append(
                lambda o, c=cell: c(event_from_events_v1(dict(o)) if "regarding" in o else o)
            )
    elif rt.custom and rt.printer_columns:
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
            column_type = str(spec.get("type", "string"))
            cells.append(lambda o, p=path, t=column_type: _printer_cell(_json_path(o, p), t))
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
        row_cells = []
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
