"""Per-tenant encryption of payload bodies at rest (ARCHITECTURE §1 and §6).

JetStream keeps message bodies on disk (stream files, KV buckets, the DLQ) and anyone with
access to the server's store or to another tenant's subjects could read them. With keys
configured for a tenant, every body the bus publishes on ``ark.<tenant>.…`` is stored as
ciphertext under that tenant's key, and every consumer of the bus (worker, stream reader,
cancel channel) opens it again before decoding — transparently: handlers and readers see the
same messages as without encryption.

Choices, and why:

* **AES-256-GCM** (``cryptography``'s ``AESGCM``): authenticated, fast (AES-NI), in every
  language's standard toolbox, so consumers outside Python can read the wire format below.
* **A random 96-bit nonce per message.** Messages are independent and written by many
  replicas at once; a counter would need coordination. Random nonces are safe for about 2³²
  messages per key — rotate keys long before that (rotation is cheap, see below).
* **The subject is associated data.** A ciphertext copied to another subject — another
  query, another tenant — fails authentication instead of being accepted as that subject's
  data. The envelope's own prefix (format version, key id) is authenticated too, so the key id
  cannot be swapped.
* **A key id in every message** so keys rotate without downtime: every configured key of a
  tenant decrypts, the *primary* one encrypts (:class:`~ark_mesh.bus.config.TenantEncryptionSettings`).
* **Routing metadata stays in clear**: subject, ``Ark-Schema``, ``Nats-Msg-Id`` (dedupe needs
  it, and a dead-lettered query is recovered from it), ``traceparent``. They carry no tenant
  data. Only the body is encrypted.
* **A self-describing envelope**, not headers alone: KV values have no headers, and a body
  that lost its headers (copied by a tool) must still be recognised as ciphertext rather than
  fed to a JSON decoder.
* **Failures are permanent.** A body that cannot be opened (wrong or unknown key, tampered,
  moved, or clear text for a tenant that requires encryption) will never open on a retry:
  the worker dead-letters it with a reason naming subject and key id, readers skip it.
  Dead letters keep the original (encrypted) bytes and are themselves published on the
  tenant's DLQ subject, so they are encrypted again — tenant data never lands in clear in
  ``ARK_DLQ``.
* **Fail closed for required tenants**: a process without a key for a tenant listed in
  ``required_tenants`` refuses to publish for it (:class:`~ark_mesh.bus.errors.EncryptionRequiredError`)
  and rejects clear text arriving for it.

Wire format (body)::

    0x00 'a' 'r' 'k' | version (1 byte, =1) | len(key id) (1 byte) | key id (ASCII)
      | nonce (12 bytes) | AES-256-GCM ciphertext with its 16-byte tag

    associated data = everything before the nonce + the subject (UTF-8)

plus the headers ``Ark-Encryption: aes-256-gcm`` and ``Ark-Key-Id: <key id>``. A leading NUL
byte never starts a JSON document, so clear and sealed bodies cannot be confused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ark_mesh.bus.config import EncryptionSettings, TenantEncryptionSettings
from ark_mesh.bus.context import tenant_of
from ark_mesh.bus.errors import DecryptionError, EncryptionConfigError, EncryptionRequiredError
from ark_mesh.contracts import SubjectError, subjects

__all__ = [
    "ALGORITHM",
    "ENCRYPTION_HEADER",
    "KEY_ID_HEADER",
    "KEY_SIZE",
    "PayloadCipher",
    "is_sealed",
    "sealed_key_id",
]

ENCRYPTION_HEADER: Final = "Ark-Encryption"
KEY_ID_HEADER: Final = "Ark-Key-Id"
ALGORITHM: Final = "aes-256-gcm"
KEY_SIZE: Final = 32

_MAGIC: Final = b"\x00ark"
_VERSION: Final = 1
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_HEAD: Final = len(_MAGIC) + 2  # magic, version, key id length
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is an encryption envelope (rather than a clear body)."""
    return data.startswith(_MAGIC)


def sealed_key_id(data: bytes) -> str | None:
    """The key id named by an envelope, or ``None`` if ``data`` is not a readable envelope."""
    parsed = _parse(data)
    return parsed[1] if parsed is not None else None


def _prefix(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return _MAGIC + bytes((_VERSION, len(encoded))) + encoded


def _parse(data: bytes) -> tuple[int, str, bytes, bytes, bytes] | None:
    """``(version, key id, authenticated prefix, nonce, ciphertext)`` or ``None``."""
    if not data.startswith(_MAGIC) or len(data) < _HEAD:
        return None
    version, id_length = data[len(_MAGIC)], data[len(_MAGIC) + 1]
    end = _HEAD + id_length
    if len(data) < end + _NONCE_SIZE + _TAG_SIZE:
        return None
    try:
        key_id = data[_HEAD:end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return version, key_id, data[:end], data[end : end + _NONCE_SIZE], data[end + _NONCE_SIZE :]


@dataclass(frozen=True, slots=True)
class _Keyring:
    """One tenant's keys: all decrypt, ``primary`` encrypts."""

    primary: str
    primary_prefix: bytes
    primary_aead: AESGCM
    by_id: Mapping[str, AESGCM]


class PayloadCipher:
    """Seals and opens message bodies with per-tenant keys; one per :class:`~ark_mesh.bus.Bus`.

    ``keys`` maps tenant → ``{key id: 32-byte key}``; the *last* key of a tenant encrypts
    unless ``primary`` names another. Usually built with :meth:`from_settings`. A cipher with
    no keys and no required tenants changes nothing, but still recognises ciphertext it cannot
    open and says so (instead of a confusing decode error).
    """

    def __init__(
        self,
        keys: Mapping[str, Mapping[str, bytes]] | None = None,
        *,
        primary: Mapping[str, str] | None = None,
        required_tenants: Iterable[str] = (),
    ) -> None:
        rings: dict[str, _Keyring] = {}
        for tenant, tenant_keys in (keys or {}).items():
            _check_tenant(tenant)
            if not tenant_keys:
                raise EncryptionConfigError("no keys listed", tenant=tenant)
            by_id: dict[str, AESGCM] = {}
            for key_id, key in tenant_keys.items():
                _check_key_id(tenant, key_id)
                if len(key) != KEY_SIZE:
                    raise EncryptionConfigError(
                        f"must be {KEY_SIZE} bytes, got {len(key)}", tenant=tenant, key_id=key_id
                    )
                by_id[key_id] = AESGCM(key)
            chosen = (primary or {}).get(tenant) or list(tenant_keys)[-1]
            if chosen not in by_id:
                raise EncryptionConfigError(
                    f"primary key is not among the tenant's keys ({', '.join(by_id)})",
                    tenant=tenant,
                    key_id=chosen,
                )
            rings[tenant] = _Keyring(chosen, _prefix(chosen), by_id[chosen], by_id)
        required = frozenset(required_tenants)
        for tenant in required:
            _check_tenant(tenant)
        self._rings = rings
        self._required = required
        self._active = bool(rings or required)

    @classmethod
    def from_settings(
        cls, settings: EncryptionSettings, *, environ: Mapping[str, str] | None = None
    ) -> PayloadCipher:
        """Load every key now (files and environment variables), so a missing or malformed key
        stops the service at start-up with an error naming the tenant and the key id."""
        env = os.environ if environ is None else environ
        keys: dict[str, dict[str, bytes]] = {}
        primary: dict[str, str] = {}
        for tenant, tenant_settings in settings.tenants.items():
            keys[tenant] = _load_tenant(tenant, tenant_settings, env)
            if tenant_settings.primary is not None:
                primary[tenant] = tenant_settings.primary
        return cls(keys, primary=primary, required_tenants=settings.required_tenants)

    # -- facts ----------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """False when no tenant has keys and none is required (nothing is ever sealed)."""
        return self._active

    @property
    def tenants(self) -> frozenset[str]:
        """Tenants this cipher holds keys for."""
        return frozenset(self._rings)

    def encrypts(self, tenant: str) -> bool:
        return tenant in self._rings

    def primary_key_id(self, tenant: str) -> str | None:
        ring = self._rings.get(tenant)
        return ring.primary if ring is not None else None

    # -- sealing --------------------------------------------------------------------------------

    def seal(
        self,
        subject: str,
        payload: bytes,
        headers: MutableMapping[str, str] | None = None,
        *,
        tenant: str | None = None,
    ) -> bytes:
        """The body to store for ``payload`` on ``subject``; adds the encryption headers.

        Clear bodies of tenants without keys come back unchanged. An already sealed body is
        passed through (replaying a dead letter's bytes), since re-sealing it would only hide
        it from its reader. ``tenant`` overrides the subject's tenant token, for subjects
        outside the ``ark.<tenant>.…`` grammar (e.g. a KV key's ``$KV.<bucket>.<key>``).
        Raises :class:`EncryptionRequiredError` for a required tenant without a key.
        """
        if not self._active:
            return payload
        owner = tenant if tenant is not None else tenant_of(subject)
        if owner is None:
            return payload
        ring = self._rings.get(owner)
        if payload.startswith(_MAGIC):
            if headers is not None:
                parsed = _parse(payload)
                headers[ENCRYPTION_HEADER] = ALGORITHM
                if parsed is not None:
                    headers[KEY_ID_HEADER] = parsed[1]
            return payload
        if ring is None:
            if owner in self._required:
                raise EncryptionRequiredError(subject, owner)
            return payload
        nonce = os.urandom(_NONCE_SIZE)
        prefix = ring.primary_prefix
        sealed = ring.primary_aead.encrypt(nonce, payload, prefix + subject.encode())
        if headers is not None:
            headers[ENCRYPTION_HEADER] = ALGORITHM
            headers[KEY_ID_HEADER] = ring.primary
        return b"".join((prefix, nonce, sealed))

    def open(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        tenant: str | None = None,
    ) -> bytes:
        """The clear body of ``data`` stored on ``subject``; raises :class:`DecryptionError`.

        Clear bodies pass through, except for a tenant in ``required_tenants``.
        """
        marked = headers.get(ENCRYPTION_HEADER) if headers else None
        if marked is None and not data.startswith(_MAGIC):
            if self._required:
                owner = tenant if tenant is not None else tenant_of(subject)
                if owner in self._required:
                    raise DecryptionError(
                        subject, None, f"clear text for tenant {owner!r}, which requires encryption"
                    )
            return data
        header_key = headers.get(KEY_ID_HEADER) if headers else None
        if marked is not None and marked != ALGORITHM:
            raise DecryptionError(subject, header_key, f"unsupported algorithm {marked!r}")
        parsed = _parse(data)
        if parsed is None:
            raise DecryptionError(subject, header_key, "the body is not a readable envelope")
        version, key_id, prefix, nonce, ciphertext = parsed
        if version != _VERSION:
            raise DecryptionError(subject, key_id, f"unsupported envelope version {version}")
        owner = tenant if tenant is not None else tenant_of(subject)
        ring = self._rings.get(owner) if owner is not None else None
        if ring is None:
            raise DecryptionError(subject, key_id, f"no key configured for tenant {owner!r}")
        aead = ring.by_id.get(key_id)
        if aead is None:
            raise DecryptionError(
                subject,
                key_id,
                f"unknown key id for tenant {owner!r} (known: {', '.join(ring.by_id)})",
            )
        try:
            return aead.decrypt(nonce, ciphertext, prefix + subject.encode())
        except InvalidTag:
            raise DecryptionError(
                subject,
                key_id,
                "authentication failed (wrong key, tampered body, or stored under another subject)",
            ) from None

    def __repr__(self) -> str:
        # Never the keys themselves.
        rings = {tenant: ring.primary for tenant, ring in self._rings.items()}
        return f"PayloadCipher(primary={rings!r}, required={sorted(self._required)!r})"


def _check_tenant(tenant: str) -> None:
    try:
        subjects.validate_token(tenant, "tenant")
    except SubjectError as error:
        raise EncryptionConfigError(str(error), tenant=tenant) from None


def _check_key_id(tenant: str, key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise EncryptionConfigError(
            "key ids are 1-64 characters of letters, digits, '_', '.', '-'",
            tenant=tenant,
            key_id=key_id,
        )


def _load_tenant(
    tenant: str, settings: TenantEncryptionSettings, env: Mapping[str, str]
) -> dict[str, bytes]:
    if not settings.keys:
        raise EncryptionConfigError("no keys listed", tenant=tenant)
    loaded: dict[str, bytes] = {}
    for key in settings.keys:
        _check_key_id(tenant, key.id)
        if key.id in loaded:
            raise EncryptionConfigError("key id listed twice", tenant=tenant, key_id=key.id)
        if (key.file is None) == (key.env is None):
            raise EncryptionConfigError(
                "give exactly one of 'file' or 'env' (key material is never inline)",
                tenant=tenant,
                key_id=key.id,
            )
        if key.file is not None:
            where = f"file {key.file!r}"
            try:
                text = Path(key.file).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as error:
                raise EncryptionConfigError(
                    f"cannot read {where}: {type(error).__name__}", tenant=tenant, key_id=key.id
                ) from None
        else:
            assert key.env is not None
            where = f"environment variable {key.env!r}"
            value = env.get(key.env)
            if value is None:
                raise EncryptionConfigError(f"{where} is not set", tenant=tenant, key_id=key.id)
            text = value
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionConfigError(
                f"{where} does not hold base64", tenant=tenant, key_id=key.id
            ) from None
        if len(material) != KEY_SIZE:
            raise EncryptionConfigError(
                f"{where} holds {len(material)} bytes, a key is {KEY_SIZE} (base64 of 32 "
                "random bytes)",
                tenant=tenant,
                key_id=key.id,
            )
        loaded[key.id] = material
    return loaded
