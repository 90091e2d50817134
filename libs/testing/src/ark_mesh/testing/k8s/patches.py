"""The patch formats a Kubernetes server accepts: JSON merge patch (RFC 7386), JSON patch
(RFC 6902) and, for built-in kinds, strategic merge patch (refused for custom resources,
exactly as the real server refuses it).

Strategic merge patch is what ``kubectl apply`` sends for built-in kinds. It differs from a
merge patch in lists: a list whose field declares a merge key (``containers`` by ``name``,
Service ``ports`` by ``port``, ...) merges element by element, and the patch carries
directives — ``$patch: delete|replace|merge``, ``$setElementOrder/<list>``,
``$deleteFromPrimitiveList/<list>``, ``$retainKeys``. The merge keys come from
:data:`MERGE_KEYS`, by field name, covering the built-in kinds the emulator stores; any other
list is replaced, as for a field without a patch strategy.
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
    "apply_strategic_merge_patch",
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


# list field -> the key its elements merge by ("" = a list of scalars merged as a set);
# "ports" merges by containerPort in a container and by port in a Service (see _merge_key)
MERGE_KEYS: Final = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "secrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "ports": "port",
    "finalizers": "",
}
_DIRECTIVE: Final = "$patch"
_ORDER: Final = "$setElementOrder/"
_DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList/"
_RETAIN: Final = "$retainKeys"


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (see the module docstring for what is modelled)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    base: dict[str, Any] = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return _without_directives({k: v for k, v in patch.items() if k != _DIRECTIVE})
    if directive == "delete":
        return {}
    retain = patch.get(_RETAIN)
    if isinstance(retain, list):
        base = {k: v for k, v in base.items() if k in retain}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN) or key.startswith(_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVES):
            field = key[len(_DELETE_PRIMITIVES) :]
            if isinstance(base.get(field), list) and isinstance(value, list):
                base[field] = [item for item in base[field] if item not in value]
            continue
        if value is None:
            base.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            base[key] = _merge_list(key, base.get(key), value, patch.get(_ORDER + key))
        elif isinstance(value, Mapping):
            base[key] = apply_strategic_merge_patch(base.get(key), value)
        else:
            base[key] = _without_directives(value)
    return base


def _merge_key(field: str, items: list[Any]) -> str:
    if field == "ports" and any(isinstance(i, Mapping) and "containerPort" in i for i in items):
        return "containerPort"
    return MERGE_KEYS[field]


def _merge_list(field: str, current: Any, patch: list[Any], order: Any) -> list[Any]:
    base = list(current) if isinstance(current, list) else []
    if any(isinstance(item, Mapping) and item.get(_DIRECTIVE) == "replace" for item in patch):
        return [_without_directives(i) for i in patch if not _is_directive_only(i)]
    key = _merge_key(field, [*base, *patch])
    if not key:  # a set of scalars
        merged = base + [item for item in patch if item not in base]
    else:
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            if not isinstance(item, Mapping) or key not in item:
                merged.append(_without_directives(item))
                continue
            index = next(
                (i for i, old in enumerate(merged) if isinstance(old, Mapping)
                 and old.get(key) == item[key]),
                None,
            )  # fmt: skip
            if item.get(_DIRECTIVE) == "delete":
                if index is not None:
                    del merged[index]
            elif index is None:
                merged.append(_without_directives(item))
            else:
                merged[index] = apply_strategic_merge_patch(merged[index], item)
    if isinstance(order, list) and order:
        merged = _ordered(merged, order, key)
    return merged


def _ordered(items: list[Any], order: list[Any], key: str) -> list[Any]:
    """Put ``items`` in the order ``$setElementOrder`` gives; the rest keep theirs, at the end."""

    def identity(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, Mapping) else item

    wanted = [identity(entry) for entry in order]
    ranked = sorted(
        items,
        key=lambda item: wanted.index(identity(item)) if identity(item) in wanted else len(wanted),
    )
    return ranked


def _is_directive_only(item: Any) -> bool:
    return isinstance(item, Mapping) and set(item) <= {_DIRECTIVE}


def _without_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _without_directives(v)
            for k, v in value.items()
            if k not in (_DIRECTIVE, _RETAIN) and not k.startswith((_ORDER, _DELETE_PRIMITIVES))
        }
    if isinstance(value, list):
        return [_without_directives(item) for item in value]
    return value


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
