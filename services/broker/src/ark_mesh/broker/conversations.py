"""Stored OpenAI responses in the KV bucket ``ark-responses``: what ``previous_response_id``
continues and ``GET /openai/v1/responses/{id}`` reads.

Choices, and why:

* **In JetStream, not in the broker's memory**: any broker replica continues a conversation
  another replica started, and a restarted broker still knows it. The responses-reconciler
  never reads it: the broker sends the whole conversation in every ``ResponsesRequest``, so any
  reconciler replica can answer any turn (the request carries its own history, decision 19).
* **One key per response** (``<tenant>.<responseId>``) holding the conversation *through* that
  response (its input and the assistant's answer after the earlier turns), so a turn reads one
  key, not a chain, and continuing from an older response of the same thread forks it, as in
  OpenAI. The tenant in the key is the isolation: another tenant's id is simply not found.
* **Sealed per tenant** like every body at rest (the conversation is the most private thing the
  mesh keeps): associated data is the key's KV subject, so a record copied under another id or
  tenant does not open. A record that does not open or decode counts as missing (logged).
* **Only completed responses are stored**, and only with ``store`` left true; the bucket TTL
  (``topology.responsesBucket.ttl``, 30 days as OpenAI keeps responses) bounds the bucket.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ark_mesh.bus import Bus, DecryptionError, KeyNotFoundError
from ark_mesh.contracts import SubjectError, subjects
from ark_mesh.telemetry import get_logger

__all__ = ["ResponseStore", "StoredResponse", "response_key"]

_log = get_logger(__name__)


class StoredResponse(msgspec.Struct, kw_only=True, frozen=True):
    """One completed response and the conversation through it (OpenAI chat messages; the
    request's ``instructions`` are not part of it: they apply to their own turn only)."""

    id: str
    tenant: str
    model: str
    created_at: int
    completed_at: int
    conversation: list[dict[str, Any]]
    output_text: str
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    instructions: str | None = None
    metadata: dict[str, str] | None = None
    previous_response_id: str | None = None


_decode = msgspec.json.Decoder(StoredResponse).decode
_encode = msgspec.json.Encoder().encode


def response_key(tenant: str, response_id: str) -> str:
    """``<tenant>.<responseId>``; raises :class:`~ark_mesh.contracts.SubjectError` for an id
    that cannot be a key token (it names no stored response)."""
    subjects.validate_token(tenant, "tenant")
    subjects.validate_token(response_id, "response id")
    return f"{tenant}.{response_id}"


class ResponseStore:
    """Read and write stored responses; one per process (it holds no per-response state)."""

    def __init__(self, bus: Bus, *, bucket: str = subjects.RESPONSES_BUCKET) -> None:
        self.bus = bus
        self.bucket = bucket

    def _subject(self, key: str) -> str:
        return f"$KV.{self.bucket}.{key}"

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The tenant's stored response ``response_id``, or ``None`` (never stored, expired,
        another tenant's, or unreadable)."""
        try:
            key = response_key(tenant, response_id)
        except SubjectError:
            return None
        kv = await self.bus.key_value(self.bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            stored = _decode(self.bus.cipher.open(self._subject(key), entry.value, tenant=tenant))
        except (DecryptionError, msgspec.DecodeError) as error:
            _log.warning("unreadable stored response", key=key, error=str(error))
            return None
        if stored.tenant != tenant or stored.id != response_id:
            _log.warning("stored response under a foreign key ignored", key=key)
            return None
        return stored

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Forget the tenant's stored response; whether there was one to forget."""
        if await self.get(tenant, response_id) is None:
            return False
        kv = await self.bus.key_value(self.bucket)
        await kv.purge(response_key(tenant, response_id))
        return True

    async def put(self, stored: StoredResponse) -> None:
        key = response_key(stored.tenant, stored.id)
        kv = await self.bus.key_value(self.bucket)
        body = self.bus.cipher.seal(self._subject(key), _encode(stored), tenant=stored.tenant)
        await kv.put(key, body)
