"""Encoding and decoding of bus messages, with reusable per-type decoders.

msgspec JSON keeps the bytes readable from any language; decoders are built once per type and
reused, since building one costs far more than decoding a chunk. Every failure surfaces as a
:class:`~ark_mesh.contracts.errors.DecodeError` whose ``reason`` names the field at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from ark_mesh.contracts.errors import DecodeError
from ark_mesh.contracts.messages import AnyMessage, Message

__all__ = [
    "MSG_ID_HEADER",
    "SCHEMA_HEADER",
    "TRACEPARENT_HEADER",
    "Decoder",
    "decode",
    "decode_any",
    "decoder_for",
    "encode",
    "lenient_decoder_for",
    "schema_of",
]

T = TypeVar("T")

SCHEMA_HEADER = "Ark-Schema"
MSG_ID_HEADER = "Nats-Msg-Id"
TRACEPARENT_HEADER = "traceparent"

_encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Encode a message or resource as JSON bytes."""
    return _encoder.encode(value)


class Decoder(Generic[T]):
    """A reusable decoder for one type that raises :class:`DecodeError` instead of msgspec's errors."""

    __slots__ = ("_decoder", "schema", "type")

    def __init__(self, type_: type[T]) -> None:
        self.type = type_
        self.schema: str | None = getattr(type_, "SCHEMA", None) or None
        self._decoder = msgspec.json.Decoder(type_)

    def __call__(self, data: bytes | bytearray | memoryview | str) -> T:
        return self.decode(data)

    def decode(self, data: bytes | bytearray | memoryview | str) -> T:
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise DecodeError(str(exc), schema=self.schema) from exc
        except msgspec.DecodeError as exc:
            raise DecodeError(f"malformed JSON: {exc}", schema=self.schema) from exc


_decoders: dict[Any, Decoder[Any]] = {}


def decoder_for(type_: type[T]) -> Decoder[T]:
    """The shared decoder for ``type_`` (built on first use, then reused)."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = Decoder(type_)
    return decoder


def lenient_decoder_for(type_: type[T]) -> Callable[[bytes], T | None]:
    """A decoder for ``type_`` that yields ``None`` for a foreign or corrupt record.

    For readers that look records up by subject (the newest status of a query, its last chunk):
    one bad record on a subject must not make a query impossible to finish or to order, so it
    counts as no record at all.
    """
    decoder = decoder_for(type_)

    def decode_or_none(data: bytes) -> T | None:
        try:
            return decoder.decode(data)
        except DecodeError:
            return None

    return decode_or_none


def decode(data: bytes | bytearray | memoryview | str, type_: type[T]) -> T:
    """Decode ``data`` as ``type_``; raises :class:`DecodeError` with the reason."""
    return decoder_for(type_).decode(data)


_any_decoder: Decoder[AnyMessage] = Decoder(AnyMessage)  # type: ignore[arg-type]


def decode_any(data: bytes | bytearray | memoryview | str) -> AnyMessage:
    """Decode any bus message, dispatching on its ``schema`` tag."""
    return _any_decoder.decode(data)


def schema_of(message: Message | type[Message]) -> str:
    """The schema id of a message or message type (the value of the ``Ark-Schema`` header)."""
    return message.SCHEMA
