"""The ``/openapi/v3`` documents kubectl downloads before it creates, replaces or applies.

kubectl (``--validate=strict``, the default) first asks the server's OpenAPI v3 document
whether the PATCH operation of the object's kind accepts the ``fieldValidation`` query
parameter; when it does, kubectl leaves validation to the server. Without these documents
kubectl refuses to send anything ("failed to download openapi"). So each group-version gets a
document listing, per resource, its operations with the ``x-kubernetes-group-version-kind``
extension and the ``fieldValidation`` parameter, plus the CRD's schema as a component.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ark_mesh.testing.k8s.registry import Registry
from ark_mesh.testing.k8s.resources import ResourceType

__all__ = ["group_version_document", "root_document"]

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root_document(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for group, versions in sorted(registry.group_versions().items()):
        for version in versions:
            doc = group_version_document(registry, group, version)
            if doc is None:
                continue
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def _schema_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _operation(rt: ResourceType, verb: str, action: str) -> dict[str, Any]:
    return {
        "operationId": f"{verb}{rt.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMETERS
        ],
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
                    }
                },
            }
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
    }


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = list(registry.resources_in(group, version))
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    base = "/" + _gv_path(group, version)
    for rt in types:
        scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        paths[f"{scope}/{rt.plural}"] = {
            "get": _operation(rt, "list", "list"),
            "post": _operation(rt, "create", "post"),
        }
        paths[f"{scope}/{rt.plural}/{{name}}"] = {
            "get": _operation(rt, "read", "get"),
            "put": _operation(rt, "replace", "put"),
            "patch": _operation(rt, "patch", "patch"),
            "delete": _operation(rt, "delete", "delete"),
        }
        schema: dict[str, Any] = (
            dict(rt.schema)
            if rt.schema
            else {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
        )
        schema["x-kubernetes-group-version-kind"] = [
            {"group": rt.group, "version": rt.version, "kind": rt.kind}
        ]
        schemas[_schema_name(rt)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "emulator"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
