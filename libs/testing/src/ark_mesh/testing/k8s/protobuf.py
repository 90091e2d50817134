"""Kubernetes protobuf request bodies for the built-in kinds, decoded into their JSON form.

client-go's generated clientsets (what ``kubectl create namespace|configmap|secret|
serviceaccount|role|...`` use) send ``Content-Type: application/vnd.kubernetes.protobuf`` for
built-in kinds and have no fallback: client-go only retries in JSON after a 415 for CBOR, never
for protobuf. So the emulator must read protobuf to serve kubectl at all. Responses stay JSON,
which those clients accept (they send ``Accept: application/vnd.kubernetes.protobuf,
application/json``).

The envelope is the 4 magic bytes ``k8s\\0`` followed by a ``runtime.Unknown`` message
(``typeMeta`` = 1 with ``apiVersion`` = 1 and ``kind`` = 2, ``raw`` = 2 holding the object).
Objects are decoded with :data:`_SCHEMA`: field numbers, JSON names and types of the messages
that the kinds below reach, taken from the Kubernetes API's ``generated.proto`` definitions.
Pods and Deployments are deliberately absent (their schema closure is over a hundred messages
and kubectl writes them as JSON through ``apply``/``create -f``); a protobuf body of a kind
without a schema is answered ``415 UnsupportedMediaType``, and a field the schema does not
know is refused rather than dropped, so nothing is lost silently.

Zero values follow Go's JSON encoding of these types as closely as the wire allows: gogo
protobuf writes every non-pointer scalar, so empty strings, zero numbers and ``false`` are
omitted (``omitempty``), a zero ``Time`` is absent, and an empty embedded struct stays ``{}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ark_mesh.testing.k8s.errors import ApiError

__all__ = ["PROTOBUF", "decode_protobuf", "protobuf_kinds"]

PROTOBUF: Final = "application/vnd.kubernetes.protobuf"
_MAGIC: Final = b"k8s\x00"

# apiVersion -> the proto package prefix used in _SCHEMA
_PACKAGES: Final = {
    "v1": "core/v1",
    "rbac.authorization.k8s.io/v1": "rbac/v1",
    "coordination.k8s.io/v1": "coordination/v1",
    "events.k8s.io/v1": "events/v1",
}

# One message per entry: its name, then ``jsonName=number:type`` per field on indented lines.
# ``*T`` is a repeated field, ``{T}`` a map from string to T; T is a scalar or another message.
_SCHEMA: Final = """
coordination/v1.Lease
    metadata=1:meta/v1.ObjectMeta spec=2:coordination/v1.LeaseSpec
coordination/v1.LeaseSpec
    holderIdentity=1:string leaseDurationSeconds=2:int32 acquireTime=3:meta/v1.MicroTime
    renewTime=4:meta/v1.MicroTime leaseTransitions=5:int32 strategy=6:string
    preferredHolder=7:string
core/v1.ClientIPConfig
    timeoutSeconds=1:int32
core/v1.ConfigMap
    metadata=1:meta/v1.ObjectMeta data=2:{string} binaryData=3:{bytes} immutable=4:bool
core/v1.Event
    metadata=1:meta/v1.ObjectMeta involvedObject=2:core/v1.ObjectReference reason=3:string
    message=4:string source=5:core/v1.EventSource firstTimestamp=6:meta/v1.Time
    lastTimestamp=7:meta/v1.Time count=8:int32 type=9:string eventTime=10:meta/v1.MicroTime
    series=11:core/v1.EventSeries action=12:string related=13:core/v1.ObjectReference
    reportingComponent=14:string reportingInstance=15:string
core/v1.EventSeries
    count=1:int32 lastObservedTime=2:meta/v1.MicroTime
core/v1.EventSource
    component=1:string host=2:string
core/v1.LoadBalancerIngress
    ip=1:string hostname=2:string ipMode=3:string ports=4:*core/v1.PortStatus
core/v1.LoadBalancerStatus
    ingress=1:*core/v1.LoadBalancerIngress
core/v1.LocalObjectReference
    name=1:string
core/v1.Namespace
    metadata=1:meta/v1.ObjectMeta spec=2:core/v1.NamespaceSpec status=3:core/v1.NamespaceStatus
core/v1.NamespaceCondition
    type=1:string status=2:string lastTransitionTime=4:meta/v1.Time reason=5:string
    message=6:string
core/v1.NamespaceSpec
    finalizers=1:*string
core/v1.NamespaceStatus
    phase=1:string conditions=2:*core/v1.NamespaceCondition
core/v1.ObjectReference
    kind=1:string namespace=2:string name=3:string uid=4:string apiVersion=5:string
    resourceVersion=6:string fieldPath=7:string
core/v1.PortStatus
    port=1:int32 protocol=2:string error=3:string
core/v1.Secret
    metadata=1:meta/v1.ObjectMeta data=2:{bytes} type=3:string stringData=4:{string}
    immutable=5:bool
core/v1.Service
    metadata=1:meta/v1.ObjectMeta spec=2:core/v1.ServiceSpec status=3:core/v1.ServiceStatus
core/v1.ServiceAccount
    metadata=1:meta/v1.ObjectMeta secrets=2:*core/v1.ObjectReference
    imagePullSecrets=3:*core/v1.LocalObjectReference automountServiceAccountToken=4:bool
core/v1.ServicePort
    name=1:string protocol=2:string port=3:int32 targetPort=4:intstr.IntOrString
    nodePort=5:int32 appProtocol=6:string
core/v1.ServiceSpec
    ports=1:*core/v1.ServicePort selector=2:{string} clusterIP=3:string type=4:string
    externalIPs=5:*string sessionAffinity=7:string loadBalancerIP=8:string
    loadBalancerSourceRanges=9:*string externalName=10:string externalTrafficPolicy=11:string
    healthCheckNodePort=12:int32 publishNotReadyAddresses=13:bool
    sessionAffinityConfig=14:core/v1.SessionAffinityConfig ipFamilyPolicy=17:string
    clusterIPs=18:*string ipFamilies=19:*string allocateLoadBalancerNodePorts=20:bool
    loadBalancerClass=21:string internalTrafficPolicy=22:string trafficDistribution=23:string
core/v1.ServiceStatus
    loadBalancer=1:core/v1.LoadBalancerStatus conditions=2:*meta/v1.Condition
core/v1.SessionAffinityConfig
    clientIP=1:core/v1.ClientIPConfig
events/v1.Event
    metadata=1:meta/v1.ObjectMeta eventTime=2:meta/v1.MicroTime series=3:events/v1.EventSeries
    reportingController=4:string reportingInstance=5:string action=6:string reason=7:string
    regarding=8:core/v1.ObjectReference related=9:core/v1.ObjectReference note=10:string
    type=11:string deprecatedSource=12:core/v1.EventSource
    deprecatedFirstTimestamp=13:meta/v1.Time deprecatedLastTimestamp=14:meta/v1.Time
    deprecatedCount=15:int32
events/v1.EventSeries
    count=1:int32 lastObservedTime=2:meta/v1.MicroTime
meta/v1.Condition
    type=1:string status=2:string observedGeneration=3:int64 lastTransitionTime=4:meta/v1.Time
    reason=5:string message=6:string
meta/v1.LabelSelector
    matchLabels=1:{string} matchExpressions=2:*meta/v1.LabelSelectorRequirement
meta/v1.LabelSelectorRequirement
    key=1:string operator=2:string values=3:*string
meta/v1.ManagedFieldsEntry
    manager=1:string operation=2:string apiVersion=3:string time=4:meta/v1.Time
    fieldsType=6:string fieldsV1=7:meta/v1.FieldsV1 subresource=8:string
meta/v1.ObjectMeta
    name=1:string generateName=2:string namespace=3:string selfLink=4:string uid=5:string
    resourceVersion=6:string generation=7:int64 creationTimestamp=8:meta/v1.Time
    deletionTimestamp=9:meta/v1.Time deletionGracePeriodSeconds=10:int64 labels=11:{string}
    annotations=12:{string} ownerReferences=13:*meta/v1.OwnerReference finalizers=14:*string
    managedFields=17:*meta/v1.ManagedFieldsEntry
meta/v1.OwnerReference
    kind=1:string name=3:string uid=4:string apiVersion=5:string controller=6:bool
    blockOwnerDeletion=7:bool
rbac/v1.AggregationRule
    clusterRoleSelectors=1:*meta/v1.LabelSelector
rbac/v1.ClusterRole
    metadata=1:meta/v1.ObjectMeta rules=2:*rbac/v1.PolicyRule
    aggregationRule=3:rbac/v1.AggregationRule
rbac/v1.ClusterRoleBinding
    metadata=1:meta/v1.ObjectMeta subjects=2:*rbac/v1.Subject roleRef=3:rbac/v1.RoleRef
rbac/v1.PolicyRule
    verbs=1:*string apiGroups=2:*string resources=3:*string resourceNames=4:*string
    nonResourceURLs=5:*string
rbac/v1.Role
    metadata=1:meta/v1.ObjectMeta rules=2:*rbac/v1.PolicyRule
rbac/v1.RoleBinding
    metadata=1:meta/v1.ObjectMeta subjects=2:*rbac/v1.Subject roleRef=3:rbac/v1.RoleRef
rbac/v1.RoleRef
    apiGroup=1:string kind=2:string name=3:string
rbac/v1.Subject
    kind=1:string apiGroup=2:string name=3:string namespace=4:string
"""

_SCALARS: Final = frozenset({"string", "bytes", "bool", "int32", "int64"})
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type: str
    repeated: bool = False
    map: bool = False


def _parse_schema(text: str) -> dict[str, dict[int, _Field]]:
    messages: dict[str, dict[int, _Field]] = {}
    current: dict[int, _Field] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = messages.setdefault(line.strip(), {})
            continue
        for entry in line.split():
            name, _, rest = entry.partition("=")
            number, _, type_ = rest.partition(":")
            repeated, is_map = type_.startswith("*"), type_.startswith("{")
            current[int(number)] = _Field(name, type_.strip("*{}"), repeated, is_map)
    return messages


_MESSAGES: Final = _parse_schema(_SCHEMA)


def protobuf_kinds() -> list[str]:
    """``apiVersion/Kind`` of every kind whose protobuf body the emulator can read."""
    by_package = {package: version for version, package in _PACKAGES.items()}
    kinds = []
    for name in _MESSAGES:
        package, _, kind = name.partition(".")
        fields = _MESSAGES[name]
        if package in by_package and fields.get(1) == _Field("metadata", "meta/v1.ObjectMeta"):
            kinds.append(f"{by_package[package]}/{kind}")
    return sorted(kinds)


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """The JSON object of a ``application/vnd.kubernetes.protobuf`` request body."""
    try:
        return _decode_envelope(body)
    except ValueError as exc:  # bad UTF-8 in a string, bad JSON in a FieldsV1
        raise ApiError.bad_request(f"malformed protobuf body: {exc}") from exc


def _decode_envelope(body: bytes) -> dict[str, Any]:
    if not body.startswith(_MAGIC):
        raise ApiError.bad_request("protobuf body does not start with the Kubernetes magic k8s\\0")
    envelope = _Reader(body[len(_MAGIC) :]).fields()
    type_meta = _Reader(_last_bytes(envelope, 1)).fields()
    api_version = _last_bytes(type_meta, 1).decode()
    kind = _last_bytes(type_meta, 2).decode()
    encoding = _last_bytes(envelope, 3).decode()
    if encoding:
        raise ApiError.bad_request(f"unsupported protobuf content encoding {encoding!r}")
    package = _PACKAGES.get(api_version)
    message = f"{package}.{kind}" if package else ""
    if message not in _MESSAGES:
        refused = ApiError.unsupported_media_type(
            PROTOBUF, ["application/json", "application/yaml"]
        )
        # kubectl prints only the message: say why here, not just in details.causes
        refused.message += (
            f" (the emulator reads {PROTOBUF} only for {', '.join(protobuf_kinds())}; "
            f"write {api_version} {kind} as JSON, e.g. kubectl create -f)"
        )
        raise refused
    obj = _decode_message(_last_bytes(envelope, 2), message)
    return {"apiVersion": api_version, "kind": kind, **obj}


def _last_bytes(fields: Mapping[int, list[Any]], number: int) -> bytes:
    values = fields.get(number)
    if not values:
        return b""
    value = values[-1]
    if not isinstance(value, bytes):
        raise ApiError.bad_request(f"protobuf field {number} is not length-delimited")
    return value


def _last_int(fields: Mapping[int, list[Any]], number: int, field: _Field) -> int:
    value = (fields.get(number) or [0])[-1]
    if not isinstance(value, int):
        raise ApiError.bad_request(f"protobuf field {number} of {field.name} is not a number")
    return value


class _Reader:
    """Splits one message into ``{field number: [raw values in wire order]}``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ApiError.bad_request("truncated protobuf body (varint)")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ApiError.bad_request("malformed protobuf varint")

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ApiError.bad_request("truncated protobuf body")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def fields(self) -> dict[int, list[int | bytes]]:
        found: dict[int, list[int | bytes]] = {}
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            value: int | bytes
            if wire == _VARINT:
                value = self.varint()
            elif wire == _LENGTH:
                value = self.take(self.varint())
            elif wire == _FIXED64:
                value = int.from_bytes(self.take(8), "little")
            elif wire == _FIXED32:
                value = int.from_bytes(self.take(4), "little")
            else:
                raise ApiError.bad_request(f"unsupported protobuf wire type {wire}")
            found.setdefault(number, []).append(value)
        return found


def _decode_message(data: bytes, message: str) -> dict[str, Any]:
    schema = _MESSAGES[message]
    out: dict[str, Any] = {}
    for number, values in _Reader(data).fields().items():
        field = schema.get(number)
        if field is None:
            raise ApiError.bad_request(
                f"protobuf field {number} of {message} is unknown to the emulator"
            )
        if field.map:
            entries: dict[str, Any] = {}
            for raw in values:
                entry = _Reader(_as_bytes(raw, message, field)).fields()
                key = _last_bytes(entry, 1).decode()
                value_raw = entry.get(2, [b"" if field.type in ("string", "bytes") else 0])[-1]
                entries[key] = _scalar(value_raw, field.type, message, field)
            if entries:
                out[field.name] = entries
        elif field.repeated:
            items = [_value(raw, message, field) for raw in _unpacked(values, field)]
            items = [item for item in items if item is not None]
            if items:
                out[field.name] = items
        else:
            value = _value(values[-1], message, field)
            if value is not None:
                out[field.name] = value
    return out


def _unpacked(values: list[int | bytes], field: _Field) -> list[int | bytes]:
    # proto2 repeated numbers are unpacked on the wire, but a packed run is legal too
    if field.type not in ("int32", "int64", "bool"):
        return values
    unpacked: list[int | bytes] = []
    for value in values:
        if isinstance(value, bytes):
            reader = _Reader(value)
            while reader.pos < len(value):
                unpacked.append(reader.varint())
        else:
            unpacked.append(value)
    return unpacked


def _as_bytes(raw: int | bytes, message: str, field: _Field) -> bytes:
    if not isinstance(raw, bytes):
        raise ApiError.bad_request(f"protobuf field {field.name} of {message} is not a message")
    return raw


def _value(raw: int | bytes, message: str, field: _Field) -> Any:
    """The JSON value of one field, or ``None`` when Go's JSON would omit it."""
    if field.type in _SCALARS:
        value = _scalar(raw, field.type, message, field)
        return value if value or field.repeated else None
    data = _as_bytes(raw, message, field)
    if field.type in ("meta/v1.Time", "meta/v1.MicroTime"):
        parts = _Reader(data).fields()
        seconds = _signed(_last_int(parts, 1, field))
        nanos = _last_int(parts, 2, field)
        if not seconds and not nanos:
            return None
        moment = datetime.fromtimestamp(seconds + nanos / 1e9, UTC)
        if field.type == "meta/v1.Time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if field.type == "intstr.IntOrString":
        parts = _Reader(data).fields()
        if _last_int(parts, 1, field) == 1:
            return _last_bytes(parts, 3).decode()
        return _signed(_last_int(parts, 2, field), bits=32)
    if field.type == "meta/v1.FieldsV1":
        raw_json = _last_bytes(_Reader(data).fields(), 1)
        return json.loads(raw_json) if raw_json else None
    return _decode_message(data, field.type)


def _scalar(raw: int | bytes, type_: str, message: str, field: _Field) -> Any:
    if type_ == "string":
        return _as_bytes(raw, message, field).decode()
    if type_ == "bytes":
        return base64.b64encode(_as_bytes(raw, message, field)).decode()
    if isinstance(raw, bytes):
        raise ApiError.bad_request(f"protobuf field {field.name} of {message} is not a number")
    if type_ == "bool":
        return bool(raw)
    return _signed(raw, bits=32 if type_ == "int32" else 64)


def _signed(value: int, *, bits: int = 64) -> int:
    # negative numbers travel as 64-bit two's complement varints
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return value if bits == 64 else max(min(value, 2**31 - 1), -(2**31))
