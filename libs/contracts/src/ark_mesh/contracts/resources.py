"""Ark custom resources (``ark.mckinsey.com``) and the core kinds the resolver reads.

Field names on the wire are Ark's camelCase (``sessionId``, ``tokenUsage``); Python attributes are
snake_case and ``rename="camel"`` maps between them, so a Query written by Ark's own tools decodes
unchanged and what we write back is what Ark's clients expect.

Where Ark's history disagrees with itself we accept every form on read and write the newest:
``spec.targets`` (old list form) next to ``spec.target``, ``status.responses`` next to
``status.response``, and the union of every phase Ark has used. Every field of Ark's CRDs (newest,
and older ones that still mean something) has a place here even when ark-mesh does not act on it,
because the CRDs in the chart are generated from these Structs: a field missing here would be
pruned by the API server. Parts Ark keeps schemaless (JSON schemas, pod templates) are raw.
Unknown fields are ignored on decode, the way the API server prunes them.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar, Literal

import msgspec

__all__ = [
    "KINDS",
    "A2AMetadata",
    "A2APodConfig",
    "A2AProtocolState",
    "A2AServer",
    "A2AServerRef",
    "A2AServerSpec",
    "A2AServerStatus",
    "A2ATask",
    "A2ATaskArtifact",
    "A2ATaskMessage",
    "A2ATaskPart",
    "A2ATaskPhase",
    "A2ATaskSpec",
    "A2ATaskStatus",
    "Agent",
    "AgentRef",
    "AgentSpec",
    "AgentStatus",
    "AgentTool",
    "ApproverRef",
    "ArkConfig",
    "ArkConfigSpec",
    "ArkConfigStatus",
    "AzureModelConfig",
    "BatchEvaluationItem",
    "BatchProgress",
    "BedrockModelConfig",
    "ChildEvaluationStatus",
    "Condition",
    "ConfigMap",
    "ConfigMapKeySelector",
    "EngineRef",
    "Evaluation",
    "EvaluationConfig",
    "EvaluationEvaluatorRef",
    "EvaluationPhase",
    "EvaluationQueryRef",
    "EvaluationResult",
    "EvaluationSpec",
    "EvaluationStatus",
    "EvaluationTemplate",
    "EvaluationType",
    "Evaluator",
    "EvaluatorRef",
    "EvaluatorSpec",
    "EvaluatorStatus",
    "ExecutionEngine",
    "ExecutionEngineSpec",
    "ExecutionEngineStatus",
    "ExpressionRule",
    "GitSource",
    "GraphEdge",
    "HTTPToolSpec",
    "Header",
    "LabelSelector",
    "LabelSelectorRequirement",
    "MCPServer",
    "MCPServerAuthorization",
    "MCPServerAuthorizationStatus",
    "MCPServerRef",
    "MCPServerSpec",
    "MCPServerStatus",
    "MCPToolSpec",
    "Memory",
    "MemoryRef",
    "MemorySpec",
    "MemoryStatus",
    "Model",
    "ModelConfig",
    "ModelRef",
    "ModelSpec",
    "ModelStatus",
    "NamedRef",
    "ObjectMeta",
    "OpenAIModelConfig",
    "Override",
    "Parameter",
    "PartialTool",
    "PodConfig",
    "Query",
    "QueryParameterRef",
    "QueryPhase",
    "QueryRef",
    "QueryResponse",
    "QuerySpec",
    "QueryStatus",
    "QueryTarget",
    "Resource",
    "ResourceSelector",
    "Secret",
    "SecretKeySelector",
    "ServiceRef",
    "Team",
    "TeamGraph",
    "TeamMember",
    "TeamSelector",
    "TeamSpec",
    "TeamStatus",
    "TemplateSource",
    "TokenSecretRef",
    "TokenUsage",
    "Tool",
    "ToolApproval",
    "ToolFunction",
    "ToolInteraction",
    "ToolInteractionApproval",
    "ToolInteractionConfirmation",
    "ToolInteractionInput",
    "ToolInteractionOption",
    "ToolInteractionSelection",
    "ToolSpec",
    "ToolStatus",
    "ValueFrom",
    "ValueSource",
]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# Raw JSON the API server keeps verbatim (``x-kubernetes-preserve-unknown-fields``).
RawJSON = Annotated[
    Any, msgspec.Meta(extra_json_schema={"x-kubernetes-preserve-unknown-fields": True})
]


def server_default(value: str) -> msgspec.Meta:
    """Marks a value the API server fills in (CRD ``default``) while the Struct keeps ``None``.

    Keeping ``None`` in the Struct means a field the user did not write is not written back, and
    a field the user did write is never dropped for being equal to a default.
    """
    return msgspec.Meta(extra_json_schema={"default": value})


RawObject = Annotated[
    dict[str, Any], msgspec.Meta(extra_json_schema={"x-kubernetes-preserve-unknown-fields": True})
]


class _Camel(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every nested resource struct: camelCase on the wire, defaults left out."""


# --------------------------------------------------------------------------- metadata


class ObjectMeta(_Camel):
    """The subset of ``metav1.ObjectMeta`` ark-mesh reads or writes."""

    name: str = ""
    namespace: str | None = None
    generate_name: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[RawObject] | None = None


class Condition(_Camel):
    """``metav1.Condition``; ``lastTransitionTime`` of ``Completed=True`` anchors the TTL."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class LabelSelectorRequirement(_Camel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(_Camel):
    """``metav1.LabelSelector``; ``spec.selector`` resolves to one target, not a fan-out."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


# --------------------------------------------------------------------------- value sources


class ConfigMapKeySelector(_Camel):
    name: str
    key: str
    optional: bool | None = None


class SecretKeySelector(_Camel):
    name: str
    key: str
    optional: bool | None = None


class QueryParameterRef(_Camel):
    """Take the value of the Query's parameter with this name (agent prompts, headers)."""

    name: str


class ServiceRef(_Camel):
    """Resolved to an in-cluster URL ``http://<name>.<namespace>.svc.cluster.local[:port]<path>``."""

    name: str
    namespace: str | None = None
    port: str | None = None
    path: str | None = None


class ValueFrom(_Camel):
    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None
    query_parameter_ref: QueryParameterRef | None = None
    service_ref: ServiceRef | None = None


class ValueSource(_Camel):
    """A literal ``value`` or a ``valueFrom`` reference (Model URLs, keys, header values)."""

    value: str | None = None
    value_from: ValueFrom | None = None


class Parameter(_Camel):
    """A template variable for ``{{.name}}`` placeholders in inputs and prompts."""

    name: NonEmpty
    value: str | None = None
    value_from: ValueFrom | None = None


class Header(_Camel):
    name: NonEmpty
    value: ValueSource


class Override(_Camel):
    """Headers injected into calls to Models or MCP servers; query-level wins over agent-level."""

    resource_type: Literal["model", "mcpserver"]
    headers: list[Header]
    label_selector: LabelSelector | None = None


class NamedRef(_Camel):
    name: str
    namespace: str | None = None


class MemoryRef(NamedRef):
    name: NonEmpty


class ModelRef(NamedRef):
    name: NonEmpty


class EngineRef(NamedRef):
    """An ExecutionEngine; the reserved name ``a2a`` marks agents created from an A2AServer."""

    name: NonEmpty


class EvaluatorRef(NamedRef):
    """An Evaluator named by an older Query's ``spec.evaluators`` (kept; evaluation is not run)."""

    name: NonEmpty


# --------------------------------------------------------------------------- Query

QueryPhase = Literal[
    "pending",
    "provisioning",
    "queued",
    "running",
    "input-required",
    "approval-required",
    "evaluating",
    "done",
    "error",
    "canceled",
]
"""Every phase Ark has ever written; decoding accepts all of them."""

TargetType = Literal["agent", "team", "model", "tool"]


class QueryTarget(_Camel):
    type: TargetType
    name: NonEmpty


class TokenUsage(_Camel):
    """Summed over every LLM call of a query (team members and selector calls included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class A2AMetadata(_Camel):
    """A2A ids returned by an engine; kept in *status*, never in an annotation (no reconcile loop)."""

    context_id: str | None = None
    task_id: str | None = None


class QueryResponse(_Camel):
    """The single response of the newest Ark (older Ark: one per target in ``responses``)."""

    target: QueryTarget | None = None
    content: str = ""
    raw: str | None = None
    phase: str | None = None
    a2a: A2AMetadata | None = None


class QuerySpec(_Camel):
    """``Query.spec``. ``input`` is raw JSON: a string, or (deprecated ``messages``) a message list."""

    input: RawJSON
    type: Annotated[Literal["user", "messages"], server_default("user")] | None = None
    target: QueryTarget | None = None
    targets: list[QueryTarget] | None = None
    selector: LabelSelector | None = None
    parameters: list[Parameter] | None = None
    memory: MemoryRef | None = None
    session_id: NonEmpty | None = None
    conversation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    service_account: NonEmpty | None = None
    timeout: Annotated[str, server_default("5m")] | None = None
    ttl: str | None = None
    cancel: bool | None = None
    overrides: list[Override] | None = None
    evaluators: list[EvaluatorRef] | None = None
    evaluator_selector: LabelSelector | None = None


class EvaluationResult(_Camel):
    """One evaluator's verdict in an older Query's ``status.evaluations``."""

    evaluator_name: str | None = None
    score: str | None = None
    passed: bool | None = None
    metadata: dict[str, str] | None = None


class QueryStatus(_Camel):
    """``Query.status``; written only through the status subresource."""

    phase: QueryPhase | None = None
    conditions: list[Condition] | None = None
    response: QueryResponse | None = None
    responses: list[QueryResponse] | None = None
    conversation_id: str | None = None
    token_usage: TokenUsage | None = None
    duration: str | None = None
    a2a: A2AMetadata | None = None
    error: str | None = None
    approval_ref: NamedRef | None = None
    observed_generation: int | None = None
    evaluations: list[EvaluationResult] | None = None
    job_id: NonEmpty | None = None


# --------------------------------------------------------------------------- Agent


class ToolFunction(_Camel):
    """A function of a tool; older Agents also gave it a value (e.g. a jq filter)."""

    name: NonEmpty
    value: str | None = None
    value_from: ValueFrom | None = None


class PartialTool(_Camel):
    """Exposes a Tool under another name with some parameters hidden or pre-filled."""

    name: NonEmpty = ""
    parameters: list[Parameter] | None = None


class ToolApproval(_Camel):
    required: bool | None = None
    timeout: str | None = None
    on_timeout: str | None = None


class ApproverRef(_Camel):
    """Who may approve a tool call: a role, a user or a group."""

    role: str | None = None
    user: str | None = None
    group: str | None = None


class ToolInteractionApproval(_Camel):
    approvers: list[ApproverRef] | None = None
    reason_required: bool | None = None


class ToolInteractionInput(_Camel):
    schema_: RawJSON | None = msgspec.field(default=None, name="schema")
    prompt: str | None = None


class ToolInteractionOption(_Camel):
    value: str
    label: str
    description: str | None = None


class ToolInteractionSelection(_Camel):
    options: Annotated[list[ToolInteractionOption], msgspec.Meta(min_length=1)]
    multi_select: bool | None = None
    prompt: str | None = None


class ToolInteractionConfirmation(_Camel):
    allow_edit: bool | None = None
    message: str | None = None


class ToolInteraction(_Camel):
    """Human-in-the-loop settings of one agent tool (a later Ark form of ``approval``)."""

    type: Literal["approval", "input", "selection", "confirmation"]
    timeout: str | None = None
    on_timeout: Annotated[Literal["reject", "proceed"], server_default("reject")] | None = None
    approval: ToolInteractionApproval | None = None
    input: ToolInteractionInput | None = None
    selection: ToolInteractionSelection | None = None
    confirmation: ToolInteractionConfirmation | None = None


class AgentTool(_Camel):
    """``name`` is optional in Ark's CRD; the admission rules say which types need it."""

    type: Literal["built-in", "builtin", "custom", "mcp", "http", "agent", "team"]
    name: NonEmpty = ""
    description: str | None = None
    functions: list[ToolFunction] | None = None
    partial: PartialTool | None = None
    approval: ToolApproval | None = None
    interaction: ToolInteraction | None = None


class PodConfig(_Camel):
    """An ephemeral pod agent; the template is a core ``PodTemplateSpec``, kept verbatim."""

    template: RawObject | None = None
    timeout: str | None = None


class A2APodConfig(_Camel):
    port: int | None = None
    agent_card_path: Annotated[str, server_default("/.well-known/agent-card.json")] | None = None
    readiness_timeout: str | None = None


class AgentSpec(_Camel):
    prompt: str | None = None
    description: str | None = None
    model_ref: ModelRef | None = None
    execution_engine: EngineRef | None = None
    tools: list[AgentTool] | None = None
    parameters: list[Parameter] | None = None
    output_schema: RawObject | None = None
    overrides: list[Override] | None = None
    pod: PodConfig | None = None
    a2a_pod: A2APodConfig | None = None
    config: RawJSON | None = None


class AgentStatus(_Camel):
    conditions: list[Condition] | None = None


# --------------------------------------------------------------------------- Model


class OpenAIModelConfig(_Camel):
    base_url: ValueSource | None = None
    api_key: ValueSource | None = None
    headers: list[Header] | None = None
    properties: dict[str, ValueSource] | None = None


class AzureModelConfig(OpenAIModelConfig):
    api_version: ValueSource | None = None


class BedrockModelConfig(_Camel):
    region: ValueSource | None = None
    base_url: ValueSource | None = None
    access_key_id: ValueSource | None = None
    secret_access_key: ValueSource | None = None
    session_token: ValueSource | None = None
    model_arn: ValueSource | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=100000)] | None = None
    temperature: Annotated[str, msgspec.Meta(pattern=r"^(0(\.\d+)?|1(\.0+)?)$")] | None = None
    properties: dict[str, ValueSource] | None = None


class ModelConfig(_Camel):
    openai: OpenAIModelConfig | None = None
    azure: AzureModelConfig | None = None
    bedrock: BedrockModelConfig | None = None


class ModelSpec(_Camel):
    """``provider`` is the newest field; older Models carried the provider in ``type``."""

    model: ValueSource
    provider: Literal["openai", "azure", "bedrock", "anthropic"] | None = None
    type: str | None = None
    config: ModelConfig | None = None
    poll_interval: Annotated[str, server_default("1m")] | None = None


class ModelStatus(_Camel):
    """Newest Ark reports ``ModelAvailable``; older Ark wrote ``phase``/``message``."""

    conditions: list[Condition] | None = None
    resolved_address: str | None = None
    phase: str | None = None
    message: str | None = None


# --------------------------------------------------------------------------- Team


class TeamMember(_Camel):
    name: str
    type: Literal["agent", "team"]


class TeamSelector(_Camel):
    """``model`` is the older form (a Model picks the speaker); newest Ark names an ``agent``."""

    agent: str | None = None
    model: str | None = None
    selector_prompt: str | None = None
    enable_terminate_tool: bool | None = None
    terminate_prompt: str | None = None


class GraphEdge(msgspec.Struct, omit_defaults=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str


class TeamGraph(_Camel):
    edges: list[GraphEdge] | None = None


class TeamSpec(_Camel):
    """``round-robin`` and ``graph`` are legacy strategies, migrated on read as Ark's webhook does."""

    members: list[TeamMember]
    strategy: (
        Annotated[
            Literal["sequential", "selector", "round-robin", "graph"], server_default("sequential")
        ]
        | None
    ) = None
    description: str | None = None
    loops: bool | None = None
    max_turns: int | None = None
    selector: TeamSelector | None = None
    graph: TeamGraph | None = None


class TeamStatus(_Camel):
    conditions: list[Condition] | None = None


# --------------------------------------------------------------------------- Tool


class HTTPToolSpec(_Camel):
    """Ark's CRD limits the URL to http(s) and the timeout to a plain ``<n>[smh]``."""

    url: Annotated[str, msgspec.Meta(min_length=1, pattern=r"^https?://.*")]
    method: (
        Annotated[Literal["GET", "POST", "PUT", "DELETE", "PATCH"], server_default("GET")] | None
    ) = None
    headers: list[Header] | None = None
    timeout: Annotated[str, msgspec.Meta(pattern=r"^[0-9]+[smh]?$")] | None = None
    body: str | None = None
    body_parameters: list[Parameter] | None = None


class MCPServerRef(NamedRef):
    name: NonEmpty


class MCPToolSpec(_Camel):
    mcp_server_ref: MCPServerRef
    tool_name: NonEmpty


class ToolSpec(_Camel):
    type: Literal["http", "mcp", "agent", "team", "builtin", "built-in"]
    description: str | None = None
    input_schema: RawObject | None = None
    http: HTTPToolSpec | None = None
    mcp: MCPToolSpec | None = None
    agent: NamedRef | None = None
    team: NamedRef | None = None
    builtin: NamedRef | None = None
    annotations: RawObject | None = None


class ToolStatus(_Camel):
    state: str | None = None
    message: str | None = None


# --------------------------------------------------------------------------- MCPServer


class MCPServerSpec(_Camel):
    """An MCP server; a Tool of type ``mcp`` names it and the tool, the server holds the rest."""

    address: ValueSource
    headers: list[Header] | None = None
    transport: Annotated[Literal["http", "sse"], server_default("http")] | None = None
    timeout: Annotated[str, server_default("30s")] | None = None
    tool_call_timeout: (
        Annotated[str, msgspec.Meta(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")] | None
    ) = None
    poll_interval: Annotated[str, server_default("1m")] | None = None
    description: str | None = None
    authorization: MCPServerAuthorization | None = None


class TokenSecretRef(_Camel):
    """The Secret (same namespace) holding an MCP server's OAuth tokens, and its key names."""

    name: str
    access_token_key: Annotated[str, server_default("access_token")] | None = None
    refresh_token_key: Annotated[str, server_default("refresh_token")] | None = None
    expires_at_key: Annotated[str, server_default("expires_at")] | None = None
    client_id_key: Annotated[str, server_default("client_id")] | None = msgspec.field(
        default=None, name="clientIDKey"
    )
    client_secret_key: Annotated[str, server_default("client_secret")] | None = None


class MCPServerAuthorization(_Camel):
    token_secret_ref: TokenSecretRef


class MCPServerAuthorizationStatus(_Camel):
    """What an OAuth-protected MCP server advertised (RFC 9728 / RFC 8414 metadata)."""

    state: Literal["Required", "DiscoveryFailed", "Authorized"] | None = None
    resource: str | None = None
    resource_metadata_url: str | None = msgspec.field(default=None, name="resourceMetadataURL")
    resource_name: str | None = None
    authorization_servers: list[str] | None = None
    scopes_supported: list[str] | None = None
    grant_types_supported: list[str] | None = None
    registration_endpoint: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    last_discovered: str | None = None
    expires_at: str | None = None


class MCPServerStatus(_Camel):
    resolved_address: str | None = None
    tool_count: int | None = None
    conditions: list[Condition] | None = None
    authorization: MCPServerAuthorizationStatus | None = None


# --------------------------------------------------------------------------- Memory, A2AServer


class MemorySpec(_Camel):
    address: ValueSource
    headers: list[Header] | None = None


class MemoryStatus(_Camel):
    last_resolved_address: str | None = None
    phase: Literal["running", "ready", "error"] | None = None
    message: str | None = None


_ENDPOINT_HOST = (
    r"^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*"
    r"(:[0-9]{1,5})?$"
)


class A2AServerSpec(_Camel):
    address: ValueSource
    headers: list[Header] | None = None
    description: str | None = None
    poll_interval: Annotated[str, server_default("1m")] | None = None
    timeout: Annotated[str, server_default("5m")] | None = None
    endpoint_resolution: (
        Annotated[Literal["address", "cardPath", "cardUrl"], server_default("address")] | None
    ) = None
    allowed_endpoint_hosts: (
        list[Annotated[str, msgspec.Meta(max_length=259, pattern=_ENDPOINT_HOST)]] | None
    ) = None


class A2AServerStatus(_Camel):
    """``phase`` is what older Ark wrote (``ready``); newest Ark reports conditions."""

    last_resolved_address: str | None = None
    last_resolved_endpoint: str | None = None
    rejected_endpoint: str | None = None
    conditions: list[Condition] | None = None
    phase: str | None = None


# --------------------------------------------------------------------------- Evaluator, Evaluation


class ResourceSelector(_Camel):
    """A label selector over resources of one type (an Evaluator's automatic evaluation)."""

    resource_type: Literal["Query"]
    api_group: Annotated[str, server_default("ark.mckinsey.com")] | None = None
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None
    namespaces: list[str] | None = None
    namespace_selector: LabelSelector | None = None


class EvaluatorSpec(_Camel):
    address: ValueSource
    description: str | None = None
    parameters: list[Parameter] | None = None
    selector: ResourceSelector | None = None


class EvaluatorStatus(_Camel):
    last_resolved_address: str | None = None
    phase: str | None = None
    message: str | None = None


EvaluationType = Literal["direct", "baseline", "query", "batch", "event"]
EvaluationPhase = Literal["pending", "running", "error", "done", "canceled"]


class EvaluationEvaluatorRef(_Camel):
    name: NonEmpty
    namespace: str | None = None
    parameters: list[Parameter] | None = None


class EvaluationQueryRef(_Camel):
    name: NonEmpty
    namespace: str | None = None
    response_target: str | None = None


class ExpressionRule(_Camel):
    """A CEL rule of an ``event`` evaluation; ``weight`` scales its share of the score."""

    name: NonEmpty
    expression: str
    description: str | None = None
    weight: Annotated[int, msgspec.Meta(ge=0)] | None = None


class BatchEvaluationItem(_Camel):
    type: Literal["direct", "query", "baseline", "event"]
    evaluator: EvaluationEvaluatorRef
    config: RawObject
    name: str | None = None
    timeout: str | None = None
    ttl: str | None = None


class EvaluationTemplate(_Camel):
    type: Literal["direct", "query", "baseline", "event"]
    evaluator: EvaluationEvaluatorRef
    config: RawObject
    name_prefix: str | None = None
    parameters: list[Parameter] | None = None


class EvaluationConfig(_Camel):
    """Type-specific settings; which ones apply depends on the Evaluation's ``type``."""

    input: str | None = None
    output: str | None = None
    query_ref: EvaluationQueryRef | None = None
    rules: list[ExpressionRule] | None = None
    evaluations: list[NamedRef] | None = None
    items: list[BatchEvaluationItem] | None = None
    template: EvaluationTemplate | None = None
    query_selector: LabelSelector | None = None
    concurrency: int | None = None
    continue_on_failure: bool | None = None


class EvaluationSpec(_Camel):
    config: EvaluationConfig
    type: Annotated[EvaluationType, server_default("direct")] | None = None
    evaluator: EvaluationEvaluatorRef | None = None
    timeout: Annotated[str, server_default("5m")] | None = None
    ttl: Annotated[str, server_default("720h")] | None = None


class ChildEvaluationStatus(_Camel):
    name: str
    phase: EvaluationPhase | None = None
    score: str | None = None
    passed: bool | None = None
    message: str | None = None


class BatchProgress(_Camel):
    total: int | None = None
    completed: int | None = None
    failed: int | None = None
    running: int | None = None
    child_evaluations: list[ChildEvaluationStatus] | None = None


class EvaluationStatus(_Camel):
    phase: EvaluationPhase | None = None
    score: Annotated[str, msgspec.Meta(pattern=r"^(0(\.[0-9]+)?|1(\.0+)?)$")] | None = None
    passed: bool | None = None
    message: str | None = None
    duration: str | None = None
    token_usage: TokenUsage | None = None
    batch_progress: BatchProgress | None = None


# --------------------------------------------------------------------------- ExecutionEngine


class GitSource(_Camel):
    url: str
    ref: str | None = None
    path: str | None = None


class TemplateSource(_Camel):
    """Where a dedicated engine instance comes from: an image or a git checkout."""

    image: str | None = None
    git: GitSource | None = None


class ExecutionEngineSpec(_Camel):
    """An engine reached at ``address`` (shared) or deployed from ``source`` (dedicated)."""

    type: str
    address: ValueSource | None = None
    source: TemplateSource | None = None
    config_schema: str | None = None
    is_agentic: bool | None = None
    description: str | None = None


class ExecutionEngineStatus(_Camel):
    last_resolved_address: str | None = None
    phase: str | None = None
    message: str | None = None
    image_ref: str | None = None


# --------------------------------------------------------------------------- A2ATask


class A2ATaskPart(_Camel):
    kind: Literal["text", "file", "data"]
    text: str | None = None
    data: str | None = None
    mime_type: str | None = None
    uri: str | None = None
    metadata: dict[str, str] | None = None


class A2ATaskArtifact(_Camel):
    artifact_id: NonEmpty
    parts: list[A2ATaskPart]
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


class A2ATaskMessage(_Camel):
    role: Literal["user", "agent", "system"]
    parts: list[A2ATaskPart]
    message_id: str | None = None
    metadata: dict[str, str] | None = None


class QueryRef(NamedRef):
    name: NonEmpty


class A2AServerRef(NamedRef):
    name: NonEmpty


class AgentRef(_Camel):
    """The agent a task was assigned to; Ark leaves the name optional here."""

    name: str | None = None
    namespace: str | None = None


class A2ATaskSpec(_Camel):
    """An A2A task of a query (human approval, or a remote agent that answered with a task)."""

    query_ref: QueryRef
    agent_ref: AgentRef
    task_id: NonEmpty
    a2a_server_ref: A2AServerRef | None = None
    """Absent on a human-approval task: there is no remote server to poll."""
    context_id: str | None = None
    input: str | None = None
    parameters: dict[str, str] | None = None
    priority: int | None = None
    timeout: Annotated[str, server_default("12h")] | None = None
    ttl: Annotated[str, server_default("720h")] | None = None
    poll_interval: Annotated[str, server_default("5s")] | None = None


A2ATaskPhase = Literal[
    "pending",
    "assigned",
    "running",
    "input-required",
    "auth-required",
    "completed",
    "failed",
    "cancelled",
    "unknown",
]
A2AProtocolState = Literal[
    "submitted",
    "working",
    "input-required",
    "completed",
    "canceled",
    "failed",
    "rejected",
    "auth-required",
    "unknown",
]


class A2ATaskStatus(_Camel):
    phase: Annotated[A2ATaskPhase, server_default("pending")] | None = None
    conditions: list[Condition] | None = None
    start_time: str | None = None
    completion_time: str | None = None
    error: str | None = None
    protocol_state: A2AProtocolState | None = None
    context_id: str | None = None
    artifacts: list[A2ATaskArtifact] | None = None
    history: list[A2ATaskMessage] | None = None
    protocol_metadata: dict[str, str] | None = None
    last_status_message: A2ATaskMessage | None = None
    last_status_timestamp: str | None = None


# --------------------------------------------------------------------------- ArkConfig


class ArkConfigSpec(_Camel):
    """Cluster-wide defaults read from the singleton ``ArkConfig/default``.

    ``defaultMemory`` is the Memory a Query without ``spec.memory`` gets. Its shape was not
    found in any Ark CRD we could read, so both a name and a ``{name, namespace}`` reference
    are accepted (and kept verbatim) rather than guessing one.
    """

    query_ttl: str | None = msgspec.field(default=None, name="queryTTL")
    evaluation_ttl: str | None = msgspec.field(default=None, name="evaluationTTL")
    default_memory: MemoryRef | str | None = None


class ArkConfigStatus(_Camel):
    """Empty in Ark (reserved for later status reporting)."""


# --------------------------------------------------------------------------- top-level kinds


class Resource(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Common envelope of every Kubernetes object: apiVersion, kind, metadata.

    Class attributes name the REST coordinates so adapters need no lookup table of their own.
    """

    GROUP: ClassVar[str] = "ark.mckinsey.com"
    VERSION: ClassVar[str] = "v1alpha1"
    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)

    def __post_init__(self) -> None:
        # Objects built in code get their type's coordinates; decoded ones keep what they carried.
        if not self.api_version:
            self.api_version = type(self).api_version_string()
        if not self.kind:
            self.kind = type(self).KIND

    @classmethod
    def api_version_string(cls) -> str:
        return f"{cls.GROUP}/{cls.VERSION}" if cls.GROUP else cls.VERSION


class Query(Resource):
    KIND: ClassVar[str] = "Query"
    PLURAL: ClassVar[str] = "queries"

    spec: QuerySpec
    status: QueryStatus | None = None


class Agent(Resource):
    KIND: ClassVar[str] = "Agent"
    PLURAL: ClassVar[str] = "agents"

    spec: AgentSpec = msgspec.field(default_factory=AgentSpec)
    status: AgentStatus | None = None


class Model(Resource):
    KIND: ClassVar[str] = "Model"
    PLURAL: ClassVar[str] = "models"

    spec: ModelSpec
    status: ModelStatus | None = None


class Team(Resource):
    KIND: ClassVar[str] = "Team"
    PLURAL: ClassVar[str] = "teams"

    spec: TeamSpec
    status: TeamStatus | None = None


class Tool(Resource):
    KIND: ClassVar[str] = "Tool"
    PLURAL: ClassVar[str] = "tools"

    spec: ToolSpec
    status: ToolStatus | None = None


class Memory(Resource):
    KIND: ClassVar[str] = "Memory"
    PLURAL: ClassVar[str] = "memories"

    spec: MemorySpec
    status: MemoryStatus | None = None


class A2AServer(Resource):
    """Ark serves this kind at ``v1prealpha1``; we keep that so existing manifests apply unchanged."""

    VERSION: ClassVar[str] = "v1prealpha1"
    KIND: ClassVar[str] = "A2AServer"
    PLURAL: ClassVar[str] = "a2aservers"

    spec: A2AServerSpec
    status: A2AServerStatus | None = None


class MCPServer(Resource):
    KIND: ClassVar[str] = "MCPServer"
    PLURAL: ClassVar[str] = "mcpservers"

    spec: MCPServerSpec
    status: MCPServerStatus | None = None


class Evaluator(Resource):
    KIND: ClassVar[str] = "Evaluator"
    PLURAL: ClassVar[str] = "evaluators"

    spec: EvaluatorSpec
    status: EvaluatorStatus | None = None


class Evaluation(Resource):
    KIND: ClassVar[str] = "Evaluation"
    PLURAL: ClassVar[str] = "evaluations"

    spec: EvaluationSpec
    status: EvaluationStatus | None = None


class ExecutionEngine(Resource):
    """Served at ``v1prealpha1`` like Ark, so Ark's manifests apply unchanged."""

    VERSION: ClassVar[str] = "v1prealpha1"
    KIND: ClassVar[str] = "ExecutionEngine"
    PLURAL: ClassVar[str] = "executionengines"

    spec: ExecutionEngineSpec
    status: ExecutionEngineStatus | None = None


class A2ATask(Resource):
    KIND: ClassVar[str] = "A2ATask"
    PLURAL: ClassVar[str] = "a2atasks"

    spec: A2ATaskSpec
    status: A2ATaskStatus | None = None


class ArkConfig(Resource):
    """Cluster-scoped; only the object named ``default`` is read."""

    KIND: ClassVar[str] = "ArkConfig"
    PLURAL: ClassVar[str] = "arkconfigs"
    NAMESPACED: ClassVar[bool] = False

    spec: ArkConfigSpec = msgspec.field(default_factory=ArkConfigSpec)
    status: ArkConfigStatus | None = None


class ConfigMap(Resource):
    GROUP: ClassVar[str] = ""
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ConfigMap"
    PLURAL: ClassVar[str] = "configmaps"

    data: dict[str, str] | None = None


class Secret(Resource):
    """``data`` is base64 as on the wire; ``decoded()`` gives the plain values."""

    GROUP: ClassVar[str] = ""
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Secret"
    PLURAL: ClassVar[str] = "secrets"

    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None
    type: str | None = None

    def decoded(self) -> dict[str, str]:
        values = {key: base64.b64decode(raw).decode() for key, raw in (self.data or {}).items()}
        values.update(self.string_data or {})
        return values


KINDS: dict[str, type[Resource]] = {
    cls.KIND: cls
    for cls in (
        Query,
        Agent,
        Model,
        Team,
        Tool,
        Memory,
        A2AServer,
        MCPServer,
        Evaluator,
        Evaluation,
        ExecutionEngine,
        A2ATask,
        ArkConfig,
        ConfigMap,
        Secret,
    )
}
"""Every kind ark-mesh reads, by ``kind`` name."""
