"""Ark custom resources (``ark.mckinsey.com``) and the core kinds the resolver reads.

Field names on the wire are Ark's camelCase (``sessionId``, ``tokenUsage``); Python attributes are
snake_case and ``rename="camel"`` maps between them, so a Query written by Ark's own tools decodes
unchanged and what we write back is what Ark's clients expect.

Where Ark's history disagrees with itself we accept every form on read and write the newest:
``spec.targets`` (old list form) next to ``spec.target``, ``status.responses`` next to
``status.response``, and the union of every phase Ark has used. Unknown fields are ignored on
decode, the way the API server prunes them.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar, Literal

import msgspec

__all__ = [
    "KINDS",
    "A2AMetadata",
    "A2AServer",
    "A2AServerSpec",
    "A2AServerStatus",
    "Agent",
    "AgentSpec",
    "AgentStatus",
    "AgentTool",
    "AzureModelConfig",
    "BedrockModelConfig",
    "Condition",
    "ConfigMap",
    "ConfigMapKeySelector",
    "EngineRef",
    "GraphEdge",
    "HTTPToolSpec",
    "Header",
    "LabelSelector",
    "LabelSelectorRequirement",
    "MCPServer",
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
    "Query",
    "QueryParameterRef",
    "QueryPhase",
    "QueryResponse",
    "QuerySpec",
    "QueryStatus",
    "QueryTarget",
    "Resource",
    "Secret",
    "SecretKeySelector",
    "ServiceRef",
    "Team",
    "TeamGraph",
    "TeamMember",
    "TeamSelector",
    "TeamSpec",
    "TeamStatus",
    "TokenUsage",
    "Tool",
    "ToolApproval",
    "ToolFunction",
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
    name: str
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
    pass


class ModelRef(NamedRef):
    pass


class EngineRef(NamedRef):
    """An ExecutionEngine; the reserved name ``a2a`` marks agents created from an A2AServer."""


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
    timeout: str | None = None
    ttl: str | None = None
    cancel: bool | None = None
    overrides: list[Override] | None = None


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


# --------------------------------------------------------------------------- Agent


class ToolFunction(_Camel):
    name: str


class PartialTool(_Camel):
    """Exposes a Tool under another name with some parameters hidden or pre-filled."""

    name: str
    parameters: list[Parameter] | None = None


class ToolApproval(_Camel):
    required: bool | None = None
    timeout: str | None = None
    on_timeout: str | None = None


class AgentTool(_Camel):
    type: Literal["built-in", "builtin", "custom", "mcp", "http", "agent", "team"]
    name: str
    description: str | None = None
    functions: list[ToolFunction] | None = None
    partial: PartialTool | None = None
    approval: ToolApproval | None = None


class AgentSpec(_Camel):
    prompt: str | None = None
    description: str | None = None
    model_ref: ModelRef | None = None
    execution_engine: EngineRef | None = None
    tools: list[AgentTool] | None = None
    parameters: list[Parameter] | None = None
    output_schema: RawObject | None = None
    overrides: list[Override] | None = None


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
    max_tokens: ValueSource | None = None
    temperature: ValueSource | None = None
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
    poll_interval: str | None = None


class ModelStatus(_Camel):
    conditions: list[Condition] | None = None
    resolved_address: str | None = None


# --------------------------------------------------------------------------- Team


class TeamMember(_Camel):
    name: str
    type: Literal["agent", "team"]


class TeamSelector(_Camel):
    agent: str | None = None
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
    url: str
    method: Annotated[str, server_default("GET")] | None = None
    headers: list[Header] | None = None
    timeout: str | None = None
    body: str | None = None
    body_parameters: list[Parameter] | None = None


class MCPServerRef(NamedRef):
    pass


class MCPToolSpec(_Camel):
    mcp_server_ref: MCPServerRef
    tool_name: str


class ToolSpec(_Camel):
    type: Literal["http", "mcp", "agent", "team", "builtin", "built-in"]
    description: str | None = None
    input_schema: RawObject | None = None
    http: HTTPToolSpec | None = None
    mcp: MCPToolSpec | None = None
    agent: NamedRef | None = None
    team: NamedRef | None = None
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
    timeout: str | None = None
    tool_call_timeout: str | None = None
    poll_interval: str | None = None
    description: str | None = None


class MCPServerStatus(_Camel):
    resolved_address: str | None = None
    tool_count: int | None = None
    conditions: list[Condition] | None = None


# --------------------------------------------------------------------------- Memory, A2AServer


class MemorySpec(_Camel):
    address: ValueSource
    headers: list[Header] | None = None


class MemoryStatus(_Camel):
    last_resolved_address: str | None = None
    phase: str | None = None
    message: str | None = None


class A2AServerSpec(_Camel):
    address: ValueSource
    headers: list[Header] | None = None
    description: str | None = None
    poll_interval: str | None = None
    timeout: str | None = None


class A2AServerStatus(_Camel):
    last_resolved_address: str | None = None
    conditions: list[Condition] | None = None


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
    for cls in (Query, Agent, Model, Team, Tool, Memory, A2AServer, MCPServer, ConfigMap, Secret)
}
"""Every kind ark-mesh reads, by ``kind`` name."""
