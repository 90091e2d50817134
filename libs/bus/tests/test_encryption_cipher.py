"""PayloadCipher on its own: the envelope, associated data, key ids, fail-closed tenants, and
loading keys from files and environment variables with errors naming tenant and key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import msgspec
import pytest

from ark_mesh.bus import (
    BusConfig,
    DecryptionError,
    EncryptionConfigError,
    EncryptionKeySettings,
    EncryptionRequiredError,
    EncryptionSettings,
    PayloadCipher,
    PublishError,
    TenantEncryptionSettings,
)
from ark_mesh.bus.encryption import (
    ALGORITHM,
    ENCRYPTION_HEADER,
    KEY_ID_HEADER,
    is_sealed,
    sealed_key_id,
)
from ark_mesh.contracts import subjects

KEY_A1 = os.urandom(32)
KEY_A2 = os.urandom(32)
KEY_B1 = os.urandom(32)
SECRET = b'{"input":"the quarterly numbers of project nightingale"}'


def _cipher(**changes: object) -> PayloadCipher:
    options: dict[str, object] = {
        "keys": {"team-a": {"a1": KEY_A1}, "team-b": {"b1": KEY_B1}},
    }
    options.update(changes)
    return PayloadCipher(**options)  # type: ignore[arg-type]


def test_sealed_body_is_ciphertext_with_headers_and_opens_again() -> None:
    cipher = _cipher()
    subject = subjects.query_chunk("team-a", "q1")
    headers: dict[str, str] = {"Ark-Schema": "ark.chunk.v1", "Nats-Msg-Id": "q1:1"}
    sealed = cipher.seal(subject, SECRET, headers)

    assert is_sealed(sealed)
    assert not is_sealed(SECRET)
    assert b"nightingale" not in sealed
    assert sealed_key_id(sealed) == "a1"
    assert headers == {
        "Ark-Schema": "ark.chunk.v1",
        "Nats-Msg-Id": "q1:1",
        ENCRYPTION_HEADER: ALGORITHM,
        KEY_ID_HEADER: "a1",
    }
    assert cipher.open(subject, sealed, headers) == SECRET
    # Headers may be lost (KV values have none): the envelope alone is enough.
    assert cipher.open(subject, sealed) == SECRET
    # A fresh nonce per message: the same body never gives the same ciphertext.
    assert cipher.seal(subject, SECRET) != sealed


def test_ciphertext_moved_to_another_subject_or_tenant_does_not_open() -> None:
    cipher = _cipher()
    subject = subjects.query_chunk("team-a", "q1")
    sealed = cipher.seal(subject, SECRET)

    with pytest.raises(DecryptionError, match="authentication failed") as other_query:
        cipher.open(subjects.query_chunk("team-a", "q2"), sealed)
    assert other_query.value.key_id == "a1"
    with pytest.raises(DecryptionError, match="unknown key id for tenant 'team-b'"):
        cipher.open(subjects.query_chunk("team-b", "q1"), sealed)


def test_another_tenants_key_under_the_same_id_cannot_open_it() -> None:
    subject = subjects.work_query("team-a")
    sealed = _cipher().seal(subject, SECRET)
    impostor = PayloadCipher({"team-a": {"a1": KEY_B1}})

    with pytest.raises(DecryptionError) as caught:
        impostor.open(subject, sealed)
    assert caught.value.key_id == "a1"
    assert subject in str(caught.value)
    assert "nightingale" not in str(caught.value)


def test_tampered_body_does_not_open() -> None:
    cipher = _cipher()
    subject = subjects.work_query("team-a")
    sealed = bytearray(cipher.seal(subject, SECRET))
    sealed[-20] ^= 0x01
    with pytest.raises(DecryptionError, match="authentication failed"):
        cipher.open(subject, bytes(sealed))
    # The key id is authenticated too: relabelling the envelope does not help.
    relabelled = cipher.seal(subject, SECRET).replace(b"a1", b"a2", 1)
    rotated = PayloadCipher({"team-a": {"a1": KEY_A1, "a2": KEY_A1}})
    with pytest.raises(DecryptionError, match="authentication failed"):
        rotated.open(subject, relabelled)


def test_rotation_old_keys_decrypt_the_primary_encrypts() -> None:
    subject = subjects.query_event("team-a", "q1")
    old = PayloadCipher({"team-a": {"a1": KEY_A1}}).seal(subject, SECRET)
    rotated = PayloadCipher({"team-a": {"a1": KEY_A1, "a2": KEY_A2}})
    new = rotated.seal(subject, SECRET)

    assert sealed_key_id(new) == "a2"
    assert rotated.open(subject, old) == SECRET
    assert rotated.open(subject, new) == SECRET
    staged = PayloadCipher({"team-a": {"a1": KEY_A1, "a2": KEY_A2}}, primary={"team-a": "a1"})
    assert sealed_key_id(staged.seal(subject, SECRET)) == "a1"


def test_tenants_without_keys_are_untouched_and_ciphertext_without_a_key_is_named() -> None:
    cipher = _cipher()
    headers: dict[str, str] = {}
    plain_subject = subjects.work_query("team-c")
    assert cipher.seal(plain_subject, SECRET, headers) is SECRET
    assert headers == {}
    assert cipher.open(plain_subject, SECRET) is SECRET
    assert cipher.seal("not-ark.subject", SECRET) is SECRET

    sealed = cipher.seal(subjects.work_query("team-a"), SECRET)
    no_keys = PayloadCipher()
    assert not no_keys.active
    with pytest.raises(DecryptionError, match="no key configured for tenant 'team-a'"):
        no_keys.open(subjects.work_query("team-a"), sealed)


def test_required_tenants_fail_closed() -> None:
    cipher = _cipher(required_tenants=("team-a", "team-r"))
    with pytest.raises(EncryptionRequiredError, match="team-r") as refused:
        cipher.seal(subjects.work_query("team-r"), SECRET)
    assert isinstance(refused.value, PublishError)
    with pytest.raises(DecryptionError, match="clear text for tenant 'team-a'"):
        cipher.open(subjects.work_query("team-a"), SECRET)
    # A body that is already sealed (a dead letter replayed) passes through untouched.
    sealed = cipher.seal(subjects.work_query("team-a"), SECRET)
    headers: dict[str, str] = {}
    assert cipher.seal(subjects.work_query("team-a"), sealed, headers) is sealed
    assert headers[KEY_ID_HEADER] == "a1"


def test_marked_but_unreadable_envelopes_are_rejected() -> None:
    cipher = _cipher()
    subject = subjects.work_query("team-a")
    with pytest.raises(DecryptionError, match="not a readable envelope"):
        cipher.open(subject, SECRET, {ENCRYPTION_HEADER: ALGORITHM, KEY_ID_HEADER: "a1"})
    with pytest.raises(DecryptionError, match="unsupported algorithm"):
        cipher.open(subject, SECRET, {ENCRYPTION_HEADER: "rot13"})


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_keys_load_from_files_and_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "a1.key"
    key_file.write_text(_b64(KEY_A1) + "\n")
    config = msgspec.convert(
        {
            "encryption": {
                "tenants": {
                    "team-a": {
                        "keys": [{"id": "a1", "file": str(key_file)}, {"id": "a2", "env": "A2"}]
                    }
                },
                "requiredTenants": ["team-a"],
            }
        },
        BusConfig,
    )
    cipher = PayloadCipher.from_settings(config.encryption, environ={"A2": _b64(KEY_A2)})
    subject = subjects.work_query("team-a")
    assert cipher.primary_key_id("team-a") == "a2"
    assert cipher.open(subject, PayloadCipher({"team-a": {"a1": KEY_A1}}).seal(subject, SECRET))
    assert _b64(KEY_A2) not in repr(cipher)


@pytest.mark.parametrize(
    ("key", "environ", "message"),
    [
        (EncryptionKeySettings(id="k1", env="MISSING"), {}, "'MISSING' is not set"),
        (EncryptionKeySettings(id="k1", env="K"), {"K": "not base64!"}, "does not hold base64"),
        (EncryptionKeySettings(id="k1", env="K"), {"K": _b64(b"short")}, "holds 5 bytes"),
        (EncryptionKeySettings(id="k1"), {}, "exactly one of 'file' or 'env'"),
        (EncryptionKeySettings(id="k1", file="/nonexistent/k1"), {}, "cannot read file"),
        (EncryptionKeySettings(id="bad id", env="K"), {"K": _b64(KEY_A1)}, "key ids are"),
    ],
)
def test_bad_keys_are_named_by_tenant_and_key_id(
    key: EncryptionKeySettings, environ: dict[str, str], message: str
) -> None:
    settings = EncryptionSettings(tenants={"team-a": TenantEncryptionSettings(keys=(key,))})
    with pytest.raises(EncryptionConfigError, match=message) as caught:
        PayloadCipher.from_settings(settings, environ=environ)
    assert caught.value.tenant == "team-a"
    assert caught.value.key_id == key.id
    assert f"tenant 'team-a', key {key.id!r}" in str(caught.value)


def test_inconsistent_tenant_settings_are_refused() -> None:
    env = {"K": _b64(KEY_A1)}
    twice = TenantEncryptionSettings(
        keys=(EncryptionKeySettings(id="k1", env="K"), EncryptionKeySettings(id="k1", env="K"))
    )
    with pytest.raises(EncryptionConfigError, match="listed twice"):
        PayloadCipher.from_settings(EncryptionSettings(tenants={"t": twice}), environ=env)
    unknown_primary = TenantEncryptionSettings(
        keys=(EncryptionKeySettings(id="k1", env="K"),), primary="k9"
    )
    with pytest.raises(EncryptionConfigError, match="primary key is not among"):
        PayloadCipher.from_settings(EncryptionSettings(tenants={"t": unknown_primary}), environ=env)
    with pytest.raises(EncryptionConfigError, match="no keys listed"):
        PayloadCipher.from_settings(
            EncryptionSettings(tenants={"t": TenantEncryptionSettings(keys=())}), environ=env
        )
    with pytest.raises(EncryptionConfigError, match=r"tenant 'a\.b'"):
        PayloadCipher(required_tenants=("a.b",))


def test_a_process_serving_one_tenant_loads_only_that_tenants_keys() -> None:
    """A service sharded by tenant (``tenant: team-a``) holds no other tenant's key: team-b's
    key need not even be present in its environment, and it cannot open team-b's bodies."""
    settings = EncryptionSettings(
        tenants={
            "team-a": TenantEncryptionSettings(keys=(EncryptionKeySettings(id="a1", env="A1"),)),
            "team-b": TenantEncryptionSettings(keys=(EncryptionKeySettings(id="b1", env="B1"),)),
        },
        required_tenants=("team-b",),
    )
    environ = {"A1": _b64(KEY_A1)}  # team-b's key is mounted only where team-b is served
    with pytest.raises(EncryptionConfigError, match="team-b"):
        PayloadCipher.from_settings(settings, environ=environ)
    cipher = PayloadCipher.from_settings(settings.serving("team-a"), environ=environ)
    assert cipher.tenants == {"team-a"}
    subject = subjects.work_query("team-a")
    assert cipher.open(subject, PayloadCipher({"team-a": {"a1": KEY_A1}}).seal(subject, SECRET))
    # team-b stays required: this process refuses to write clear text for it.
    with pytest.raises(EncryptionRequiredError, match="team-b"):
        cipher.seal(subjects.work_query("team-b"), SECRET)
    assert settings.serving(None) is settings
