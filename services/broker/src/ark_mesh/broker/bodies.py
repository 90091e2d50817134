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
from ark_mesh.contracts.ark import MIGRATION_WARNING_PREFIX

__all__ = [
    "MESSAGES_MIGRATION_WARNING",
    "QUERY_CREATE_BODY",
    "ApprovalDecisionRequest",
    "ChatCompletionRequest",
    "EmbeddingsCreateRequest",
    "QueryCreateRequest",
    "QueryUpdateRequest",
    "Reconciliation",
    "convert_body",
    "decode_body",
    "is_name",
    "last_user_text",
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


class QueryParameterRefBody(_Strict, frozen=True):
    name: NonEmpty


class ValueFromBody(_Strict, frozen=True):
    config_map_key_ref: KeyRefBody | None = None
    secret_key_ref: KeyRefBody | None = None


class HeaderValueFromBody(_Strict, frozen=True):
    config_map_key_ref: KeyRefBody | None = None
    secret_key_ref: KeyRefBody | None = None
    query_parameter_ref: QueryParameterRefBody | None = None


class HeaderValueBody(_Strict, frozen=True):
    value: str | None = None
    value_from: HeaderValueFromBody | None = None


class HeaderBody(_Strict, frozen=True):
    name: NonEmpty
    value: HeaderValueBody


class OverrideBody(_Strict, frozen=True):
    """Ark's ``Override``: headers for the target's Models or MCP servers."""

    resource_type: Literal["model", "mcpserver"]
    headers: Annotated[list[HeaderBody], msgspec.Meta(min_length=1)]
    label_selector: SelectorBody | None = None


class ParameterBody(_Strict, frozen=True):
    name: NonEmpty
    value: str | None = None
    value_from: ValueFromBody | None = None


class MemoryBody(_Strict, frozen=True):
    name: NonEmpty
    namespace: str | None = None


class MetadataBody(_Strict, frozen=True):
    """The part of a Query's metadata a client may set (Ark's CLI sends annotations)."""

    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None


Reconciliation = Literal["broker", "direct", "inController", "standalone"]
"""How a query written through the API is resolved: ``broker`` (no Query resource, the
broker publishes the work), ``direct`` (a Query resource, as Ark's API creates; the controller
picks its mode) or ``inController``/``standalone`` (a Query resource asking for that mode)."""

_DURATION = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": _DURATION_PATTERN})]
_CONVERSATION_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_MESSAGES = Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
QueryInput = NonEmpty | _MESSAGES
"""A user message, or (``type: messages``, deprecated) OpenAI chat messages."""


class _QueryFields(_Strict, frozen=True):
    """The Query spec fields a client may write (Ark's QueryCreateRequest/QueryUpdateRequest)."""

    type: Literal["user", "messages"] | None = None
    target: TargetBody | None = None
    selector: SelectorBody | None = None
    parameters: list[ParameterBody] | None = None
    memory: MemoryBody | None = None
    service_account: NonEmpty | None = None
    session_id: NonEmpty | None = None
    conversation_id: _CONVERSATION_ID | None = None
    timeout: _DURATION | None = None
    ttl: _DURATION | None = None
    cancel: bool | None = None
    overrides: list[OverrideBody] | None = None

    def _check(self) -> None:
        if self.target is not None and self.selector is not None:
            raise ValueError("give target or selector, not both - at `$.selector`")
        for field in ("timeout", "ttl"):
            value = getattr(self, field)
            if value is not None:
                try:
                    parse_duration(value)
                except DurationError as exc:
                    raise ValueError(f"{exc} - at `$.{field}`") from None

    def spec_fields(self, input_value: Any | None) -> dict[str, Any]:
        """The spec fields this body sets (camelCase, unset ones left out), with ``input``
        migrated as Ark's webhook migrates ``type: messages``: the last user message's text,
        ``type: user``."""
        values: dict[str, Any] = {
            "type": self.type,
            "target": self.target,
            "selector": self.selector,
            "parameters": self.parameters,
            "memory": self.memory,
            "serviceAccount": self.service_account,
            "sessionId": self.session_id,
            "conversationId": self.conversation_id,
            "timeout": self.timeout,
            "ttl": self.ttl,
            "cancel": self.cancel,
            "overrides": self.overrides,
        }
        if input_value is not None:
            values["input"] = input_value
            if self.type == "messages" or not isinstance(input_value, str):
                if self.type != "messages":
                    raise BadRequestError(
                        "input is a message list: that needs type 'messages' (deprecated; "
                        "a string input is the user message)",
                        field="input",
                    )
                text = last_user_text(input_value)
                if text is None:
                    raise BadRequestError(
                        "type 'messages' needs a user message with text in input (it becomes "
                        "the query's input, as Ark's webhook migrates it)",
                        field="input",
                    )
                values["input"], values["type"] = text, "user"
        elif self.type == "messages":
            raise BadRequestError("type 'messages' needs input (a message list)", field="input")
        return {
            key: value for key, value in msgspec.to_builtins(values).items() if value is not None
        }

    def migrated(self) -> bool:
        """Whether the body used the deprecated ``type: messages`` (and was migrated)."""
        return self.type == "messages"


class QueryCreateRequest(_QueryFields, frozen=True, kw_only=True):
    """``POST /v1/queries``: Ark's QueryCreateRequest, plus ``reconciliation`` (ark-mesh) and
    ``createResource`` (a read-only Query mirror of a broker-mode query). ``name`` is
    generated when absent (Ark requires it)."""

    input: QueryInput
    name: (
        Annotated[str, msgspec.Meta(extra_json_schema={"pattern": _DNS_PATTERN, "maxLength": 253})]
        | None
    ) = None
    metadata: MetadataBody | None = None
    reconciliation: Reconciliation | None = None
    create_resource: bool = False

    def __post_init__(self) -> None:
        # Raised as msgspec.ValidationError by msgspec, which decode_body maps like the others.
        if self.name is not None:
            validate_name(self.name)
        if self.target is None and self.selector is None:
            raise ValueError("either target or selector is required - at `$.target`")
        self._check()

    def spec(self) -> QuerySpec:
        """The Query spec this request asks for (contracts shapes, validated already)."""
        return msgspec.convert(self.spec_fields(self.input), QuerySpec)

    def annotations(self) -> dict[str, str]:
        """The annotations the Query gets: the client's, plus Ark's migration warning."""
        annotations = dict((self.metadata.annotations if self.metadata else None) or {})
        if self.migrated():
            annotations[MIGRATION_WARNING_PREFIX + "input-type"] = MESSAGES_MIGRATION_WARNING
        return annotations

    def labels(self) -> dict[str, str]:
        return dict((self.metadata.labels if self.metadata else None) or {})


class QueryUpdateRequest(_QueryFields, frozen=True, kw_only=True):
    """``PUT /v1/queries/{name}``: Ark's QueryUpdateRequest — any subset of the spec; the
    fields sent replace the Query's."""

    input: QueryInput | None = None

    def __post_init__(self) -> None:
        self._check()

    def changes(self) -> dict[str, Any]:
        """The spec fields to replace (camelCase)."""
        return self.spec_fields(self.input)


MESSAGES_MIGRATION_WARNING = (
    "spec.type 'messages' is deprecated - migrated to 'user' with extracted text. Use "
    "conversationId for multi-turn conversations"
)


def last_user_text(messages: Any) -> str | None:
    """The text of the last user message with text of OpenAI chat ``messages`` (string
    content, or the text parts of a content list); ``None`` when there is none."""
    if isinstance(messages, str):
        return messages or None
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
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
    return None


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
        text = last_user_text(self.messages)
        if text is None:
            raise BadRequestError(
                "messages must contain a user message with text", field="messages"
            )
        return text

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


class ApprovalDecisionRequest(_Strict, frozen=True):
    """ark-api's ``POST /v1/tool-approvals/{name}/decision`` body."""

    action: Literal["approved", "rejected"]
    reason: str | None = None


def is_name(name: str) -> bool:
    """Whether ``name`` can name a Query (a DNS-1123 subdomain)."""
    return len(name) <= 253 and _DNS_SUBDOMAIN.match(name) is not None


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
