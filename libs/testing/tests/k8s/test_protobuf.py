"""Protobuf request bodies, encoded here by hand the way client-go's gogo encoder writes them.

The kubectl tests prove the common kinds end to end; these pin the wire details kubectl's
create subcommands do not exercise (times, negative numbers, series, packed fields) and the
refusals.
"""

from __future__ import annotations

import pytest

from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.protobuf import decode_protobuf


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def number(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def chunk(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(field << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = chunk(1, api_version) + chunk(2, kind)
    return b"k8s\x00" + chunk(1, type_meta) + chunk(2, raw)


def meta(name: str, namespace: str = "") -> bytes:
    # gogo writes every non-pointer string, empty or not, and a zero creationTimestamp
    zero_time = number(1, 0) + number(2, 0)
    return chunk(1, chunk(1, name) + chunk(2, "") + chunk(3, namespace) + chunk(8, zero_time))


def test_an_event_with_times_series_and_counts() -> None:
    # 2026-01-02T03:04:05Z = 1767323045 s; the MicroTime carries 123456 µs
    seconds = 1767323045
    reference = chunk(1, "Team") + chunk(2, "default") + chunk(3, "t1")
    raw = (
        meta("t1.1", "default")
        + chunk(2, reference)
        + chunk(3, "TeamCreated")
        + chunk(4, "made")
        + chunk(5, chunk(1, "ctrl") + chunk(2, ""))
        + chunk(6, number(1, seconds))
        + chunk(7, number(1, seconds + 60))
        + number(8, 3)
        + chunk(9, "Normal")
        + chunk(10, number(1, seconds) + number(2, 123456000))
        + chunk(11, number(1, 5) + chunk(2, number(1, seconds + 120)))
    )
    event = decode_protobuf(envelope("v1", "Event", raw))
    assert event == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "t1.1", "namespace": "default"},
        "involvedObject": {"kind": "Team", "namespace": "default", "name": "t1"},
        "reason": "TeamCreated",
        "message": "made",
        "source": {"component": "ctrl"},
        "firstTimestamp": "2026-01-02T03:04:05Z",
        "lastTimestamp": "2026-01-02T03:05:05Z",
        "count": 3,
        "type": "Normal",
        "eventTime": "2026-01-02T03:04:05.123456Z",
        "series": {"count": 5, "lastObservedTime": "2026-01-02T03:06:05.000000Z"},
    }


def test_negative_numbers_maps_of_bytes_and_empty_structs() -> None:
    lease = decode_protobuf(
        envelope(
            "coordination.k8s.io/v1",
            "Lease",
            meta("l", "default") + chunk(2, number(2, -5) + chunk(1, "holder")),
        )
    )
    assert lease["spec"] == {"leaseDurationSeconds": -5, "holderIdentity": "holder"}
    secret = decode_protobuf(
        envelope("v1", "Secret", meta("s") + chunk(2, chunk(1, "k") + chunk(2, b"\x00\xff")))
    )
    assert secret["data"] == {"k": "AP8="}
    namespace = decode_protobuf(envelope("v1", "Namespace", meta("n") + chunk(2, b"")))
    assert namespace["spec"] == {}  # an empty embedded struct stays, as Go's JSON writes it


def test_unknown_fields_kinds_and_envelopes_are_refused() -> None:
    with pytest.raises(ApiError) as unknown_field:
        decode_protobuf(envelope("v1", "ConfigMap", meta("c") + chunk(99, "x")))
    assert unknown_field.value.code == 400
    assert "field 99 of core/v1.ConfigMap" in unknown_field.value.message
    with pytest.raises(ApiError) as unknown_kind:
        decode_protobuf(envelope("batch/v1", "Job", meta("j")))
    assert unknown_kind.value.code == 415
    assert "batch/v1 Job" in unknown_kind.value.message
    with pytest.raises(ApiError) as no_magic:
        decode_protobuf(b'{"kind": "ConfigMap"}')
    assert no_magic.value.code == 400
    with pytest.raises(ApiError) as wrong_wire_type:
        decode_protobuf(envelope("v1", "ConfigMap", chunk(1, chunk(8, chunk(1, "soon")))))
    assert wrong_wire_type.value.code == 400
    with pytest.raises(ApiError) as truncated:
        decode_protobuf(envelope("v1", "ConfigMap", meta("c"))[:-3])
    assert truncated.value.code == 400
