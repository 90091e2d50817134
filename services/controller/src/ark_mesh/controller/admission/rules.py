"""Ark's validation rules, as pure functions over the raw object an AdmissionReview carries.

Each ``validate_<kind>`` returns a :class:`Verdict`: the first refusal (Ark stops at the first
error too, and the message names the field), the references the object makes that must exist
(checked in order by the webhook server, which is the only part that reads the cluster), and
the warnings kubectl prints. Messages are Ark's wording, so a refusal reads the same as on a
cluster running Ark; where Ark refuses through its CRD schema (a required field, an enum, a
pattern) the message is the API server's schema-error text for that field.

Raw dicts rather than contracts Structs: admission must see what the user sent — older shapes
(``targets``, ``model:``) and wrong types included — before any decoding could reject or drop
it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ark_mesh.contracts.ark import MIGRATION_WARNING_PREFIX
from ark_mesh.contracts.durations import parse_duration
from ark_mesh.contracts.errors import DurationError

__all__ = [
    "MIGRATION_WARNING_PREFIX",
    "Reference",
    "RefusedError",
    "Verdict",
    "check_graph_strategy",
    "check_no_model_field",
    "validate_a2aserver",
    "validate_agent",
    "validate_evaluator",
    "validate_executionengine",
    "validate_mcpserver",
    "validate_memory",
    "validate_model",
    "validate_query",
    "validate_team",
    "validate_tool",
]

A2A_SERVER_ANNOTATION: Final = "ark.mckinsey.com/a2a-server-name"
RESERVED_ENGINE: Final = "a2a"

TARGET_TYPES: Final = ("agent", "team", "model", "tool")
AGENT_TOOL_TYPES: Final = ("built-in", "builtin", "custom", "mcp", "http", "agent", "team")
BUILT_IN_TOOLS: Final = ("noop", "terminate")
TOOL_TYPES: Final = ("http", "mcp", "agent", "team", "builtin")
HTTP_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
SCHEMA_TYPES: Final = ("object", "array", "string", "number", "integer", "boolean", "null")
PROVIDERS: Final = ("openai", "azure", "bedrock", "anthropic")
DEPRECATED_PROVIDER_TYPES: Final = ("openai", "azure", "bedrock")
MODEL_TYPES: Final = ("completions", *DEPRECATED_PROVIDER_TYPES)
TEAM_STRATEGIES: Final = ("sequential", "round-robin", "selector")

Obj = Mapping[str, Any]


class RefusedError(Exception):
    """Raised inside a rule: the request is refused with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Reference:
    """An object the admitted object names and that must exist for it to be admitted.

    ``kind`` is an Ark kind (``Agent``, ``Team``, ...) or ``Secret``/``ConfigMap``; with
    ``key`` the Secret or ConfigMap must also hold that key. ``context`` prefixes Ark's
    "does not exist" message; ``message`` replaces that message entirely (the lookup error
    is appended to either).
    """

    kind: str
    namespace: str
    name: str
    context: str = ""
    key: str | None = None
    message: str | None = None

    def refusal(self, error: str | None) -> str:
        """The refusal when the object is missing (``error``) or lacks ``key`` (``None``)."""
        noun = {"ConfigMap": "configMap"}.get(self.kind, self.kind.lower())
        if error is None:
            return (
                f"{self.context}key '{self.key}' not found in {noun} '{self.name}' in "
                f"namespace '{self.namespace}'"
            )
        if self.message is not None:
            return f"{self.message}: {error}"
        return (
            f"{self.context}{noun} '{self.name}' does not exist in namespace "
            f"'{self.namespace}': {error}"
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    refusal: str | None = None
    references: tuple[Reference, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.refusal is None


class _Checks:
    """What one validation collects while it walks the object."""

    def __init__(self, obj: Obj) -> None:
        meta = _mapping(obj.get("metadata"))
        self.name = str(meta.get("name") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.annotations = _mapping(meta.get("annotations"))
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.spec = _mapping(obj.get("spec"))
        self.references: list[Reference] = []
        self.warnings: list[str] = []

    def require(self, kind: str, name: str, context: str = "", **extra: Any) -> None:
        if name:
            self.references.append(Reference(kind, self.namespace, name, context, **extra))

    def migration_warnings(self) -> None:
        self.warnings.extend(
            str(value)
            for key, value in sorted(self.annotations.items())
            if str(key).startswith(MIGRATION_WARNING_PREFIX)
        )


def _rule(check: Callable[[_Checks], None]) -> Callable[[Obj], Verdict]:
    """Run ``check`` over an object; a :class:`RefusedError` becomes the verdict's refusal."""

    def validate(obj: Obj) -> Verdict:
        checks = _Checks(obj)
        if checks.deleting:
            return Verdict()  # an object on its way out is never held back by its content
        try:
            check(checks)
        except RefusedError as refused:
            return Verdict(refusal=refused.message)
        return Verdict(references=tuple(checks.references), warnings=tuple(checks.warnings))

    validate.__name__ = check.__name__
    validate.__doc__ = check.__doc__
    return validate


# --- shared pieces ---------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _required(path: str) -> RefusedError:
    return RefusedError(f"{path}: Required value")


def _unsupported(path: str, value: Any, supported: Sequence[str]) -> RefusedError:
    listed = ", ".join(json.dumps(item) for item in supported)
    return RefusedError(
        f"{path}: Unsupported value: {json.dumps(value)}: supported values: {listed}"
    )


def _value_source(
    checks: _Checks, source: Any, field: str, *, required_message: str | None = None
) -> None:
    """A ValueSource (``value`` | ``valueFrom``) whose Secret/ConfigMap keys must exist.

    ``required_message`` makes the source itself mandatory (Ark resolves it at admission:
    addresses and base URLs), refused with that message when neither form is given.
    """
    vs = _mapping(source)
    value_from = _mapping(vs.get("valueFrom"))
    if required_message is not None and not vs.get("value") and not value_from:
        raise RefusedError(
            f"{required_message}: value source must have either value or valueFrom specified"
        )
    if not value_from:
        return
    secret = _mapping(value_from.get("secretKeyRef"))
    config_map = _mapping(value_from.get("configMapKeyRef"))
    service = value_from.get("serviceRef")
    if secret:
        checks.require(
            "Secret", str(secret.get("name") or ""), f"{field}: ", key=str(secret.get("key") or "")
        )
    elif config_map:
        checks.require(
            "ConfigMap",
            str(config_map.get("name") or ""),
            f"{field}: ",
            key=str(config_map.get("key") or ""),
        )
    elif isinstance(service, Mapping):
        if not service.get("name"):
            raise RefusedError(f"{required_message or field}: service name is required")
    elif required_message is not None:
        raise RefusedError(f"{required_message}: no valid valueFrom source specified")


def _parameters(checks: _Checks, parameters: Any) -> None:
    for index, param in enumerate(_list(parameters)):
        param = _mapping(param)
        name = str(param.get("name") or "")
        if not name:
            raise RefusedError(f"parameter[{index}]: name cannot be empty")
        has_value = bool(param.get("value"))
        value_from = param.get("valueFrom")
        if has_value and value_from is not None:
            raise RefusedError(
                f"parameter[{index}] '{name}': cannot specify both value and valueFrom"
            )
        if not has_value and value_from is None:
            raise RefusedError(
                f"parameter[{index}] '{name}': must specify either value or valueFrom"
            )
        if value_from is None:
            continue
        source = _mapping(value_from)
        kinds = ("configMapKeyRef", "secretKeyRef", "serviceRef", "queryParameterRef")
        if sum(1 for kind in kinds if source.get(kind) is not None) != 1:
            raise RefusedError(
                f"parameter[{index}] '{name}': valueFrom must specify exactly one source"
            )
        context = f"parameter[{index}] '{name}': "
        for kind, ref_kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            ref = _mapping(source.get(kind))
            if ref and ref.get("name") and ref.get("key"):
                checks.require(ref_kind, str(ref["name"]), context, key=str(ref["key"]))
        for kind in ("serviceRef", "queryParameterRef"):
            if source.get(kind) is not None and not _mapping(source.get(kind)).get("name"):
                raise RefusedError(f"parameter[{index}] '{name}': {kind}.name cannot be empty")


def _header(checks: _Checks, header: Any, context: str, *, check_refs: bool = False) -> None:
    header = _mapping(header)
    if not header.get("name"):
        raise RefusedError(f"{context}: name is required")
    value = _mapping(header.get("value"))
    value_from = value.get("valueFrom")
    if not value.get("value") and value_from is None:
        raise RefusedError(f"{context}: must specify either value or valueFrom")
    if value.get("value") and value_from is not None:
        raise RefusedError(f"{context}: cannot specify both value and valueFrom")
    if value_from is None:
        return
    source = _mapping(value_from)
    secret, config_map = (
        _mapping(source.get("secretKeyRef")),
        _mapping(source.get("configMapKeyRef")),
    )
    if source.get("queryParameterRef") is not None and not secret and not config_map:
        return  # resolved per query, from the query's parameters
    if not secret and not config_map:
        raise RefusedError(
            f"{context}: valueFrom must specify either secretKeyRef or configMapKeyRef"
        )
    if secret and config_map:
        raise RefusedError(
            f"{context}: valueFrom cannot specify both secretKeyRef and configMapKeyRef"
        )
    if check_refs:
        ref, kind = (secret, "Secret") if secret else (config_map, "ConfigMap")
        checks.require(
            kind,
            str(ref.get("name") or ""),
            f"failed to validate header {header['name']} ({context}): ",
            key=str(ref.get("key") or ""),
        )


def _overrides(checks: _Checks, overrides: Any) -> None:
    for index, override in enumerate(_list(overrides)):
        override = _mapping(override)
        if override.get("resourceType") not in ("model", "mcpserver"):
            raise RefusedError(
                f"overrides[{index}]: resourceType must be either 'model' or 'mcpserver'"
            )
        headers = _list(override.get("headers"))
        if not headers:
            raise RefusedError(f"overrides[{index}]: headers list cannot be empty")
        for position, header in enumerate(headers):
            _header(checks, header, f"overrides[{index}].headers[{position}]")


def _duration(value: Any, path: str) -> float | None:
    """Seconds of a Go duration field (``None`` when unset); refuses what Go cannot parse, as
    decoding a ``metav1.Duration`` would."""
    if value is None:
        return None
    try:
        return parse_duration(str(value)).total_seconds()
    except DurationError:
        raise RefusedError(
            f'{path}: Invalid value: {json.dumps(value)}: time: invalid duration "{value}"'
        ) from None


def _poll_interval(spec: Mapping[str, Any]) -> None:
    seconds = _duration(spec.get("pollInterval"), "spec.pollInterval")
    if seconds is not None and seconds < 0:
        raise RefusedError("failed to validate pollInterval: pollInterval cannot be negative")


def _approval(approval: Any, prefix: str) -> None:
    config = _mapping(approval)
    on_timeout = config.get("onTimeout")
    if on_timeout not in (None, "", "reject", "proceed"):
        raise RefusedError(f"{prefix}approval.onTimeout must be 'reject' or 'proceed'")
    timeout = _duration(config.get("timeout"), f"{prefix}approval.timeout")
    if timeout is not None and timeout <= 0:
        raise RefusedError(f"{prefix}approval.timeout must be a positive duration")


# --- Query -----------------------------------------------------------------------------------


@_rule
def validate_query(checks: _Checks) -> None:
    """Input present, one target (or the older ``targets`` list) or a selector, parameters and
    overrides well formed, everything named resolvable in the Query's namespace."""
    spec = checks.spec
    if "input" not in spec or spec.get("input") is None:
        raise _required("spec.input")
    if spec.get("input") in ("", []):
        raise RefusedError(
            'spec.input: Invalid value: "": spec.input in body should be at least 1 chars long'
        )
    target, targets, selector = spec.get("target"), spec.get("targets"), spec.get("selector")
    if target is None and not targets and selector is None:
        raise RefusedError("target or selector must be specified")
    if target is not None and (selector is not None or targets):
        raise RefusedError("only one of target, targets or selector may be specified")
    if target is not None:
        _query_target(checks, _mapping(target), "target")
    for index, item in enumerate(_list(targets)):
        _query_target(checks, _mapping(item), f"target[{index}]")
    for field in ("timeout", "ttl"):
        _duration(spec.get(field), f"spec.{field}")
    _parameters(checks, spec.get("parameters"))
    _overrides(checks, spec.get("overrides"))
    evaluators = _list(spec.get("evaluators"))
    if evaluators and spec.get("evaluatorSelector") is not None:
        raise RefusedError("cannot specify both evaluators and evaluatorSelector")
    for evaluator in evaluators:
        ref = _mapping(evaluator)
        name = str(ref.get("name") or "")
        checks.references.append(
            Reference(
                "Evaluator",
                str(ref.get("namespace") or checks.namespace),
                name,
                f"evaluator reference {name}: ",
            )
        )


def _query_target(checks: _Checks, target: Mapping[str, Any], label: str) -> None:
    kind = target.get("type")
    if kind not in TARGET_TYPES:
        raise RefusedError(
            f"{label}: unsupported type '{kind or ''}': supported types are: "
            + ", ".join(TARGET_TYPES)
        )
    if not target.get("name"):
        raise _required(f"spec.{label}.name")
    checks.require(str(kind).capitalize(), str(target["name"]), f"{label} references ")


# --- Agent -----------------------------------------------------------------------------------


@_rule
def validate_agent(checks: _Checks) -> None:
    """A prompt (unless an engine or A2A server answers), ``modelRef`` rather than the old
    ``model``, tools of a known type with the names their type needs."""
    spec = checks.spec
    check_no_model_field(spec)
    engine = _mapping(spec.get("executionEngine"))
    answered_elsewhere = bool(engine.get("name")) or A2A_SERVER_ANNOTATION in checks.annotations
    prompt = spec.get("prompt")
    if not answered_elsewhere:
        if prompt is None:
            raise _required("spec.prompt")
        if not str(prompt).strip():
            raise RefusedError(
                'spec.prompt: Invalid value: "": the prompt of an agent may not be empty'
            )
    model_ref = spec.get("modelRef")
    if model_ref is not None and not _mapping(model_ref).get("name"):
        raise _required("spec.modelRef.name")
    _parameters(checks, spec.get("parameters"))
    _overrides(checks, spec.get("overrides"))
    for index, tool in enumerate(_list(spec.get("tools"))):
        _agent_tool(_mapping(tool), index)
    engine_name = str(engine.get("name") or "")
    if engine_name and engine_name != RESERVED_ENGINE:
        dropped = [
            f"{tool.get('name')} ({tool.get('type')})"
            for tool in map(_mapping, _list(spec.get("tools")))
            if tool.get("type") not in ("mcp", "built-in", "custom")
        ]
        if dropped:
            checks.warnings.append(
                f"agent '{checks.name}': execution engine '{engine_name}' receives only mcp "
                f"tools; these tools will not be available to the agent: {', '.join(dropped)}"
            )
    checks.migration_warnings()


def check_no_model_field(spec: Mapping[str, Any]) -> None:
    """Refuse the pre-``modelRef`` shape ``model: <name>``. The mutating webhook checks it too:
    it sees the object before schema pruning would drop the field without a word."""
    if "model" in spec:
        raise RefusedError(
            "spec.model: Forbidden: 'model' is no longer supported; name the model with "
            f"spec.modelRef.name (e.g. modelRef: {{name: {spec.get('model')}}})"
        )


def _agent_tool(tool: Mapping[str, Any], index: int) -> None:
    kind, name = tool.get("type"), tool.get("name")
    if kind == "built-in":
        if not name:
            raise RefusedError(f"tool[{index}]: built-in tools must specify a name")
        if name not in BUILT_IN_TOOLS:
            raise RefusedError(
                f"tool[{index}]: unsupported built-in tool '{name}': supported built-in tools "
                "are: noop, terminate"
            )
    elif kind in AGENT_TOOL_TYPES:
        if not name:
            raise RefusedError(f"tool[{index}]: {kind} tools must specify a name")
    else:
        raise RefusedError(
            f"tool[{index}]: unsupported tool type '{kind or ''}': supported types are: "
            "built-in, mcp, http, agent, team, builtin"
        )
    partial = tool.get("partial")
    if partial is not None:
        partial = _mapping(partial)
        if not partial.get("name"):
            raise RefusedError(f"tool[{index}]: partial.name must be specified")
        for position, param in enumerate(_list(partial.get("parameters"))):
            param = _mapping(param)
            if not param.get("name"):
                raise RefusedError(
                    f"tool[{index}]: partial.parameters[{position}]: name is required"
                )
            if param.get("value") is not None and param.get("valueFrom") is not None:
                raise RefusedError(
                    f"tool[{index}]: partial.parameters[{position}] '{param['name']}': cannot "
                    "specify both value and valueFrom"
                )
    _approval(tool.get("approval"), f"tool[{index}]: ")


# --- Model -----------------------------------------------------------------------------------


@_rule
def validate_model(checks: _Checks) -> None:
    """A provider with its configuration block; the deprecated provider-in-``type`` shape has
    been migrated by the mutating webhook before this runs."""
    spec = checks.spec
    kind = spec.get("type")
    if kind is not None and kind not in MODEL_TYPES:
        raise _unsupported("spec.type", kind, MODEL_TYPES)
    _poll_interval(spec)
    _value_source(checks, spec.get("model"), "spec.model")
    if spec.get("model") is None:
        raise _required("spec.model")
    provider = spec.get("provider")
    if not provider:
        if kind in DEPRECATED_PROVIDER_TYPES:
            raise RefusedError(
                f"provider is required - update model to migrate '{kind}' from spec.type to "
                "spec.provider"
            )
        raise RefusedError("provider is required")
    if provider not in PROVIDERS:
        raise RefusedError(f"unsupported provider: {provider}")
    config = _mapping(_mapping(spec.get("config")).get(provider))
    if provider == "anthropic":
        return
    if not config:
        raise RefusedError(f"{provider} configuration is required for {provider} model type")
    prefix = f"spec.config.{provider}"
    if provider in ("openai", "azure"):
        label = "OpenAI" if provider == "openai" else "Azure"
        _value_source(
            checks,
            config.get("baseUrl"),
            f"{prefix}.baseUrl",
            required_message=f"failed to resolve {label} BaseURL",
        )
        if provider == "openai" or "auth" not in config:
            if provider == "azure" and config.get("apiKey") is None:
                raise RefusedError(f"{prefix}.apiKey or {prefix}.auth is required")
            _value_source(checks, config.get("apiKey"), f"{prefix}.apiKey")
        if provider == "azure":
            _value_source(checks, config.get("apiVersion"), f"{prefix}.apiVersion")
        for index, header in enumerate(_list(config.get("headers"))):
            _header(checks, header, f"{prefix}.headers[{index}]")
    else:
        for field in ("baseUrl", "region", "accessKeyId", "secretAccessKey", "sessionToken"):
            _value_source(checks, config.get(field), f"{prefix}.{field}")
        _value_source(checks, config.get("modelArn"), f"{prefix}.modelArn")
    checks.migration_warnings()


# --- Team ------------------------------------------------------------------------------------


@_rule
def validate_team(checks: _Checks) -> None:
    """Members of type agent/team that exist and are not the team itself; the strategy's own
    rules (loops and maxTurns for sequential, selector agent and maxTurns for selector)."""
    spec = checks.spec
    if spec.get("members") is None:
        raise _required("spec.members")
    strategy = spec.get("strategy") or ""
    loops = spec.get("loops") is True
    max_turns = spec.get("maxTurns")
    if strategy == "sequential":
        if loops and max_turns is None:
            raise RefusedError("maxTurns is required when loops is enabled")
        if not loops and max_turns is not None:
            raise RefusedError("maxTurns can only be set when loops is enabled")
    elif strategy == "selector":
        if loops:
            raise RefusedError("loops can only be used with the 'sequential' strategy")
        selector = _mapping(spec.get("selector"))
        agent = str(selector.get("agent") or "")
        if not agent and not selector.get("model"):
            raise RefusedError("selector strategy requires selector.agent to be specified")
        if agent:
            checks.references.append(
                Reference(
                    "Agent",
                    checks.namespace,
                    agent,
                    message=f"selector agent '{agent}' not found in namespace {checks.namespace}",
                )
            )
        if max_turns is None:
            raise RefusedError("selector strategy requires maxTurns to prevent infinite execution")
        if spec.get("graph") is not None:
            _graph(spec, "graph constraint")
    elif strategy != "round-robin":
        raise RefusedError(
            f"unsupported strategy '{strategy}': must be 'sequential', 'round-robin', or 'selector'"
        )
    for index, member in enumerate(_list(spec.get("members"))):
        member = _mapping(member)
        name, kind = str(member.get("name") or ""), member.get("type")
        if name == checks.name:
            raise RefusedError(f"team member {index}: team '{name}' cannot reference itself")
        if kind not in ("agent", "team"):
            raise RefusedError(
                f"team member {index} has invalid type '{kind or ''}': must be 'agent' or 'team'"
            )
        checks.require(str(kind).capitalize(), name, f"team member {index} references {kind}: ")
    checks.migration_warnings()


def _graph(spec: Mapping[str, Any], what: str) -> None:
    """The edges of a graph join members: shared by the selector constraint and by the
    mutating webhook, which refuses a malformed ``strategy: graph`` rather than migrate it."""
    graph = spec.get("graph")
    if graph is None:
        raise RefusedError(f"{what} requires graph configuration")
    edges = _list(_mapping(graph).get("edges"))
    if not edges:
        raise RefusedError(f"{what} requires at least one edge")
    members = {str(_mapping(m).get("name") or "") for m in _list(spec.get("members"))}
    for index, edge in enumerate(edges):
        edge = _mapping(edge)
        for end in ("from", "to"):
            if edge.get(end) not in members:
                raise RefusedError(
                    f"graph edge {index}: '{end}' member '{edge.get(end) or ''}' not found in "
                    "team members"
                )


def check_graph_strategy(spec: Mapping[str, Any]) -> None:
    """Raise :class:`RefusedError` when a ``strategy: graph`` Team's edges are malformed."""
    _graph(spec, "graph strategy")


# --- Tool ------------------------------------------------------------------------------------


@_rule
def validate_tool(checks: _Checks) -> None:
    """A known type with the block that type needs, and an input schema that is a JSON
    schema (required for http tools, whose arguments nothing else describes)."""
    spec = checks.spec
    kind = spec.get("type")
    if not kind:
        raise _required("spec.type")
    if "inputSchema" in spec:
        error = _schema_error(spec["inputSchema"])
        if error is not None:
            raise RefusedError(f"invalid inputSchema: {error}")
    elif kind == "http":
        raise RefusedError("spec.inputSchema: Required value: an http tool describes its arguments")
    _approval(spec.get("approval"), "")
    if kind == "http":
        http = spec.get("http")
        if not isinstance(http, Mapping):
            raise RefusedError("http spec is required for http type")
        url = http.get("url")
        if not url:
            raise RefusedError("URL is required for http tool")
        if not str(url).startswith(("http://", "https://")):
            raise RefusedError(
                f"spec.http.url: Invalid value: {json.dumps(url)}: spec.http.url in body should "
                "match '^https?://.*'"
            )
        method = http.get("method")
        if method and method not in HTTP_METHODS:
            raise RefusedError(
                f"invalid HTTP method '{method}': supported methods are " + ", ".join(HTTP_METHODS)
            )
        for index, header in enumerate(_list(http.get("headers"))):
            _header(checks, header, f"spec.http.headers[{index}]")
    elif kind == "mcp":
        mcp = spec.get("mcp")
        if not isinstance(mcp, Mapping):
            raise RefusedError("MCP spec is required for mcp type")
        if not _mapping(mcp.get("mcpServerRef")).get("name"):
            raise RefusedError("MCP server name is required")
        if not mcp.get("toolName"):
            raise RefusedError("MCP tool name is required")
    elif kind in ("agent", "team"):
        if not _mapping(spec.get(kind)).get("name"):
            raise RefusedError(f"{kind} field is required for {kind} type")
    elif kind in ("builtin", "built-in"):
        if checks.name not in BUILT_IN_TOOLS:
            raise RefusedError(
                f"unsupported builtin tool '{checks.name}': supported builtin tools are: "
                "[noop terminate]"
            )
    else:
        raise RefusedError(
            f"unsupported tool type '{kind}': supported types are: " + ", ".join(TOOL_TYPES)
        )


def _schema_error(schema: Any) -> str | None:
    if not isinstance(schema, Mapping):
        return (
            "failed to parse inputSchema as JSON: a JSON schema is an object, got "
            f"{json.dumps(schema)}"
        )
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind not in SCHEMA_TYPES):
        return (
            f"invalid schema type '{kind}': must be one of object, array, string, number, "
            "integer, boolean, null"
        )
    if kind == "object":
        for name, child in _mapping(schema.get("properties")).items():
            if not name:
                return "property name cannot be empty"
            error = _schema_error(child)
            if error is not None:
                return f"invalid property '{name}' schema: {error}"
    return None


# --- servers and engines ---------------------------------------------------------------------


@_rule
def validate_mcpserver(checks: _Checks) -> None:
    """An address that resolves; headers with one value form whose Secrets exist."""
    spec = checks.spec
    _value_source(
        checks, spec.get("address"), "spec.address", required_message="failed to resolve Address"
    )
    for index, header in enumerate(_list(spec.get("headers"))):
        _header(checks, header, f"headers[{index}]", check_refs=True)
    _poll_interval(spec)


@_rule
def validate_memory(checks: _Checks) -> None:
    """An address that resolves; headers with one value form."""
    spec = checks.spec
    _value_source(
        checks, spec.get("address"), "spec.address", required_message="failed to resolve Address"
    )
    for index, header in enumerate(_list(spec.get("headers"))):
        _header(checks, header, f"headers[{index}]", check_refs=True)


@_rule
def validate_executionengine(checks: _Checks) -> None:
    """Not the name reserved for A2A servers; the a2a protocol; an address that resolves."""
    if checks.name == RESERVED_ENGINE:
        raise RefusedError("execution engine name 'a2a' is reserved for A2A servers")
    protocol = checks.spec.get("protocol")
    if protocol not in (None, "", "a2a"):
        raise RefusedError(f'unsupported protocol "{protocol}", only "a2a" is supported')
    _value_source(
        checks,
        checks.spec.get("address"),
        "spec.address",
        required_message="failed to resolve Address",
    )


@_rule
def validate_evaluator(checks: _Checks) -> None:
    """An address that resolves; the model its ``model.name`` parameter names exists."""
    spec = checks.spec
    _value_source(
        checks, spec.get("address"), "spec.address", required_message="failed to resolve Address"
    )
    params = {
        str(_mapping(p).get("name")): _mapping(p).get("value")
        for p in _list(spec.get("parameters"))
    }
    model = str(params.get("model.name") or "")
    if model:
        namespace = str(params.get("model.namespace") or checks.namespace)
        checks.references.append(
            Reference("Model", namespace, model, f"failed to validate model '{model}': ")
        )
    _parameters(checks, spec.get("parameters"))


@_rule
def validate_a2aserver(checks: _Checks) -> None:
    """One address form; headers named once, each with one value form."""
    spec = checks.spec
    problems: list[str] = []
    address = _mapping(spec.get("address"))
    if not address.get("value") and address.get("valueFrom") is None:
        problems.append("address must specify either value or valueFrom")
    elif address.get("value") and address.get("valueFrom") is not None:
        problems.append("address cannot specify both value and valueFrom")
    seen: set[str] = set()
    for header in map(_mapping, _list(spec.get("headers"))):
        name = str(header.get("name") or "")
        value = _mapping(header.get("value"))
        if name in seen:
            problems.append(f"duplicate header name: {name}")
            break
        seen.add(name)
        if not value.get("value") and value.get("valueFrom") is None:
            problems.append(f"header {name} must specify either value or valueFrom")
            break
        if value.get("value") and value.get("valueFrom") is not None:
            problems.append(f"header {name} cannot specify both value and valueFrom")
            break
    if problems:
        raise RefusedError(f"validation failed: [{' '.join(problems)}]")
    _poll_interval(spec)
