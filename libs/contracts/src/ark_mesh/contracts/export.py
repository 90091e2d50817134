"""Generate the checked-in artefacts from the Structs: JSON Schemas, AsyncAPI, CRDs.

The Structs are the source of truth; everything here is derived, deterministic, and compared
against the files in the repository by a test, so a change to a message that forgets
``make schemas`` fails CI instead of silently breaking consumers in other languages.

Run ``python -m ark_mesh.contracts.export --schemas proto-schemas --crds helm/ark-mesh/crds``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from ark_mesh.contracts.catalog import CHANNELS
from ark_mesh.contracts.messages import MESSAGE_TYPES
from ark_mesh.contracts.resources import KINDS, Resource

__all__ = [
    "CRD_KINDS",
    "asyncapi_document",
    "crd_manifest",
    "generate",
    "json_schema",
    "main",
    "structural_schema",
]

CRD_KINDS: tuple[type[Resource], ...] = tuple(
    kind for kind in KINDS.values() if kind.GROUP == Resource.GROUP
)
"""Every kind Ark serves that ark-mesh keeps, read or not: a kind without a CRD cannot even be
applied ("no matches for kind"), and a field missing from its CRD is pruned."""
ASYNCAPI_VERSION = "3.0.0"
MESH_VERSION = "0.1.0"
PRESERVE = "x-kubernetes-preserve-unknown-fields"

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _condition(type_: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")].status'


def _column(name: str, json_path: str, type_: str = "string") -> dict[str, str]:
    return {"name": name, "type": type_, "jsonPath": json_path}


PRINTER_COLUMNS: dict[str, list[dict[str, str]]] = {
    # Ark's own columns per kind, in Ark's order, so ``kubectl get`` reads the same.
    "Query": [
        _column("Type", ".spec.type"),
        _column("Phase", ".status.phase"),
        _column("Duration", ".status.duration"),
        _AGE,
    ],
    "Agent": [
        _column("Model", ".spec.modelRef.name"),
        _column("Available", _condition("Available")),
        _AGE,
    ],
    "Model": [
        _column("Type", ".spec.type"),
        _column("Provider", ".spec.provider"),
        _column("Model", ".spec.model.value"),
        _column("Available", _condition("ModelAvailable")),
        _AGE,
    ],
    "Team": [
        _column("Strategy", ".spec.strategy"),
        _column("Available", _condition("Available")),
        _AGE,
    ],
    # Ark's Tool CRD declares no columns: kubectl shows NAME and AGE.
    "Tool": [_AGE],
    "Memory": [
        _column("Phase", ".status.phase"),
        _column("Address", ".status.lastResolvedAddress"),
        _AGE,
    ],
    "MCPServer": [
        _column("Available", _condition("Available")),
        _column("Discovering", _condition("Discovering")),
        _column("Tools", ".status.toolCount", "integer"),
        _column("Auth", ".status.authorization.state"),
        _AGE,
    ],
    "A2AServer": [
        _column("Ready", _condition("Ready")),
        _column("Discovering", _condition("Discovering")),
        _column("Address", ".status.lastResolvedAddress"),
        _column("Endpoint", ".status.lastResolvedEndpoint"),
        _AGE,
    ],
    "Evaluator": [
        _column("Phase", ".status.phase"),
        _column("Address", ".status.lastResolvedAddress"),
        _AGE,
    ],
    "Evaluation": [
        _column("Type", ".spec.type"),
        _column("Phase", ".status.phase"),
        _column("Score", ".status.score"),
        _column("Passed", ".status.passed", "boolean"),
        _AGE,
    ],
    "ExecutionEngine": [
        _column("Type", ".spec.type"),
        _column("Phase", ".status.phase"),
        _column("Address", ".status.lastResolvedAddress"),
        _AGE,
    ],
    "A2ATask": [
        _column("Query", ".spec.queryRef.name"),
        _column("Agent", ".spec.agentRef.name"),
        _column("Phase", ".status.phase"),
        _AGE,
    ],
    "ArkConfig": [
        _column("QueryTTL", ".spec.queryTTL"),
        _column("EvaluationTTL", ".spec.evaluationTTL"),
        _AGE,
    ],
}

# --------------------------------------------------------------------------- JSON Schema


def json_schema(type_: Any) -> dict[str, Any]:
    """Draft 2020-12 JSON Schema of a message or resource, as msgspec derives it."""
    schema = msgspec.json.schema(type_)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --------------------------------------------------------------------------- CRDs

_COPIED_KEYS = (
    "type",
    "description",
    "enum",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "minItems",
    "maxItems",
)


def structural_schema(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a msgspec JSON Schema node into a Kubernetes *structural* openAPIV3Schema node.

    The API server needs every node typed and refs inlined; ``T | None`` becomes
    ``nullable: true``; free-form JSON (``Any``, ``dict[str, Any]``, unions of several types)
    becomes ``x-kubernetes-preserve-unknown-fields`` so the server keeps it instead of pruning it.
    Only defaults declared with :func:`~ark_mesh.contracts.resources.server_default` reach the
    CRD; the server would otherwise stamp every empty list and ``false`` into stored objects.
    """
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural_schema(merged, defs)
    preserve = bool(schema.get(PRESERVE))
    node: dict[str, Any]
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        if len(options) == 1 and not preserve:
            rest = {
                k: v
                for k, v in schema.items()
                if k not in ("anyOf", "title") and not (k == "default" and v is None)
            }
            node = structural_schema({**options[0], **rest}, defs)
        else:
            node = {PRESERVE: True}
            if "description" in schema:
                node["description"] = schema["description"]
        if nullable:
            node["nullable"] = True
        return node

    node = {key: schema[key] for key in _COPIED_KEYS if key in schema}
    if "enum" in node and "type" not in node and all(isinstance(v, str) for v in node["enum"]):
        node["type"] = "string"
    default = schema.get("default")
    if isinstance(default, str) and default:
        node["default"] = default
    if "properties" in schema:
        node["properties"] = {
            name: structural_schema(sub, defs) for name, sub in schema["properties"].items()
        }
        if schema.get("required"):
            node["required"] = list(schema["required"])
    if "items" in schema:
        node["items"] = structural_schema(schema["items"], defs)
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping) and additional:
        node["additionalProperties"] = structural_schema(additional, defs)
    elif node.get("type") == "object" and "properties" not in node:
        preserve = True
    if "type" not in node:
        preserve = True
    if preserve:
        node[PRESERVE] = True
    return node


def crd_manifest(kind: type[Resource]) -> dict[str, Any]:
    """An ``apiextensions.k8s.io/v1`` CRD for ``kind`` with a status subresource."""
    (ref,), components = msgspec.json.schema_components([kind], ref_template="#/$defs/{name}")
    root = structural_schema(ref, components)
    properties = root["properties"]
    properties["metadata"] = {"type": "object"}
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    root.pop("description", None)
    version: dict[str, Any] = {
        "name": kind.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": PRINTER_COLUMNS.get(kind.KIND, [_AGE]),
        "schema": {"openAPIV3Schema": root},
    }
    singular = kind.KIND.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.PLURAL}.{kind.GROUP}"},
        "spec": {
            "group": kind.GROUP,
            "names": {
                "kind": kind.KIND,
                "listKind": f"{kind.KIND}List",
                "plural": kind.PLURAL,
                "singular": singular,
            },
            "scope": "Namespaced" if kind.NAMESPACED else "Cluster",
            "versions": [version],
        },
    }


# --------------------------------------------------------------------------- AsyncAPI


def _message_name(schema_id: str) -> str:
    return MESSAGE_TYPES[schema_id].__name__


def _schema_file(schema_id: str) -> str:
    return f"messages/{schema_id}.json"


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of every channel, its stream and its messages."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in CHANNELS:
        params = [part[1:-1] for part in channel.address.split(".") if part.startswith("{")]
        channel_messages = {}
        for message_type in channel.messages:
            name = message_type.__name__
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
            messages[name] = {
                "name": name,
                "title": name,
                "summary": (message_type.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/ArkHeaders"},
                "payload": {"$ref": _schema_file(message_type.SCHEMA)},
                "x-ark-schema": message_type.SCHEMA,
            }
        channels[channel.id] = {
            "address": channel.address,
            "description": channel.description,
            "parameters": {name: {"description": _PARAMETER_DOCS[name]} for name in params},
            "messages": channel_messages,
            "x-ark-stream": channel.stream,
            "x-ark-retention": channel.retention,
            "x-ark-producers": channel.producers,
            "x-ark-consumers": channel.consumers,
        }
        message_refs = [
            {"$ref": f"#/channels/{channel.id}/messages/{m.__name__}"} for m in channel.messages
        ]
        operations[f"publish{channel.id[0].upper()}{channel.id[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel.id}"},
            "summary": f"Published by {channel.producers}.",
            "messages": message_refs,
        }
        operations[f"consume{channel.id[0].upper()}{channel.id[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel.id}"},
            "summary": f"Consumed by {channel.consumers}.",
            "messages": message_refs,
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "ark-mesh",
            "version": MESH_VERSION,
            "description": "Subjects of the ark-mesh NATS JetStream mesh. The tenant is the second "
            "token, so the NATS permission ark.<tenant>.> isolates a tenant. Payloads are "
            "msgspec JSON; the schema tag in each body equals the Ark-Schema header.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "ArkHeaders": {
                    "type": "object",
                    "properties": {
                        "Ark-Schema": {
                            "type": "string",
                            "description": "Schema id of the payload.",
                        },
                        "Nats-Msg-Id": {
                            "type": "string",
                            "description": "Deduplication id (JetStream duplicate window).",
                        },
                        "traceparent": {
                            "type": "string",
                            "description": "W3C trace context of the producing span.",
                        },
                    },
                }
            },
        },
    }


_PARAMETER_DOCS = {
    "tenant": "Tenant id; by default the Query's namespace.",
    "queryId": "Query UID (CR uid, or a UUID the broker mints).",
    "conversationId": "Conversation id of the memory thread.",
    "kind": "Kind of the dead message (query, responses, embeddings, ...).",
}

# --------------------------------------------------------------------------- files


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values in full: anchors and aliases make manifests hard to read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml_text(value: Any) -> str:
    return yaml.dump(value, Dumper=_PlainDumper, sort_keys=False, width=100)


def generate() -> dict[str, dict[str, str]]:
    """Every generated file as ``{"schemas": {relpath: text}, "crds": {relpath: text}}``."""
    schemas: dict[str, str] = {}
    for schema_id, message_type in sorted(MESSAGE_TYPES.items()):
        schemas[_schema_file(schema_id)] = _json_text(json_schema(message_type))
    for kind in CRD_KINDS:
        schemas[f"resources/{kind.KIND}.json"] = _json_text(json_schema(kind))
    schemas["asyncapi.yaml"] = _yaml_text(asyncapi_document())
    crds = {
        f"{kind.GROUP}_{kind.PLURAL}.yaml": _yaml_text(crd_manifest(kind)) for kind in CRD_KINDS
    }
    return {"schemas": schemas, "crds": crds}


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relpath, text in files.items():
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=Path, required=True, help="proto-schemas directory")
    parser.add_argument("--crds", type=Path, required=True, help="Helm chart crds/ directory")
    args = parser.parse_args(argv)
    generated = generate()
    _write(args.schemas, generated["schemas"])
    _write(args.crds, generated["crds"])
    print(f"wrote {len(generated['schemas'])} schema files and {len(generated['crds'])} CRDs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
