"""OpenAI wire shapes of the fake model server, as pure functions (no I/O).

Reading: an incoming chat-completions, Responses or embeddings body is reduced to a
:class:`ModelRequest` that rules can match on. Writing: a scripted :class:`Reply` becomes a
``chat.completion`` object, the exact ``chat.completion.chunk`` sequence a streaming provider
sends, a Responses object or its SSE events, or an embeddings list. Keeping this apart from the
HTTP server lets the shapes be checked without sockets and keeps the server a thin loop.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ark_mesh.testing.fake_llm.script import (
    Endpoint,
    ModelRequest,
    Reply,
    ScriptedError,
    ScriptedToolCall,
    Usage,
    render_content,
)

__all__ = [
    "Answer",
    "BadRequestError",
    "answer_for",
    "chat_chunks",
    "chat_completion",
    "default_reply",
    "embedding_inputs",
    "embedding_vector",
    "embeddings_response",
    "error_body",
    "example_for_schema",
    "parse_request",
    "responses_events",
    "responses_object",
]

EMBEDDING_DIMENSIONS = 16


class BadRequestError(ValueError):
    """The request body is not something an OpenAI endpoint would accept (answered with 400)."""


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of text parts (chat or Responses)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return str(content)


def parse_request(endpoint: Endpoint, body: Any, headers: Mapping[str, str]) -> ModelRequest:
    """Reduce a request body to the fields rules match on; malformed bodies raise BadRequestError."""
    if not isinstance(body, Mapping):
        raise BadRequestError("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("'model' is required")
    if endpoint == "chat":
        parsed = _parse_chat(model, body, headers)
    elif endpoint == "responses":
        parsed = _parse_responses(model, body, headers)
    else:
        inputs = embedding_inputs(body)
        parsed = ModelRequest(
            endpoint, model, dict(headers), last_user=inputs[-1] if inputs else ""
        )
    return replace(parsed, stream=body.get("stream") is True)


def _parse_chat(model: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> ModelRequest:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("'messages' must be a non-empty array")
    last_user = system = last_tool = ""
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequestError(f"messages[{index}] must be an object with a 'role'")
        role = message["role"]
        text = _text_of(message.get("content"))
        if role == "user":
            last_user = text
        elif role in ("system", "developer") and not system:
            system = text
        elif role == "tool":
            last_tool = text
    return ModelRequest(
        endpoint="chat",
        model=model,
        headers=dict(headers),
        last_user=last_user,
        system=system,
        last_role=str(messages[-1]["role"]),
        last_tool=last_tool,
        tool_names=_tool_names(body.get("tools")),
        json_schema=_json_schema(body.get("response_format")),
    )


def _parse_responses(
    model: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> ModelRequest:
    raw_input = body.get("input")
    instructions = body.get("instructions")
    system = instructions if isinstance(instructions, str) else ""
    last_user = last_tool = last_role = ""
    if isinstance(raw_input, str):
        last_user, last_role = raw_input, "user"
    elif isinstance(raw_input, list):
        for item in raw_input:
            if not isinstance(item, Mapping):
                raise BadRequestError("'input' items must be objects")
            if item.get("type") == "function_call_output":
                last_tool, last_role = _text_of(item.get("output")), "tool"
                continue
            role = item.get("role")
            if not isinstance(role, str):
                continue
            last_role = role
            if role == "user":
                last_user = _text_of(item.get("content"))
            elif role in ("system", "developer") and not system:
                system = _text_of(item.get("content"))
    else:
        raise BadRequestError("'input' must be a string or an array of items")
    text_format = body.get("text")
    schema = None
    if isinstance(text_format, Mapping) and isinstance(text_format.get("format"), Mapping):
        fmt = text_format["format"]
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), Mapping):
            schema = fmt["schema"]
    return ModelRequest(
        endpoint="responses",
        model=model,
        headers=dict(headers),
        last_user=last_user,
        system=system,
        last_role=last_role,
        last_tool=last_tool,
        tool_names=_tool_names(body.get("tools")),
        json_schema=schema,
    )


def _tool_names(tools: Any) -> frozenset[str]:
    names = set()
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
        elif isinstance(tool.get("name"), str):
            names.add(tool["name"])
    return frozenset(names)


def _json_schema(response_format: Any) -> Mapping[str, Any] | None:
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if isinstance(spec, Mapping) and isinstance(spec.get("schema"), Mapping):
        return spec["schema"]  # type: ignore[no-any-return]
    return {}


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts of an embeddings request (token arrays are turned into text for hashing)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    if isinstance(raw, list) and all(isinstance(item, int) for item in raw):
        return [" ".join(str(token) for token in raw)]
    if isinstance(raw, list) and all(isinstance(item, list) for item in raw):
        return [" ".join(str(token) for token in item) for item in raw]
    raise BadRequestError("'input' must be a string, an array of strings or token arrays")


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """A reply resolved against its request: final text, tool calls with ids, usage."""

    content: str | None
    tool_calls: tuple[tuple[str, ScriptedToolCall], ...]
    usage: Usage
    finish_reason: str
    chunk_words: int


def default_reply(request: ModelRequest) -> Reply:
    """The unscripted answer: echo the last user message (or a schema example if asked)."""
    if request.json_schema is not None:
        return Reply(json_value=example_for_schema(request.json_schema))
    return Reply(content=f"Echo: {request.last_user}" if request.last_user else "Echo.")


def answer_for(reply: Reply, request: ModelRequest, mint_call_id: Callable[[], str]) -> Answer:
    if reply.json_value is not None:
        content: str | None = json.dumps(reply.json_value)
    elif reply.content is not None:
        content = render_content(reply.content, request)
    else:
        content = None
    calls = tuple((call.id or mint_call_id(), call) for call in reply.tool_calls)
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    return Answer(content, calls, reply.usage, finish, reply.chunk_words)


def _usage_chat(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_completion(answer: Answer, *, model: str, id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call_id, call in answer.tool_calls
        ]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": _usage_chat(answer.usage),
    }


def _word_pieces(text: str, words_per_piece: int) -> list[str]:
    """Split text into pieces of N words, keeping the whitespace so pieces join back exactly."""
    words = text.split(" ")
    pieces = []
    for start in range(0, len(words), words_per_piece):
        piece = " ".join(words[start : start + words_per_piece])
        if start + words_per_piece < len(words):
            piece += " "
        pieces.append(piece)
    return [p for p in pieces if p]


def chat_chunks(
    answer: Answer, *, model: str, id: str, created: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer, in the order OpenAI sends them.

    A role chunk opens; content arrives in word pieces; each tool call opens with its
    ``index``/``id``/``type``/``function.name`` and then streams its ``arguments`` in fragments
    (clients must accumulate them by ``index``); a chunk with an empty delta carries the
    ``finish_reason``; with ``include_usage`` every chunk has ``usage: null`` and one last chunk
    with no choices carries the usage.
    """

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": ""})
    for piece in _word_pieces(answer.content or "", answer.chunk_words):
        yield chunk({"content": piece})
    for index, (call_id, call) in enumerate(answer.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        arguments = call.arguments_json()
        middle = len(arguments) // 2
        for fragment in (arguments[:middle], arguments[middle:]):
            if fragment:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, answer.finish_reason)
    if include_usage:
        yield {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage_chat(answer.usage),
        }


# --------------------------------------------------------------------------- Responses API


def _usage_responses(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _output_items(answer: Answer, id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.content is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_{id}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": answer.content, "annotations": []}],
            }
        )
    for call_id, call in answer.tool_calls:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{call_id}",
                "call_id": call_id,
                "name": call.name,
                "arguments": call.arguments_json(),
                "status": "completed",
            }
        )
    return items


def responses_object(
    answer: Answer | None, *, model: str, id: str, created: int, status: str = "completed"
) -> dict[str, Any]:
    """A Responses API ``response`` object; ``answer=None`` gives the empty in-progress shell."""
    return {
        "id": f"resp_{id}",
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": _output_items(answer, id) if answer else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage_responses(answer.usage) if answer else None,
        "error": None,
        "incomplete_details": None,
    }


def responses_events(
    answer: Answer, *, model: str, id: str, created: int
) -> Iterator[dict[str, Any]]:
    """The SSE events of a streamed Responses answer (each has ``type`` and ``sequence_number``)."""
    sequence = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal sequence
        sequence += 1
        return {"type": kind, "sequence_number": sequence - 1, **fields}

    shell = responses_object(None, model=model, id=id, created=created, status="in_progress")
    yield event("response.created", response=shell)
    yield event("response.in_progress", response=shell)
    for output_index, item in enumerate(_output_items(answer, id)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            opening = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=output_index, item=opening)
            empty = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
            yield event("response.content_part.added", **where, part=empty)
            for piece in _word_pieces(text, answer.chunk_words):
                yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
            yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part=item["content"][0])
        else:
            opening = {**item, "status": "in_progress", "arguments": ""}
            yield event("response.output_item.added", output_index=output_index, item=opening)
            yield event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=output_index,
                delta=item["arguments"],
            )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=output_index,
                arguments=item["arguments"],
                name=item["name"],
            )
        yield event("response.output_item.done", output_index=output_index, item=item)
    final = responses_object(answer, model=model, id=id, created=created)
    yield event("response.completed", response=final)


# --------------------------------------------------------------------------- embeddings


def embedding_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector derived from the text's SHA-256 stream: same text, same vector."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings_response(
    inputs: list[str],
    *,
    model: str,
    dimensions: int,
    encoding_format: str,
    usage: Usage,
) -> dict[str, Any]:
    """An embeddings list; ``base64`` packs little-endian float32 as the OpenAI client expects."""
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        encoded: list[float] | str = vector
        if encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }


# --------------------------------------------------------------------------- errors, schemas


def error_body(error: ScriptedError) -> dict[str, Any]:
    kind = error.type or ("rate_limit_error" if error.status == 429 else "server_error")
    return {"error": {"message": error.message, "type": kind, "param": None, "code": error.code}}


def example_for_schema(schema: Mapping[str, Any]) -> Any:
    """A small document that satisfies a JSON schema (objects, arrays, scalars, enums, const)."""
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return example_for_schema(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: example_for_schema(sub) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        minimum = int(schema.get("minItems", 0))
        if isinstance(items, Mapping):
            return [example_for_schema(items) for _ in range(max(minimum, 1))]
        return []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"
