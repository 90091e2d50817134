"""Request bodies of the broker API: typed, strict, and turned into errors that name the field.

Pure protocol code (no I/O). Every body is a msgspec Struct with ``forbid_unknown_fields``, so a
misspelt field is an error instead of a silently ignored option; msgspec's message says *where*
(``$.target.type``), :func:`decode_body` turns that into Ark's ``field``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from ark_mesh.broker.errors import BadRequestError
from ark_mesh.contracts import (
    DurationError,
    QuerySpec,
    parse_duration,
)

__all__ = [
    "QUERY_CREATE_BODY",
    "ChatCompletionRequest",
    "EmbeddingsCreateRequest",
    "QueryCreateRequest",
    "convert_body",
    "decode_body",
    "validate_name",
]

T = TypeVar("T")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_PATTERN = _DNS_SUBDOMAIN.pattern
_DURATION_PATTERN = r"^[+-]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"
_AT = re.compile(r"at `\$(?P<path>[^`]*)`")
_NAMED = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")


class _Strict(
    msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True, frozen=True
):
    """Client bodies: camelCase as Ark's API, unknown fields refused."""


class TargetBody(_Strict, frozen=True):
    type: Literal["agent", "team", "model", "tool"]
    name: NonEmpty


class RequirementBody(_Strict, frozen=True):
    key: NonEmpty
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class SelectorBody(_Strict, frozen=True):
    match_labels: dict[str, str] | None = None
    match_expressions: list[RequirementBody] | None = None


class KeyRefBody(_Strict, frozen=True):
    name: NonEmpty
    key: NonEmpty
    optional: bool | None = None


class ValueFromBody(_Strict, frozen=True):
    config_map_key_ref: KeyRefBody | None = None
    secret_key_ref: KeyRefBody | None = None


class ParameterBody(_Strict, frozen=True):
    name: NonEmpty
    value: str | None = None
    value_from: ValueFromBody | None = None


class MemoryBody(_Strict, frozen=True):
    name: NonEmpty
    namespace: str | None = None


class QueryCreateRequest(_Strict, frozen=True):
    """``POST /v1/queries``, modelled on Ark's QueryCreateRequest (``input`` a user message)."""

    input: NonEmpty
    name: (
        Annotated[str, msgspec.Meta(extra_json_schema={"pattern": _DNS_PATTERN, "maxLength": 253})]
        | None
    ) = None
    type: Literal["user"] | None = None
    target: TargetBody | None = None
    selector: SelectorBody | None = None
    parameters: list[ParameterBody] | None = None
    memory: MemoryBody | None = None
    session_id: NonEmpty | None = None
    conversation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    timeout: (
        Annotated[str, msgspec.Meta(extra_json_schema={"pattern": _DURATION_PATTERN})] | None
    ) = None
    create_resource: bool = False

    def __post_init__(self) -> None:
        # Raised as msgspec.ValidationError by msgspec, which decode_body maps like the others.
        if self.name is not None:
            validate_name(self.name)
        if self.target is None and self.selector is None:
            raise ValueError("either target or selector is required - at `$.target`")
        if self.target is not None and self.selector is not None:
            raise ValueError("give target or selector, not both - at `$.selector`")
        if self.timeout is not None:
            try:
                parse_duration(self.timeout)
            except DurationError as exc:
                raise ValueError(f"{exc} - at `$.timeout`") from None

    def spec(self) -> QuerySpec:
        """The Query spec this request asks for (contracts shapes, validated already)."""
        return msgspec.convert(
            msgspec.to_builtins(
                {
                    "input": self.input,
                    "type": self.type,
                    "target": self.target,
                    "selector": self.selector,
                    "parameters": self.parameters,
                    "memory": self.memory,
                    "sessionId": self.session_id,
                    "conversationId": self.conversation_id,
                    "timeout": self.timeout,
                }
            ),
            QuerySpec,
        )


_TEXT = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1}]}


class StreamOptions(msgspec.Struct, kw_only=True):
    """OpenAI's ``stream_options``: ``include_usage`` asks for one closing usage chunk."""

    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    """``POST /openai/v1/chat/completions``. Unknown OpenAI parameters are accepted (clients
    send many) and, like ``temperature``/``max_tokens`` in Ark, not forwarded to the Query."""

    model: Annotated[
        str,
        msgspec.Meta(min_length=1, extra_json_schema={"pattern": "^(agent|team|model|tool)/.+$"}),
    ]
    messages: Annotated[
        list[dict[str, Any]],
        msgspec.Meta(
            min_length=1,
            # user_input(): the last user message with text is the query's input.
            extra_json_schema={
                "contains": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"const": "user"}, "content": _TEXT},
                }
            },
        ),
    ]
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def target(self) -> dict[str, str]:
        kind, _, name = self.model.partition("/")
        if kind not in ("agent", "team", "model", "tool") or not name:
            raise BadRequestError(
                "Model must be in format 'agent/<name>', 'team/<name>', 'model/<name>' or "
                f"'tool/<name>', got {self.model!r}",
                field="model",
                status=400,
            )
        return {"type": kind, "name": name}

    def user_input(self) -> str:
        """The text of the last user message (Ark keeps only that; context is the conversation)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str) and content:
                return content
            if isinstance(content, list):
                text = "".join(
                    str(part.get("text", ""))
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
                if text:
                    return text
        raise BadRequestError("messages must contain a user message with text", field="messages")

    def meta(self, key: str) -> str | None:
        value = (self.metadata or {}).get(key)
        return str(value) if value not in (None, "") else None


class EmbeddingsCreateRequest(msgspec.Struct, kw_only=True):
    """``POST /openai/v1/embeddings``: OpenAI's body. ``model`` names an embeddings Model
    resource of the caller's namespace (``<name>`` or ``model/<name>``); token-id inputs are
    refused, since the Model's provider may tokenise differently than the caller assumed.
    Unknown OpenAI parameters are accepted, as clients send them, and not forwarded."""

    model: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            extra_json_schema={"pattern": f"^(model/)?{_DNS_PATTERN[1:]}", "maxLength": 259},
        ),
    ]
    input: Annotated[
        str | list[str],
        msgspec.Meta(
            extra_json_schema={
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                ]
            }
        ),
    ]
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    def model_name(self) -> str:
        kind, slash, name = self.model.partition("/")
        if not slash:
            name = kind
        elif kind != "model":
            raise BadRequestError(
                f"model must name an embeddings Model as '<name>' or 'model/<name>', got "
                f"{self.model!r}",
                field="model",
                status=400,
            )
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise BadRequestError(
                f"model {name!r} is not a Model name (a DNS-1123 subdomain)",
                field="model",
                status=400,
            )
        return name

    def texts(self) -> list[str]:
        """The input as a list; every text must be non-empty (OpenAI refuses empty ones too)."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise BadRequestError("input must hold at least one text", field="input")
        for index, text in enumerate(texts):
            if not text:
                field = "input" if isinstance(self.input, str) else f"input[{index}]"
                raise BadRequestError("input texts must not be empty", field=field)
        return texts


def validate_name(name: str) -> str:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ValueError(
            f"name {name!r} must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.', "
            "at most 253 characters) - at `$.name`"
        )
    return name


def _field(message: str) -> str | None:
    path = ""
    found = _AT.search(message)
    if found is not None:
        path = found.group("path").lstrip(".")
    named = _NAMED.search(message)
    if named is not None:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    path = re.sub(r"\.?\[(\d+)\]", r"[\1]", path)
    return path or None


def decode_body(data: bytes, type_: type[T]) -> T:
    """Decode ``data`` as ``type_``: 400 for malformed JSON, 422 naming the field otherwise.

    Malformed covers more than syntax: bytes that are not UTF-8 inside strings and nesting deeper
    than the decoder recurses are the client's mistake too, so they are 400s, never 500s.
    """
    if not data.strip():
        raise BadRequestError("the request body is empty; expected a JSON object", field="body")
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise BadRequestError(message, field=_field(message) or "body") from None
    except msgspec.DecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON: {exc}", field="body", status=400
        ) from None
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid UTF-8: {exc.reason} at byte {exc.start}",
            field="body",
            status=400,
        ) from None
    except RecursionError:
        raise BadRequestError(
            "the request body is nested too deeply to decode", field="body", status=400
        ) from None


def convert_body(values: dict[str, Any], type_: type[T], *, prefix: str) -> T:
    """Validate ``values`` built from another body (``None`` values dropped); errors name the
    field under ``prefix`` (e.g. ``metadata.conversationId``)."""
    try:
        return msgspec.convert(
            {k: v for k, v in values.items() if v is not None}, type_, str_keys=True
        )
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = _field(message)
        raise BadRequestError(message, field=f"{prefix}.{field}" if field else prefix) from None
    except RecursionError:
        raise BadRequestError(f"{prefix} is nested too deeply", field=prefix) from None


# The bodies as the OpenAPI document describes them: what the Struct says, plus the rules its
# validation checks in code (so generated clients and schemathesis send what is accepted).
QUERY_CREATE_BODY = Annotated[
    QueryCreateRequest,
    msgspec.Meta(
        extra_json_schema={
            "description": "Exactly one of `target` and `selector`.",
            "anyOf": [
                {
                    "required": ["target"],
                    "properties": {"target": {"type": "object"}, "selector": {"type": "null"}},
                },
                {
                    "required": ["selector"],
                    "properties": {"selector": {"type": "object"}, "target": {"type": "null"}},
                },
            ],
        }
    ),
]
