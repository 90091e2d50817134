"""Query records in ``ark-queries`` are sealed with the tenant's key, like every body at rest."""

from __future__ import annotations

import os

from ark_mesh.broker.readmodel import QueryRecord, RecordCodec
from ark_mesh.bus import PayloadCipher
from ark_mesh.contracts import QuerySpec, QueryStatus, QueryTarget


def record(tenant: str) -> QueryRecord:
    return QueryRecord(
        id="3f1c0a9e-0000-4000-8000-000000000001",
        name="secret-plans",
        namespace=tenant,
        tenant=tenant,
        spec=QuerySpec(
            input="the launch date is March 3", target=QueryTarget(type="agent", name="a")
        ),
        status=QueryStatus(phase="pending"),
        creation_timestamp="2026-11-21T10:00:00Z",
    )


def test_records_are_ciphertext_for_tenants_with_keys_and_clear_for_others() -> None:
    cipher = PayloadCipher({"team-a": {"k1": os.urandom(32)}})
    codec = RecordCodec(cipher)
    sealed = codec.encode(record("team-a"))
    assert b"launch date" not in sealed
    assert codec.decode(f"team-a.{record('team-a').id}", sealed) == record("team-a")
    clear = codec.encode(record("team-b"))
    assert b"launch date" in clear
    assert codec.decode(f"team-b.{record('team-b').id}", clear) == record("team-b")


def test_a_record_does_not_open_under_another_key_or_tenant() -> None:
    key = os.urandom(32)
    codec = RecordCodec(PayloadCipher({"team-a": {"k1": key}, "team-b": {"k1": key}}))
    sealed = codec.encode(record("team-a"))
    # Same key material, other tenant's entry: the KV key is the associated data.
    assert codec.decode(f"team-b.{record('team-a').id}", sealed) is None
    stranger = RecordCodec(PayloadCipher({"team-a": {"k1": os.urandom(32)}}))
    assert stranger.decode(f"team-a.{record('team-a').id}", sealed) is None
