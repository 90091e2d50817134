"""Running one Agent: the built-in agent loop, or a round trip to an A2A agent.

The loop (Ark's ``executeLocally``): messages are the rendered system prompt, the history and the
user input; each turn streams one completion; the assistant message (stamped with the agent's
name) is kept; tool calls run one after another, in order, their results fed back as ``tool``
messages; the loop ends when the model answers without tool calls, or a tool signals the end
(``terminate``, ``select-next-speaker``). There is no turn cap — only the query's timeout and
cancellation bound it, as in Ark. A tool error propagates and fails the query. A call whose
tool needs human approval stops the run before it
(:class:`~ark_mesh.resolver.journal.ApprovalRequired`: phase ``input-required``), together with
the later calls of the same turn that need approval too.

An agent whose ``executionEngine`` is ``a2a`` (created from an A2AServer) is instead a proxy: the
user input goes to the A2A server with ``message/send``, its ``contextId``/task id are kept for
``status.response.a2a``, and its text is the agent's answer. An agent run by the loop answers as
Ark's own A2A agent does: the query is its task (:func:`~ark_mesh.resolver.a2a.own_task`).

Only an agent that speaks for the query records these ids: the target, or a team member. An agent
called as a tool or a team's selector runs silently (``Scope.stream`` false); its answer is not
the query's, so neither are its ids. The last speaker's ids are the ones kept, as the status
describes the final message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ark_mesh.contracts import A2AServer, Agent, Model, TokenUsage
from ark_mesh.contracts.durations import parse_duration
from ark_mesh.contracts.errors import DurationError
from ark_mesh.resolver.a2a import A2AReply, own_task, send_message
from ark_mesh.resolver.context import QueryRun, Scope
from ark_mesh.resolver.errors import ConfigurationError, InvalidSpecError, ResourceNotFoundError
from ark_mesh.resolver.journal import ApprovalRequired
from ark_mesh.resolver.llm import complete
from ark_mesh.resolver.models import endpoint_for
from ark_mesh.resolver.outcome import Outcome
from ark_mesh.resolver.overrides import override_headers
from ark_mesh.resolver.ports import ChatMessage, ChatRequest, ModelEndpoint
from ark_mesh.resolver.resources import ANNOTATIONS
from ark_mesh.resolver.templates import render
from ark_mesh.resolver.tools.registry import ToolSet, tools_for_agent

if TYPE_CHECKING:
    from ark_mesh.resolver.tools.base import Delegate

__all__ = ["A2A_ENGINE", "DEFAULT_MODEL_NAME", "AgentRunner", "schema_name"]

A2A_ENGINE = "a2a"
DEFAULT_MODEL_NAME = "default"
DEFAULT_A2A_TIMEOUT = 300.0


def schema_name(namespace: str, agent: str) -> str:
    """The ``response_format`` schema name Ark uses: ``namespace-<ns>-agent-<name>``, ≤ 64."""
    return f"namespace-{namespace}-agent-{agent}"[:64]


class AgentRunner:
    """Executes one Agent resource within a query run."""

    def __init__(self, run: QueryRun, agent: Agent, delegate: Delegate) -> None:
        self.run = run
        self.agent = agent
        self.delegate = delegate
        self.name = agent.metadata.name

    async def execute(
        self,
        scope: Scope,
        user_input: str,
        history: list[ChatMessage],
        *,
        tools: ToolSet | None = None,
        tool_choice: str | None = None,
    ) -> Outcome:
        """Run the agent on ``user_input`` after ``history``; returns only the new messages."""
        scope = scope.with_(agent=self.name)
        data = {"agent": self.name}
        if scope.team:
            data["team"] = scope.team
        async with self.run.report.operation(
            "AgentExecution", f"Executing agent {self.name}", data
        ):
            engine = self.agent.spec.execution_engine
            if engine is not None and engine.name == A2A_ENGINE:
                return await self._a2a(scope, user_input)
            if engine is not None and engine.name:
                raise ConfigurationError(
                    f"agent '{self.name}': execution engine '{engine.name}' is not supported "
                    f"(only the built-in engine and '{A2A_ENGINE}' are)"
                )
            outcome = await self._loop(scope, user_input, history, tools, tool_choice)
            if scope.stream:
                self.run.a2a = own_task(
                    self.run.query_id, self.run.annotation(ANNOTATIONS.A2A_CONTEXT_ID)
                )
            return outcome

    # ------------------------------------------------------------------ built-in loop

    async def endpoint(self) -> ModelEndpoint:
        ref = self.agent.spec.model_ref
        name = ref.name if ref else DEFAULT_MODEL_NAME
        namespace = (ref.namespace if ref else None) or self.run.namespace
        model = await self.run.store.get(Model, namespace, name)
        if model is None:
            raise ResourceNotFoundError(
                "Model", namespace, name, referenced_by=f"agent '{self.name}'"
            )
        return await endpoint_for(model, self.run.values)

    async def system_prompt(self) -> str | None:
        prompt = self.agent.spec.prompt
        if not prompt:
            return None
        values = await self.run.values.parameters(
            self.agent.spec.parameters, what=f"agent '{self.name}'"
        )
        return render(prompt, values, where=f"agent '{self.name}' prompt")

    def response_format(self) -> dict[str, Any] | None:
        schema = self.agent.spec.output_schema
        if not schema:
            return None
        return {
            "type": "json_schema",
            "json_schema": {"name": schema_name(self.run.namespace, self.name), "schema": schema},
        }

    async def _loop(
        self,
        scope: Scope,
        user_input: str,
        history: list[ChatMessage],
        tools: ToolSet | None,
        tool_choice: str | None,
    ) -> Outcome:
        endpoint = await self.endpoint()
        headers = await override_headers(
            self.run.values,
            resource_type="model",
            labels=endpoint.labels,
            agent_overrides=self.agent.spec.overrides,
            query_overrides=self.run.request.spec.overrides,
        )
        prompt = await self.system_prompt()
        toolset = (
            tools
            if tools is not None
            else await tools_for_agent(self.run, self.agent, self.delegate)
        )
        definitions = toolset.definitions()
        messages: list[ChatMessage] = [{"role": "system", "content": prompt}] if prompt else []
        messages += history
        messages.append({"role": "user", "content": user_input})
        produced: list[ChatMessage] = []
        while True:
            completion = await complete(
                self.run,
                scope,
                endpoint,
                ChatRequest(
                    messages=list(messages),
                    tools=definitions,
                    tool_choice=tool_choice if definitions else None,
                    response_format=self.response_format(),
                    headers=headers,
                ),
            )
            assistant = {**completion.message, "name": self.name}
            messages.append(assistant)
            produced.append(assistant)
            if not completion.tool_calls:
                return Outcome(produced)
            calls = completion.tool_calls
            for index, call in enumerate(calls):
                if toolset.waits_for_approval(self.run, call):
                    raise self._approval_required(toolset, calls[index:])
                result = await toolset.call(self.run, scope, call)
                reply: ChatMessage = {
                    "role": "tool",
                    "tool_call_id": call.get("id", ""),
                    "content": result.text,
                }
                messages.append(reply)
                produced.append(reply)
                if result.signal is not None:
                    return Outcome(produced, result.signal)

    def _approval_required(self, toolset: ToolSet, calls: list[dict[str, Any]]) -> ApprovalRequired:
        """Stop before the first call a human must approve, with every call of this turn
        that waits for approval (approved or rejected together, as in Ark)."""
        waiting = [c for c in calls if toolset.waits_for_approval(self.run, c)]
        approval = toolset.approval_of(waiting[0])
        assert approval is not None
        return ApprovalRequired(
            self.name, waiting, approval.timeout or "", approval.on_timeout or "reject"
        )

    # ------------------------------------------------------------------ A2A proxy

    async def _a2a_server(self) -> tuple[str, dict[str, str], float]:
        annotations = self.agent.metadata.annotations or {}
        address = annotations.get(ANNOTATIONS.A2A_SERVER_ADDRESS)
        server_name = annotations.get(ANNOTATIONS.A2A_SERVER_NAME)
        headers: dict[str, str] = {}
        timeout = DEFAULT_A2A_TIMEOUT
        if server_name:
            server = await self.run.store.get(A2AServer, self.run.namespace, server_name)
            if server is None and not address:
                raise ResourceNotFoundError(
                    "A2AServer",
                    self.run.namespace,
                    server_name,
                    referenced_by=f"agent '{self.name}'",
                )
            if server is not None:
                what = f"A2A server '{server_name}'"
                address = (
                    address
                    or (server.status.last_resolved_address if server.status else None)
                    or await self.run.values.required(server.spec.address, what=f"{what} address")
                )
                headers = await self.run.values.headers(server.spec.headers, what=what)
                if server.spec.timeout:
                    try:
                        timeout = parse_duration(server.spec.timeout).total_seconds()
                    except DurationError as exc:
                        raise InvalidSpecError(f"{what} timeout: {exc}") from exc
        if not address:
            raise ConfigurationError(
                f"agent '{self.name}' uses the '{A2A_ENGINE}' engine but names no A2A server "
                f"(annotation {ANNOTATIONS.A2A_SERVER_ADDRESS} or {ANNOTATIONS.A2A_SERVER_NAME})"
            )
        return address, headers, timeout

    async def _a2a(self, scope: Scope, user_input: str) -> Outcome:
        """One ``message/send`` to the remote agent. Like a model turn, it is a step of the
        run's log: a resumed run takes the reply from there instead of asking again."""
        speaker = f"{A2A_ENGINE}:{self.name}"
        recorded = self.run.journal.replay_model(speaker)
        if recorded is not None:
            ids = recorded.message.get("a2a") or {}
            reply = A2AReply(
                str(recorded.message.get("content") or ""),
                ids.get("contextId"),
                ids.get("taskId"),
            )
            if scope.stream:
                self.run.a2a = reply.metadata()
            return Outcome([{"role": "assistant", "content": reply.text, "name": self.name}])
        address, headers, timeout = await self._a2a_server()
        reply = await send_message(
            self.run.http,
            address,
            user_input,
            agent=self.name,
            context_id=self.run.annotation(ANNOTATIONS.A2A_CONTEXT_ID),
            headers=headers,
            wait_seconds=timeout,
        )
        await self.run.journal.model_done(
            speaker,
            {
                "role": "assistant",
                "content": reply.text,
                "a2a": {"contextId": reply.context_id, "taskId": reply.task_id},
            },
            TokenUsage(),
        )
        if scope.stream:
            self.run.a2a = reply.metadata()
        await self.run.report.announce(
            reply.text,
            scope,
            chunk_id=f"chatcmpl-a2a-{reply.task_id or reply.context_id or self.name}",
        )
        return Outcome([{"role": "assistant", "content": reply.text, "name": self.name}])
