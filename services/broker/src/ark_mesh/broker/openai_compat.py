"""OpenAI shapes built from the mesh's messages (pure, no I/O): chat completions from a
query's chunks and status, embeddings lists from an ``EmbeddingsResult``, and OpenAI's error
object.

Streaming answers forward the query's chunks as they are stored — they already are OpenAI
``chat.completion.chunk`` objects with Ark's ``ark`` object — so clients see exactly what the
chunk stream holds, including the final chunk with ``ark.completedQuery``. The non-streaming
answer is a ``chat.completion`` whose ``usage`` is the query's real token usage (Ark's API
counts words instead) and whose ``ark.queryStatus`` is the full Query status.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any, Literal

import msgspec

from ark_mesh.contracts import EmbeddingsResult, QueryStatus

__all__ = [
    "chat_completion",
    "completion_error",
    "embeddings_list",
    "openai_chunk",
    "openai_error",
]


def openai_chunk(data: bytes) -> bytes:
    """A stored chunk as an OpenAI client expects it: the bus-only ``schema`` tag removed."""
    chunk: dict[str, Any] = msgspec.json.decode(data)
    chunk.pop("schema", None)
    return msgspec.json.encode(chunk)


def chat_completion(*, query_id: str, name: str, model: str, status: QueryStatus) -> dict[str, Any]:
    content = status.response.content if status.response is not None else ""
    usage = status.token_usage
    return {
        "id": name,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
        "ark": {"query": query_id, "queryStatus": msgspec.to_builtins(status)},
    }


def completion_error(status: QueryStatus) -> dict[str, Any]:
    """Ark's answer when the query ended in ``error`` or ``canceled``: ``{detail: {…}}``."""
    message = status.error or (status.response.content if status.response is not None else "")
    return {
        "detail": {
            "message": message or f"query ended in phase {status.phase!r}",
            "errors": [],
            "phase": status.phase,
        },
        "error": {"message": message or f"query ended in phase {status.phase!r}"},
    }


def embeddings_list(
    result: EmbeddingsResult, *, model: str, encoding_format: Literal["float", "base64"]
) -> dict[str, Any]:
    """OpenAI's ``list`` of ``embedding`` objects, in input order. ``base64`` packs each vector
    as little-endian float32 — what the ``openai`` client asks for unless told otherwise."""
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(result.embeddings or []):
        encoded: list[float] | str = vector
        if encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = result.usage
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
    }


def openai_error(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object; ``param`` names the offending request field, as OpenAI does."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
