"""Why a query could not be resolved, as types.

The split that matters to callers is *permanent* versus *transient* (the distinction kopf draws
between permanent and temporary errors): a permanent error ends the query in phase ``error`` —
running it again cannot succeed — while a transient one means the world was briefly unavailable,
so a caller with redelivery (the JetStream service) may retry the whole query::

    ResolutionError
    ├── PermanentResolutionError            query → phase error, never retried
    │   ├── InvalidSpecError                the Query (or a resource it names) is malformed
    │   │   ├── TemplateError               a {{.x}} placeholder that cannot be filled
    │   │   └── ParameterError              a parameter value that cannot be resolved
    │   ├── TargetNotFoundError             spec.target / spec.selector names nothing
    │   ├── ResourceNotFoundError           a referenced Agent, Model, Tool, … does not exist
    │   ├── ConfigurationError              a resource that exists but cannot be used as is
    │   ├── ModelRequestError               the provider refused the request (4xx)
    │   ├── ToolExecutionError              a tool failed; its message becomes response.content
    │   │   └── InterruptedToolCallError    a call cut off by a crash, not safe to run again
    │   ├── ReplayDivergedError             a resumed run's step log no longer fits the run
    │   └── A2AError                        a remote A2A agent answered with an error
    └── TransientResolutionError            the caller may retry the whole query
        ├── ModelUnavailableError           429, 5xx, timeouts, connection dropped mid-stream
        ├── A2AUnavailableError             the A2A server could not be reached or failed (5xx)
        └── MemoryBackendError              the memory service failed; the resolver degrades
                                            (runs without history, sets MemoryDegraded)

Timeouts, cancellation and a pause for approval are not errors of this tree: they are outcomes the
:class:`~ark_mesh.resolver.resolution.QueryResolver` produces itself (``TimedOutInExecution``,
``canceled``). A tool *result* that carries an error text is not an error either — it is fed
back to the model, as Ark does.
"""

from __future__ import annotations

__all__ = [
    "A2AError",
    "A2AUnavailableError",
    "ConfigurationError",
    "InterruptedToolCallError",
    "InvalidSpecError",
    "MemoryBackendError",
    "ModelRequestError",
    "ModelUnavailableError",
    "ParameterError",
    "PermanentResolutionError",
    "ReplayDivergedError",
    "ResolutionError",
    "ResourceNotFoundError",
    "TargetNotFoundError",
    "TemplateError",
    "ToolExecutionError",
    "TransientResolutionError",
]


class ResolutionError(Exception):
    """Base of every error the resolver raises on purpose; ``str()`` is the user-facing text."""


class PermanentResolutionError(ResolutionError):
    """Retrying the same query cannot succeed; the query ends in phase ``error``."""


class InvalidSpecError(PermanentResolutionError):
    """The Query, or a resource it references, is malformed."""


class TemplateError(InvalidSpecError):
    """A Go-template placeholder cannot be rendered (unknown variable, unsupported action)."""


class ParameterError(InvalidSpecError):
    """A parameter (or header, or address) value cannot be resolved from its source."""


class TargetNotFoundError(PermanentResolutionError):
    """``spec.target`` does not exist, or ``spec.selector`` matches nothing."""


class ResourceNotFoundError(PermanentResolutionError):
    """A resource referenced along the way (model, tool, team member, memory …) is missing."""

    def __init__(self, kind: str, namespace: str, name: str, *, referenced_by: str = "") -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        suffix = f" (referenced by {referenced_by})" if referenced_by else ""
        super().__init__(f"{kind} '{name}' not found in namespace '{namespace}'{suffix}")


class ConfigurationError(PermanentResolutionError):
    """A resource exists but cannot be used as configured (unsupported provider, bad tool)."""


class ModelRequestError(PermanentResolutionError):
    """The model provider refused the request (400, 401, 403, 404, 422 …)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ToolExecutionError(PermanentResolutionError):
    """A tool call failed (HTTP status ≥ 400, unreachable endpoint, MCP protocol error …)."""

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(message)


class A2AError(PermanentResolutionError):
    """A remote A2A agent answered with a JSON-RPC error or a failed task."""


class TransientResolutionError(ResolutionError):
    """Something was briefly unavailable; retrying the whole query may succeed."""


class ModelUnavailableError(TransientResolutionError):
    """The provider is rate limiting (429), failing (5xx), slow, or dropped the connection."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class A2AUnavailableError(TransientResolutionError):
    """The A2A server could not be reached, or answered with a server error."""


class MemoryBackendError(TransientResolutionError):
    """The memory service failed. Never fails a query: history is skipped (``MemoryDegraded``)
    or the save is reported as a ``MemoryAddMessagesError`` event."""


class InterruptedToolCallError(ToolExecutionError):
    """A tool call was running when the previous attempt died, so its effect is unknown.

    It is executed again only for a tool that declares itself idempotent; for any other the
    query ends here, naming the tool, rather than risk doing the same thing twice.
    """

    def __init__(self, tool: str) -> None:
        super().__init__(
            tool,
            f"tool '{tool}' was running when the previous attempt of this query was interrupted "
            "and is not marked idempotent, so it is not called again (its effect is unknown)",
        )


class ReplayDivergedError(PermanentResolutionError):
    """Replaying a run's step log met a step other than the one recorded at that position
    (the Agent, Team or Tool changed while the query was paused or being retried)."""

    def __init__(self, expected: str, recorded: str, position: int) -> None:
        super().__init__(
            f"cannot resume the query: step {position} is {expected}, but the run's log "
            f"recorded {recorded} there (its resources changed while it was paused)"
        )
