"""The QueryResolver: Ark's query resolution, talking to the world only through ports.

Give it a :class:`~ark_mesh.resolver.ports.ResourceStore` and call
:meth:`QueryResolver.resolve` with a :class:`~ark_mesh.contracts.QueryRequest` and a
:class:`~ark_mesh.resolver.ports.ResolutionSink`: it resolves the target (agent, team, model or
tool), runs the agent loop with tools, teams, memory and A2A agents, streams OpenAI chunks with
Ark's metadata, emits Ark's operation events and status transitions, and returns the terminal
status. The controller runs it with in-process adapters (:class:`InMemoryResourceStore`,
:class:`RecordingSink`), the query-reconciler service with JetStream ones. Errors are typed; see
:mod:`ark_mesh.resolver.errors` for the tree.

Callers that own a conversation call one model directly with :meth:`QueryResolver.call_model`;
callers that end a query without running it report the ending through a :class:`RunReporter`,
built from :mod:`ark_mesh.contracts.endings` like every other ending. Everything a service needs
is exported here; the submodules are the resolver's own business.
"""

from ark_mesh.resolver.a2a import fetch_agent_card
from ark_mesh.resolver.clock import SystemClock
from ark_mesh.resolver.context import SYSTEM_CHUNK_ID, QueryRun, RunReporter, Scope
from ark_mesh.resolver.errors import (
    A2AError,
    A2AUnavailableError,
    ConfigurationError,
    InterruptedToolCallError,
    InvalidSpecError,
    MemoryBackendError,
    ModelRequestError,
    ModelUnavailableError,
    ParameterError,
    PermanentResolutionError,
    ReplayDivergedError,
    ResolutionError,
    ResourceNotFoundError,
    TargetNotFoundError,
    TemplateError,
    ToolExecutionError,
    TransientResolutionError,
)
from ark_mesh.resolver.journal import ApprovalRequired, Journal, StepJournal
from ark_mesh.resolver.llm import Completion
from ark_mesh.resolver.memory import InMemoryMemoryStore
from ark_mesh.resolver.memory_http import HTTPMemoryStore
from ark_mesh.resolver.models import endpoint_for
from ark_mesh.resolver.openai_client import OpenAIModelClient
from ark_mesh.resolver.ports import (
    ChatMessage,
    ChatRequest,
    Clock,
    MemoryFactory,
    MemoryStore,
    ModelChunk,
    ModelClient,
    ModelEndpoint,
    ResolutionSink,
    ResourceStore,
)
from ark_mesh.resolver.resolution import DEFAULT_TIMEOUT, QueryResolver
from ark_mesh.resolver.resources import RESOLVER_KINDS, MCPServer
from ark_mesh.resolver.sink import RecordingSink
from ark_mesh.resolver.status import memory_conditions, running_status, waiting_status
from ark_mesh.resolver.store import InMemoryResourceStore, ManifestError
from ark_mesh.resolver.tools import MCPDiscoveryError, MCPToolInfo, list_mcp_tools
from ark_mesh.resolver.values import ValueResolver

__all__ = [
    "DEFAULT_TIMEOUT",
    "RESOLVER_KINDS",
    "SYSTEM_CHUNK_ID",
    "A2AError",
    "A2AUnavailableError",
    "ApprovalRequired",
    "ChatMessage",
    "ChatRequest",
    "Clock",
    "Completion",
    "ConfigurationError",
    "HTTPMemoryStore",
    "InMemoryMemoryStore",
    "InMemoryResourceStore",
    "InterruptedToolCallError",
    "InvalidSpecError",
    "Journal",
    "MCPDiscoveryError",
    "MCPServer",
    "MCPToolInfo",
    "ManifestError",
    "MemoryBackendError",
    "MemoryFactory",
    "MemoryStore",
    "ModelChunk",
    "ModelClient",
    "ModelEndpoint",
    "ModelRequestError",
    "ModelUnavailableError",
    "OpenAIModelClient",
    "ParameterError",
    "PermanentResolutionError",
    "QueryResolver",
    "QueryRun",
    "RecordingSink",
    "ReplayDivergedError",
    "ResolutionError",
    "ResolutionSink",
    "ResourceNotFoundError",
    "ResourceStore",
    "RunReporter",
    "Scope",
    "StepJournal",
    "SystemClock",
    "TargetNotFoundError",
    "TemplateError",
    "ToolExecutionError",
    "TransientResolutionError",
    "ValueResolver",
    "endpoint_for",
    "fetch_agent_card",
    "list_mcp_tools",
    "memory_conditions",
    "running_status",
    "waiting_status",
]
