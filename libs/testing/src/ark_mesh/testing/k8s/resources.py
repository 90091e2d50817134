"""What the emulator serves: resource types, their rules, and CustomResourceDefinitions.

A :class:`ResourceType` is one *served* (group, version, plural). Several can share one
storage (a CRD with two versions, or ``core/v1`` and ``events.k8s.io/v1`` Events, which are
one resource in a real cluster) — they then differ only in how an object is converted when
it is read or written through them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ark_mesh.testing.k8s import openapi
from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.events import (
    CORE_EVENT_FIELDS,
    EVENTS_V1_FIELDS,
    core_event_served,
    core_event_stored,
    event_from_events_v1,
    event_to_events_v1,
    validate_core_event,
    validate_events_v1,
)
from ark_mesh.testing.k8s.openapi import FieldError
from ark_mesh.testing.k8s.selectors import FieldGetter, path_getter

__all__ = [
    "BUILTIN_TYPES",
    "CRD_RESOURCE",
    "ResourceType",
    "StorageKey",
    "crd_to_types",
    "named_group",
    "validate_crd",
]

StorageKey = tuple[str, str]  # (group, plural): objects of all served versions live here

ALL_VERBS: Final = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Converter = Callable[[dict[str, Any]], dict[str, Any]]
Validator = Callable[[Mapping[str, Any]], list[FieldError]]


def _identity(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


@dataclass(slots=True)
class ResourceType:
    """One served resource and the rules the server applies to it."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    storage: StorageKey
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = False  # a custom resource (CRD): generation, returns deleted objects, no SMP
    generation: bool = False  # a built-in kind with metadata.generation (Deployments)
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    selectable_fields: tuple[str, ...] = ()
    field_getters: Mapping[str, FieldGetter] = field(default_factory=dict)  # computed/renamed
    dns_label_names: bool = False
    unconditional_update: bool = True
    to_served: Converter = _identity
    to_storage: Converter = _identity
    extra_validation: Validator | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_resource(self) -> str:
        """``queries.ark.mckinsey.com`` / ``configmaps``: how messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Query.ark.mckinsey.com`` / ``ConfigMap``: how validation messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def field_selector_fields(self) -> dict[str, FieldGetter]:
        """Every field a ``fieldSelector`` may name, with how to read it from a stored object."""
        base = ("metadata.name", "metadata.namespace") if self.namespaced else ("metadata.name",)
        getters: dict[str, FieldGetter] = {
            name: path_getter(name) for name in base + self.selectable_fields
        }
        getters.update(self.field_getters)
        return getters

    def check_name(self, name: str) -> list[FieldError]:
        if self.dns_label_names:
            if len(name) > 63 or not _DNS_LABEL.match(name):
                return [
                    FieldError(
                        "metadata.name",
                        openapi.INVALID,
                        f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
                        "lower case alphanumeric characters or '-', and must start and end "
                        "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
                        "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    )
                ]
            return []
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            return [
                FieldError(
                    "metadata.name",
                    openapi.INVALID,
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                    "lower case alphanumeric characters, '-' or '.', and must start and end "
                    "with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
                    "[a-z0-9])?)*')",
                )
            ]
        return []

    def admit(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """Prune, default and validate the body (not its metadata) as the server would."""
        errors: list[FieldError] = []
        if self.schema is not None:
            obj, errors = openapi.admit(self.schema, obj)
        if self.extra_validation is not None:
            errors.extend(self.extra_validation(obj))
        return obj, errors

    def unknown_fields(self, obj: Mapping[str, Any]) -> list[str]:
        """Paths pruning would drop: reported as warnings or strict-validation errors."""
        if self.schema is None:
            return []
        found: list[str] = []
        _collect_unknown(self.schema, obj, "", found, root=True)
        return found

    def api_resource(self) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            resource["shortNames"] = list(self.short_names)
        if self.categories:
            resource["categories"] = list(self.categories)
        return resource

    def subresources(self) -> tuple[str, ...]:
        return ("status",) if self.status_subresource else ()


def _collect_unknown(
    schema: Mapping[str, Any], value: Any, path: str, found: list[str], *, root: bool = False
) -> None:
    if isinstance(value, Mapping):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in properties:
                _collect_unknown(properties[key], child, child_path, found)
            elif isinstance(additional, Mapping):
                _collect_unknown(additional, child, child_path, found)
            elif not (schema.get("x-kubernetes-preserve-unknown-fields") or additional is True):
                found.append(child_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _collect_unknown(schema["items"], item, f"{path}[{index}]", found)


# --- built-in kinds --------------------------------------------------------------------------


def _core(kind: str, plural: str, *, namespaced: bool = True, **extra: Any) -> ResourceType:
    return ResourceType(
        group="",
        version="v1",
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        storage=("", plural),
        **extra,
    )


RBAC_GROUP: Final = "rbac.authorization.k8s.io"
RBAC_KINDS: Final = (
    ("Role", "roles"),
    ("RoleBinding", "rolebindings"),
    ("ClusterRole", "clusterroles"),
    ("ClusterRoleBinding", "clusterrolebindings"),
)


def named_group(
    group: str, kind: str, plural: str, *, namespaced: bool = True, **extra: Any
) -> ResourceType:
    """A built-in ``v1`` kind of a named API group (RBAC, admission registration, ...)."""
    return ResourceType(
        group=group,
        version="v1",
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        storage=(group, plural),
        **extra,
    )


def _service_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    # The defaults kubectl shows right after a create (no IP is allocated: nothing routes).
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    obj.setdefault("status", {"loadBalancer": {}})
    return obj


def _secret_to_storage(obj: dict[str, Any]) -> dict[str, Any]:
    # stringData is write-only: the server folds it into data (base64) and never stores it.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, Mapping):
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    obj.setdefault("type", "Opaque")
    return obj


def _builtin_types() -> tuple[ResourceType, ...]:
    events_v1 = ResourceType(
        group="events.k8s.io",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        storage=("", "events"),
        short_names=("ev",),
        to_served=event_to_events_v1,
        to_storage=event_from_events_v1,
        extra_validation=validate_events_v1,
        field_getters=EVENTS_V1_FIELDS,
    )
    return (
        _core(
            "Namespace",
            "namespaces",
            namespaced=False,
            short_names=("ns",),
            dns_label_names=True,
            status_subresource=True,
        ),
        _core("ConfigMap", "configmaps", short_names=("cm",)),
        _core("Secret", "secrets", to_storage=_secret_to_storage, selectable_fields=("type",)),
        _core(
            "Event",
            "events",
            short_names=("ev",),
            to_served=core_event_served,
            to_storage=core_event_stored,
            extra_validation=validate_core_event,
            field_getters=CORE_EVENT_FIELDS,
        ),
        events_v1,
        ResourceType(
            group="coordination.k8s.io",
            version="v1",
            kind="Lease",
            plural="leases",
            singular="lease",
            namespaced=True,
            storage=("coordination.k8s.io", "leases"),
        ),
        # Stored only: nothing schedules Pods, rolls out Deployments or allocates Service IPs,
        # and RBAC objects authorise nothing (the emulator has no authorisation). They exist
        # because Ark's manifests and kubectl's create subcommands write them.
        _core("ServiceAccount", "serviceaccounts", short_names=("sa",)),
        _core(
            "Service",
            "services",
            short_names=("svc",),
            categories=("all",),
            status_subresource=True,
            to_storage=_service_defaults,
        ),
        _core(
            "Pod",
            "pods",
            short_names=("po",),
            categories=("all",),
            status_subresource=True,
            selectable_fields=("spec.nodeName", "spec.restartPolicy", "status.phase"),
        ),
        named_group(
            "apps",
            "Deployment",
            "deployments",
            short_names=("deploy",),
            categories=("all",),
            status_subresource=True,
            generation=True,
        ),
        *(
            named_group(RBAC_GROUP, kind, plural, namespaced=not kind.startswith("Cluster"))
            for kind, plural in RBAC_KINDS
        ),
    )


BUILTIN_TYPES: Final = _builtin_types()

CRD_RESOURCE: Final = ResourceType(
    group="apiextensions.k8s.io",
    version="v1",
    kind="CustomResourceDefinition",
    plural="customresourcedefinitions",
    singular="customresourcedefinition",
    namespaced=False,
    storage=("apiextensions.k8s.io", "customresourcedefinitions"),
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    status_subresource=True,
)


# --- CustomResourceDefinitions ---------------------------------------------------------------


def validate_crd(crd: Mapping[str, Any]) -> list[FieldError]:
    """The checks a server makes before accepting a CRD (the ones that matter to clients)."""
    errors: list[FieldError] = []
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return [FieldError("spec", openapi.REQUIRED, "Required value")]
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), Mapping) else {}
    plural = names.get("plural") if isinstance(names, Mapping) else None
    if not group:
        errors.append(FieldError("spec.group", openapi.REQUIRED, "Required value"))
    if not plural:
        errors.append(FieldError("spec.names.plural", openapi.REQUIRED, "Required value"))
    if not (isinstance(names, Mapping) and names.get("kind")):
        errors.append(FieldError("spec.names.kind", openapi.REQUIRED, "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(
            FieldError(
                "spec.scope",
                openapi.NOT_SUPPORTED,
                f"Unsupported value: {openapi.render_value(spec.get('scope'))}: supported values: "
                '"Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errors.append(FieldError("spec.versions", openapi.REQUIRED, "Required value"))
    else:
        storage = [v for v in versions if isinstance(v, Mapping) and v.get("storage")]
        if len(storage) != 1:
            errors.append(
                FieldError(
                    "spec.versions",
                    openapi.INVALID,
                    f"Invalid value: {openapi.render_value([v.get('name') for v in versions])}: "
                    "must have exactly one version marked as storage version",
                )
            )
    name = (crd.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        errors.append(
            FieldError(
                "metadata.name",
                openapi.INVALID,
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    return errors


def crd_to_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The served resource types a (valid) CRD defines, one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    group = spec["group"]
    storage: StorageKey = (group, names["plural"])
    served: list[ResourceType] = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        version_name = version["name"]
        api_version = f"{group}/{version_name}"
        schema = (version.get("schema") or {}).get("openAPIV3Schema")

        def convert(obj: dict[str, Any], api_version: str = api_version) -> dict[str, Any]:
            # CRDs without a conversion webhook only relabel the apiVersion (strategy None).
            if "apiVersion" in obj:
                obj = dict(obj)
                obj["apiVersion"] = api_version
            return obj

        served.append(
            ResourceType(
                group=group,
                version=version_name,
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec["scope"] == "Namespaced",
                storage=storage,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                custom=True,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                selectable_fields=tuple(
                    str(item["jsonPath"]).lstrip(".")
                    for item in version.get("selectableFields") or ()
                ),
                unconditional_update=False,
                to_served=convert,
                to_storage=convert,
            )
        )
    return served


def storage_version(crd: Mapping[str, Any]) -> str:
    for version in crd["spec"]["versions"]:
        if version.get("storage"):
            return str(version["name"])
    raise ApiError.bad_request("CRD has no storage version")


def crd_list_from_documents(documents: Sequence[Any]) -> list[dict[str, Any]]:
    """The CRDs among parsed YAML documents (other kinds are ignored, as kubectl would not)."""
    return [
        dict(doc)
        for doc in documents
        if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition"
    ]
