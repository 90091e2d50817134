"""The patch formats a Kubernetes server accepts: JSON merge patch (RFC 7386) and JSON patch
(RFC 6902). Strategic merge patch is modelled as merge patch for built-in kinds (the
directive keys ``$patch``/``$retainKeys`` are not supported) and refused for custom
resources, exactly as the real server refuses it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from ark_mesh.testing.k8s.errors import ApiError

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "apply_json_patch",
    "apply_merge_patch",
]

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {pointer!r}: must start with '/'")
    return [_unescape(part) for part in pointer[1:].split("/")]


def _parent(doc: Any, parts: list[str], pointer: str) -> Any:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, dict):
            if part not in current:
                raise _missing(pointer)
            current = current[part]
        elif isinstance(current, list):
            current = current[_index(current, part, pointer, allow_end=False)]
        else:
            raise _missing(pointer)
    return current


def _index(array: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(array)
    if not token.isdigit():
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our "
            f"request: invalid array index {token!r} in {pointer!r}",
        )
    index = int(token)
    limit = len(array) if allow_end else len(array) - 1
    if index > limit:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our "
            f"request: array index {index} out of bounds in {pointer!r}",
        )
    return index


def _missing(pointer: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: "
        f'doc is missing path: "{pointer}": missing value',
    )


def _get(doc: Any, pointer: str) -> Any:
    parts = _split(pointer)
    if not parts:
        return doc
    parent = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _missing(pointer)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, pointer, allow_end=False)]
    raise _missing(pointer)


def _add(doc: Any, pointer: str, value: Any) -> Any:
    parts = _split(pointer)
    if not parts:
        return value
    parent = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, pointer, allow_end=True), value)
    else:
        raise _missing(pointer)
    return doc


def _remove(doc: Any, pointer: str) -> Any:
    parts = _split(pointer)
    if not parts:
        raise _missing(pointer)
    parent = _parent(doc, parts, pointer)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _missing(pointer)
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, pointer, allow_end=False)]
    else:
        raise _missing(pointer)
    return doc


def apply_json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of ``target``; a failed ``test`` is a 422 like the server's."""
    if not isinstance(operations, list):
        raise ApiError.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for number, op in enumerate(operations):
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: operation {number} needs 'op' and 'path'",
            )
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: {kind} operation does not apply: missing value",
            )
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = (
                _add(_remove(doc, path), path, copy.deepcopy(op["value"]))
                if _split(path)
                else (copy.deepcopy(op["value"]))
            )
        elif kind == "move":
            value = _get(doc, op.get("from", ""))
            doc = _add(_remove(doc, op.get("from", "")), path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our "
                    f"request: testing value {path} failed: test failed",
                )
        else:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: Unexpected kind: {kind}",
            )
    return doc
