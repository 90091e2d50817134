"""Kubernetes protobuf request bodies for the built-in kinds, decoded into their JSON form.

client-go's generated clientsets (what ``kubectl create namespace|configmap|secret|
serviceaccount|role|...`` use) send ``Content-Type: application/vnd.kubernetes.protobuf`` for
built-in kinds and have no fallback: client-go only retries in JSON after a 415 for CBOR, never
for protobuf. So the emulator must read protobuf to serve kubectl at all. Responses stay JSON,
which those clients accept (they send ``Accept: application/vnd.kubernetes.protobuf,
application/json``).

The envelope is the 4 magic bytes ``k8s\\0`` followed by a ``runtime.Unknown`` message
(``typeMeta`` = 1 with ``apiVersion`` = 1 and ``kind`` = 2, ``raw`` = 2 holding the object).
Objects are decoded with :mod:`.protobuf_schema`: field numbers, JSON names and types of the
built-in kinds the emulator serves and the messages they reach. A protobuf body of any other
kind is answered ``415 UnsupportedMediaType``, and a field the schema does not know is
refused rather than dropped, so nothing is lost silently.

Zero values follow Go's JSON encoding of these types: gogo protobuf writes every non-pointer
scalar, so a zero scalar is kept only where Go's JSON would write it (a pointer field, or one
without ``omitempty``, marked in the schema), a zero ``Time`` is absent, and an empty embedded
struct stays ``{}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.protobuf_schema import KINDS, PACKAGES, SCHEMA

__all__ = ["PROTOBUF", "decode_protobuf", "protobuf_kinds"]

PROTOBUF: Final = "application/vnd.kubernetes.protobuf"
_MAGIC: Final = b"k8s\x00"

_NUMBERS: Final = frozenset({"bool", "int32", "int64"})
_SCALARS: Final = frozenset({"string", "bytes", *_NUMBERS})
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    type: str
    repeated: bool = False
    map: bool = False
    keep_zero: bool = False  # Go's JSON writes the zero value (pointer, or no omitempty)


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
            keep_zero = type_.endswith("!")
            current[int(number)] = _Field(name, type_.strip("*{}!"), repeated, is_map, keep_zero)
    return messages


_MESSAGES: Final = _parse_schema(SCHEMA)


def protobuf_kinds() -> list[str]:
    """``apiVersion/Kind`` of every kind whose protobuf body the emulator can read."""
    return sorted(f"{api_version}/{kind}" for api_version, kind in KINDS)


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
    message = f"{PACKAGES.get(api_version)}.{kind}"
    if (api_version, kind) not in KINDS:
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
                value_raw = entry.get(2, [b"" if field.type not in _NUMBERS else 0])[-1]
                if field.type in _SCALARS:
                    entries[key] = _scalar(value_raw, field.type, message, field)
                else:  # a map value is kept even when empty, unlike a field
                    entries[key] = _value(value_raw, message, _Field(field.name, field.type))
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
    if field.type not in _NUMBERS:
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
        return value if value or field.repeated or field.keep_zero else None
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
    if field.type == "resource.Quantity":
        return _last_bytes(_Reader(data).fields(), 1).decode() or None
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
