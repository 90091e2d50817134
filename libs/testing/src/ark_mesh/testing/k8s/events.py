"""Events: one stored resource served as ``core/v1`` Event and ``events.k8s.io/v1`` Event.

A real API server keeps a single ``Event`` storage and converts on the way in and out; this
module is the emulator's copy of those rules, because controllers write through one API and
operators read through the other (``kubectl get events`` and ``kubectl describe`` read
``core/v1``; client-go's new recorder writes ``events.k8s.io/v1``):

* field conversion — ``regarding`` ↔ ``involvedObject``, ``note`` ↔ ``message``,
  ``reportingController`` ↔ ``reportingComponent``, ``deprecatedSource`` ↔ ``source``,
  ``deprecatedFirstTimestamp``/``deprecatedLastTimestamp``/``deprecatedCount`` ↔
  ``firstTimestamp``/``lastTimestamp``/``count``; ``series``, ``related``, ``action``,
  ``eventTime`` and ``reportingInstance`` keep their names. Reads fill the fields Go's JSON
  always writes (``"lastTimestamp": null``), so clients see the same document as on a cluster;
* validation — ``events.k8s.io/v1`` creates need ``eventTime``, ``reportingController``,
  ``reportingInstance``, ``action``, ``reason`` and a ``Normal``/``Warning`` type, and refuse
  the deprecated fields ("needs to be unset"); a ``series`` needs ``count`` ≥ 2 and
  ``lastObservedTime``. A ``core/v1`` event that carries ``eventTime`` is a new-style event and
  needs the same reporting fields, an old-style one (no ``eventTime``) does not;
* field selectors — ``core/v1``: ``involvedObject.*``, ``reason``, ``reportingComponent``,
  ``source`` (``source.component``, else the reporting controller) and ``type``;
  ``events.k8s.io/v1``: ``regarding.*``, ``reason``, ``reportingController``, ``type``.

Stored objects are in ``core/v1`` form.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from ark_mesh.testing.k8s import openapi
from ark_mesh.testing.k8s.openapi import FieldError
from ark_mesh.testing.k8s.selectors import FieldGetter, lookup, path_getter

__all__ = [
    "CORE_EVENT_FIELDS",
    "EVENTS_V1_FIELDS",
    "core_event_served",
    "core_event_stored",
    "event_from_events_v1",
    "event_to_events_v1",
    "validate_core_event",
    "validate_events_v1",
]

# core/v1 field  <->  events.k8s.io/v1 field
_RENAMES: Final = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)
_REFERENCE_FIELDS: Final = (
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
)
_QUALIFIED_NAME: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LIMITS: Final = {"reportingInstance": 128, "action": 128, "reason": 128}
_NOTE_LIMIT: Final = 1024


def _source(obj: Mapping[str, Any]) -> str:
    # the server's "source" label: the legacy source.component, else the reporting controller
    return lookup(obj, "source.component") or str(obj.get("reportingComponent") or "")


CORE_EVENT_FIELDS: Final[Mapping[str, FieldGetter]] = {
    **{
        f"involvedObject.{name}": path_getter(f"involvedObject.{name}")
        for name in _REFERENCE_FIELDS
    },
    "reason": path_getter("reason"),
    "reportingComponent": path_getter("reportingComponent"),
    "source": _source,
    "type": path_getter("type"),
}

EVENTS_V1_FIELDS: Final[Mapping[str, FieldGetter]] = {
    **{f"regarding.{name}": path_getter(f"involvedObject.{name}") for name in _REFERENCE_FIELDS},
    "reason": path_getter("reason"),
    "reportingController": path_getter("reportingComponent"),
    "type": path_getter("type"),
}


def core_event_served(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored event as ``core/v1`` serves it, with the fields Go's JSON never omits."""
    if "kind" in obj or "metadata" in obj:
        obj.setdefault("involvedObject", {})
        obj.setdefault("source", {})
        for always in ("firstTimestamp", "lastTimestamp", "eventTime"):
            obj.setdefault(always, None)
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")
    return obj


def core_event_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what :func:`core_event_served` filled in, so a read-modify-write stores no nulls."""
    for always in ("firstTimestamp", "lastTimestamp", "eventTime"):
        if obj.get(always, "") is None:
            del obj[always]
    for empty in ("reportingComponent", "reportingInstance"):
        if obj.get(empty) == "":
            del obj[empty]
    if obj.get("source") == {}:
        del obj["source"]
    return obj


def event_to_events_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for core_name, new_name in _RENAMES:
        if core_name in out:
            out[new_name] = out.pop(core_name)
    if "kind" in out or "metadata" in out:
        out.setdefault("regarding", {})
        out.setdefault("eventTime", None)
        if out.get("deprecatedSource") == {}:
            del out["deprecatedSource"]
    if "kind" in out:
        out["apiVersion"] = "events.k8s.io/v1"
    return out


def event_from_events_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for core_name, new_name in _RENAMES:
        if new_name in out:
            out[core_name] = out.pop(new_name)
    if "kind" in out:
        out["apiVersion"] = "v1"
    return core_event_stored(out)


def _reporting_errors(obj: Mapping[str, Any], controller_field: str) -> list[FieldError]:
    """What a new-style event (one with ``eventTime``) must carry, through either API."""
    errors: list[FieldError] = []
    controller = str(obj.get("reportingComponent") or "")
    if not controller:
        errors.append(FieldError(controller_field, openapi.REQUIRED, "Required value"))
    elif not _QUALIFIED_NAME.match(controller):
        errors.append(
            FieldError(
                controller_field,
                openapi.INVALID,
                f"Invalid value: {openapi.render_value(controller)}: name part must consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    for name, limit in _LIMITS.items():
        value = str(obj.get(name) or "")
        if not value:
            errors.append(FieldError(name, openapi.REQUIRED, "Required value"))
        elif len(value) > limit:
            errors.append(
                FieldError(
                    name, openapi.INVALID, f'Invalid value: "": can have at most {limit} characters'
                )
            )
    return errors


def validate_core_event(obj: Mapping[str, Any]) -> list[FieldError]:
    """``core/v1`` rules: only new-style events (with ``eventTime``) are checked strictly."""
    if not obj.get("eventTime"):
        return []
    errors = _reporting_errors(obj, "reportingComponent")
    if len(str(obj.get("message") or "")) > _NOTE_LIMIT:
        errors.append(
            FieldError(
                "message",
                openapi.INVALID,
                f'Invalid value: "": can have at most {_NOTE_LIMIT} characters',
            )
        )
    return errors


def validate_events_v1(obj: Mapping[str, Any]) -> list[FieldError]:
    """``events.k8s.io/v1`` rules, on the stored (``core/v1``) form, named as that API names them.

    Creates get the strict rules; an update (the object already has its ``uid``) only the
    legacy ones and the series check, so a legacy event can still be patched through this API.
    """
    if (obj.get("metadata") or {}).get("uid"):
        return validate_core_event(obj) + _series_errors(obj)
    errors: list[FieldError] = []
    if not obj.get("eventTime"):
        errors.append(FieldError("eventTime", openapi.REQUIRED, "Required value"))
    errors += _reporting_errors(obj, "reportingController")
    if obj.get("type") not in ("Normal", "Warning"):
        errors.append(
            FieldError(
                "type",
                openapi.INVALID,
                f'Invalid value: "": has invalid value: {obj.get("type") or ""}',
            )
        )
    if len(str(obj.get("message") or "")) > _NOTE_LIMIT:
        errors.append(
            FieldError("note", openapi.TOO_LONG, f"Too long: may not be longer than {_NOTE_LIMIT}")
        )
    for stored, served in _RENAMES[3:]:
        value = obj.get(stored)
        if value and value != {}:
            errors.append(
                FieldError(served, openapi.INVALID, 'Invalid value: "": needs to be unset')
            )
    return errors + _series_errors(obj)


def _series_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    series = obj.get("series")
    if isinstance(series, Mapping):
        if int(series.get("count") or 0) < 2:
            errors.append(
                FieldError(
                    "series.count", openapi.INVALID, 'Invalid value: "": should be at least 2'
                )
            )
        if not series.get("lastObservedTime"):
            errors.append(FieldError("series.lastObservedTime", openapi.REQUIRED, "Required value"))
    return errors
