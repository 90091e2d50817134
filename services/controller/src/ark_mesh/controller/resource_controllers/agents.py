"""Agent ``Available``: every dependency exists and is ready, or the first one that is not.

Ark's order and reasons: the owning A2AServer (``A2AServerNotReady``), the Model
(``ModelNotFound``, also when it exists but is not ``ModelAvailable``), the ExecutionEngine
(``ExecutionEngineNotFound`` / ``ExecutionEngineNotReady``; the built-in ``a2a`` engine has no
resource), then the Tools (``ToolNotFound``, also for a type mismatch). An Agent without
``modelRef`` uses the Model named ``default`` (what Ark's defaulting webhook writes), unless it
runs on an execution engine. Every dependency is reported to the skeleton, whatever the verdict,
so the Agent is re-evaluated as soon as any of them changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ark_mesh.contracts import A2AServer, Agent, ExecutionEngine, Model, Resource, Tool
from ark_mesh.controller.resource_controllers.skeleton import (
    Event,
    Observed,
    ReconcileContext,
    Ref,
    condition,
    condition_is_true,
)

__all__ = ["AVAILABLE", "AgentAvailability"]

AVAILABLE = "Available"
A2A_ENGINE = "a2a"
DEFAULT_MODEL = "default"
BUILT_IN_TOOL_TYPES = frozenset({"built-in", "builtin"})
A2A_SERVER_API_VERSION = f"{A2AServer.GROUP}/{A2AServer.VERSION}"

R = TypeVar("R", bound=Resource)
Unmet = tuple[str, str] | None
"""Why a dependency is not ready (reason, message), or ``None`` when it is."""
DependencyCheck = Callable[[Ref, ReconcileContext], Awaitable[Unmet]]


async def _present(
    ctx: ReconcileContext, kind: type[R], ref: Ref, reason: str, noun: str
) -> tuple[R | None, Unmet]:
    """The dependency, or why it is missing in Ark's words (it cannot be read, or it is not
    there)."""
    found, error = await ctx.lookup(kind, ref)
    if error is not None:
        return None, (reason, f"Error checking {noun}: {error}")
    if found is None:
        return None, (reason, f"{kind.KIND} '{ref.name}' not found in namespace '{ref.namespace}'")
    return found, None


def tool_resource_name(entry_name: str, partial_name: str | None) -> str:
    """The Tool an agent's tool entry names: a partial's ``name``, else the entry's own."""
    return partial_name or entry_name


class AgentAvailability:
    kind = Agent
    watches: tuple[type[Resource], ...] = (Model, Tool, A2AServer, ExecutionEngine)

    async def reconcile(self, agent: Agent, ctx: ReconcileContext) -> Observed:
        namespace = agent.metadata.namespace or ""
        spec = agent.spec
        checks: list[tuple[Ref, DependencyCheck]] = []

        server = next(
            (
                owner.get("name")
                for owner in agent.metadata.owner_references or []
                if owner.get("kind") == A2AServer.KIND
                and owner.get("apiVersion") == A2A_SERVER_API_VERSION
            ),
            None,
        )
        if isinstance(server, str) and server:
            checks.append((Ref(A2AServer.KIND, namespace, server), self._a2a_server))
        engine = spec.execution_engine
        model_name = spec.model_ref.name if spec.model_ref else None
        if model_name is None and engine is None:
            model_name = DEFAULT_MODEL
        if model_name:
            model_namespace = (spec.model_ref.namespace if spec.model_ref else None) or namespace
            checks.append((Ref(Model.KIND, model_namespace, model_name), self._model))
        if engine is not None and engine.name != A2A_ENGINE:
            engine_ref = Ref(ExecutionEngine.KIND, engine.namespace or namespace, engine.name)
            checks.append((engine_ref, self._engine))
        for entry in spec.tools or []:
            if entry.type in BUILT_IN_TOOL_TYPES or not entry.name:
                continue
            name = tool_resource_name(entry.name, entry.partial.name if entry.partial else None)
            checks.append((Ref(Tool.KIND, namespace, name), self._tool(entry.type)))

        available, reason, message = True, "Available", "All dependencies are available"
        for ref, check in checks:
            unmet = await check(ref, ctx)
            if unmet is not None:
                available, (reason, message) = False, unmet
                break
        return Observed(
            conditions=[condition(AVAILABLE, "True" if available else "False", reason, message)],
            events=[] if available else [Event("DependencyUnavailable", message, "Warning")],
            depends_on=[ref for ref, _ in checks],
        )

    @staticmethod
    async def _a2a_server(ref: Ref, ctx: ReconcileContext) -> Unmet:
        server, unmet = await _present(ctx, A2AServer, ref, "A2AServerNotReady", "A2AServer")
        if server is not None and not condition_is_true(server, "Ready"):
            return "A2AServerNotReady", f"A2AServer '{ref.name}' is not ready"
        return unmet

    @staticmethod
    async def _model(ref: Ref, ctx: ReconcileContext) -> Unmet:
        model, unmet = await _present(ctx, Model, ref, "ModelNotFound", "model")
        if model is not None and not condition_is_true(model, "ModelAvailable"):
            return "ModelNotFound", f"Model '{ref.name}' is not available"
        return unmet

    @staticmethod
    async def _engine(ref: Ref, ctx: ReconcileContext) -> Unmet:
        engine, unmet = await _present(
            ctx, ExecutionEngine, ref, "ExecutionEngineNotFound", "execution engine"
        )
        if engine is None:
            return unmet
        phase = (engine.status.phase if engine.status else None) or ""
        if phase != "ready":
            return (
                "ExecutionEngineNotReady",
                f"ExecutionEngine '{ref.name}' is not ready (phase: {phase})",
            )
        return None

    @staticmethod
    def _tool(declared: str) -> DependencyCheck:
        async def check(ref: Ref, ctx: ReconcileContext) -> Unmet:
            tool, unmet = await _present(ctx, Tool, ref, "ToolNotFound", "tool")
            if tool is not None and declared != "custom" and tool.spec.type != declared:
                return (
                    "ToolNotFound",
                    f"Tool '{ref.name}' has type '{tool.spec.type}', but agent declares it "
                    f"as '{declared}'",
                )
            return unmet

        return check

    async def aclose(self) -> None:
        return None
