"""Recovering the query behind a work message that could not be decoded.

A dead-lettered ``QueryRequest`` that does not decode still belongs to a query someone is
waiting for (a broker client on its SSE stream, a Query CR): its stream must end. What can be
salvaged is taken from, in order, the body read as loose JSON, the ``Nats-Msg-Id`` header
(``<queryId>:<generation>``) and the subject (the tenant). Without a usable query id nothing can
be ended, and ``None`` is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from ark_mesh.contracts import (
    MSG_ID_HEADER,
    DeadLetter,
    QueryRequest,
    QuerySpec,
    SubjectError,
    subjects,
)

__all__ = ["recover_request"]


def _loose_body(data: bytes) -> Mapping[str, Any]:
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _token(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return subjects.validate_token(value, what)
    except SubjectError:
        return None


def recover_request(letter: DeadLetter) -> QueryRequest | None:
    """The most complete :class:`QueryRequest` the dead letter allows, or ``None``."""
    body = _loose_body(letter.data)
    msg_id = (letter.headers or {}).get(MSG_ID_HEADER, "")
    id_part, _, generation_part = msg_id.rpartition(":")
    try:
        tenant_from_subject: str | None = subjects.parse(letter.subject).tenant
    except SubjectError:
        tenant_from_subject = None
    query_id = _token(_text(body.get("queryId")) or _text(id_part), "query id")
    tenant = _token(_text(body.get("tenant")) or tenant_from_subject, "tenant")
    if query_id is None or tenant is None:
        return None
    generation = body.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool):
        generation = int(generation_part) if generation_part.isdigit() else 1
    try:
        spec = msgspec.convert(body.get("spec"), QuerySpec)
    except msgspec.ValidationError:
        spec = QuerySpec(input="")
    origin = body.get("origin")
    return QueryRequest(
        query_id=query_id,
        origin=origin if origin in ("controller", "broker") else "controller",
        name=_text(body.get("name")) or "",
        namespace=_text(body.get("namespace")) or tenant,
        tenant=tenant,
        generation=generation,
        spec=spec,
        submitted_at=_text(body.get("submittedAt")) or datetime.now(UTC).isoformat(),
        # A broker-mode query's mirror (if it asked for one) must still get its ending.
        create_resource=body.get("createResource") is True,
    )
