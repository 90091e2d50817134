"""The AdmissionReview v1 wire format: responses, and JSONPatch from a before/after pair."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["allowed", "denied", "json_patch"]


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``before`` into ``after`` (objects diffed key by key, any
    other change replaced whole — what a defaulting webhook's edits need)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        ops: list[dict[str, Any]] = []
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{_escape(str(key))}"})
        for key, value in after.items():
            pointer = f"{path}/{_escape(str(key))}"
            if key not in before:
                ops.append({"op": "add", "path": pointer, "value": value})
            elif before[key] != value:
                ops.extend(json_patch(before[key], value, pointer))
        return ops
    if before == after:
        return []
    return [{"op": "replace", "path": path, "value": after}]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def allowed(
    uid: str, *, patch: Sequence[Mapping[str, Any]] = (), warnings: Sequence[str] = ()
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch)).encode()).decode()
    if warnings:
        response["warnings"] = list(warnings)
    return _review(response)


def denied(uid: str, message: str, *, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """A refusal as controller-runtime's ``admission.Denied`` writes it: 403 Forbidden."""
    response: dict[str, Any] = {
        "uid": uid,
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": message},
    }
    if warnings:
        response["warnings"] = list(warnings)
    return _review(response)


def _review(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
