"""The QueryResolver: resolve one Query from its spec to a terminal status.

One object serves every deployment: the controller calls :meth:`QueryResolver.resolve` with an
in-process sink, the query-reconciler service with a JetStream sink. A resolution

1. reports phase ``running`` and ``QueryExecutionStart`` (and ``EvaluationSkipped`` when the
   query asks for evaluators, which ark-mesh does not run);
2. decides whether model calls stream (:mod:`ark_mesh.resolver.streaming`), renders the input
   from the query's parameters, resolves the target (``spec.target`` or the selector's first
   match), opens the conversation memory;
3. runs the target — agent loop, team, single model call or single tool call — streaming chunks;
4. saves the turn to memory, reports ``QueryExecutionComplete``/``Error``, the terminal status
   and finally the ``chatcmpl-final`` chunk carrying the completed query.

The work runs in its own task so that a timeout (``spec.timeout``, default 5m → phase ``error``,
reason ``TimedOutInExecution``) or a cancel (the ``cancel`` event → phase ``canceled``) stops it
at once: cancelling the task closes the live model stream and aborts the running tool call, and
the run is silenced first, so no chunk produced after that point reaches the sink.

Permanent errors end the query in ``error`` with the message in ``response.content``. Transient
ones (provider 429/5xx, dropped connections, unreachable A2A server) do the same unless the
caller passes ``raise_transient=True``: then no terminal status is reported and the
:class:`~ark_mesh.resolver.errors.TransientResolutionError` is raised, so a caller with
redelivery can retry the whole query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

import aiohttp

from ark_mesh.contracts import (
    A2AMetadata,
    Agent,
    Memory,
    Model,
    QueryRequest,
    QueryStatus,
    Team,
    Tool,
    ark,
    rfc3339,
)
from ark_mesh.contracts.approvals import ApprovalRequest, RunLog, ToolApprovalLine
from ark_mesh.contracts.durations import parse_duration
from ark_mesh.contracts.endings import Ending, RunFacts, target_label
from ark_mesh.contracts.errors import DurationError
from ark_mesh.resolver.clock import SystemClock
from ark_mesh.resolver.context import QueryRun, RunReporter, Scope
from ark_mesh.resolver.errors import (
    InvalidSpecError,
    ResolutionError,
    ResourceNotFoundError,
    ToolExecutionError,
    TransientResolutionError,
)
from ark_mesh.resolver.journal import ApprovalRequired, Journal, StepJournal
from ark_mesh.resolver.llm import Completion, complete
from ark_mesh.resolver.members import MemberRunner
from ark_mesh.resolver.memory import Conversation, open_conversation
from ark_mesh.resolver.memory_http import HTTPMemoryStore
from ark_mesh.resolver.models import endpoint_for
from ark_mesh.resolver.openai_client import OpenAIModelClient
from ark_mesh.resolver.outcome import Outcome
from ark_mesh.resolver.overrides import override_headers
from ark_mesh.resolver.ports import (
    ChatMessage,
    ChatRequest,
    Clock,
    MemoryFactory,
    MemoryStore,
    ModelClient,
    ResolutionSink,
    ResourceStore,
)
from ark_mesh.resolver.status import input_required_status, memory_conditions, running_status
from ark_mesh.resolver.streaming import streams_model_calls_for
from ark_mesh.resolver.targets import ResolvedTarget, resolve_target
from ark_mesh.resolver.templates import render
from ark_mesh.resolver.tools.registry import ToolSet, policy_for, tool_from_resource
from ark_mesh.resolver.unsupported import (
    EVALUATION_SKIPPED,
    skipped_evaluation,
    skipped_evaluation_condition,
)
from ark_mesh.resolver.values import ValueResolver

__all__ = ["DEFAULT_TIMEOUT", "QueryResolver"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = ark.DEFAULT_QUERY_TIMEOUT


def input_text(raw: Any) -> str:
    """The user text of ``spec.input``: a string, or (deprecated ``messages`` form) the text of
    the last user message, which is what Ark's webhook migrates it to."""
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, list):
        users = [m for m in raw if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise InvalidSpecError("spec.input is a message list without a user message")
        content = users[-1].get("content")
        text = content if isinstance(content, str) else ""
    else:
        raise InvalidSpecError("spec.input must be a string")
    if not text.strip():
        raise InvalidSpecError("spec.input is empty")
    return text


@dataclass
class _Execution:
    """The work of one resolution, run in its own task; keeps what the ending needs."""

    run: QueryRun
    memory_factory: MemoryFactory
    members: MemberRunner
    hand_back_transient: bool = False
    streams_by_default: bool = False
    history: Sequence[ChatMessage] | None = None
    user_input: str = ""
    target: ResolvedTarget | None = None
    conversation: Conversation = field(default_factory=Conversation)

    async def execute(self) -> Outcome:
        run = self.run
        spec = run.request.spec
        run.streams_model_calls = await streams_model_calls_for(
            run.store, run.namespace, run.request.annotations, default=self.streams_by_default
        )
        parameters = await run.values.parameters(spec.parameters, what="query")
        run.values = ValueResolver(run.store, run.namespace, parameters)
        self.user_input = render(input_text(spec.input), parameters, where="query input")
        self.target = await resolve_target(run.store, run.namespace, spec)
        run.report.target_label = self.target.label
        self.conversation = await open_conversation(run, self.memory_factory)
        if self.history is not None:
            # The caller sent the conversation (chat-completions style): it replaces what
            # memory holds for this turn; the turn is still saved to memory if there is one.
            self.conversation.history = list(self.history)
        user_message: ChatMessage = {"role": "user", "content": self.user_input}
        try:
            outcome = await self._dispatch(self.target)
        except ResolutionError as exc:
            # A failure handed back for a retry is not a turn of the conversation: the retry
            # will write the real one.
            if not (isinstance(exc, TransientResolutionError) and self.hand_back_transient):
                error_reply = {"role": "assistant", "content": f"Error: {exc}"}
                await self.conversation.save(run, [user_message, error_reply])
            raise
        await self.conversation.save(run, [user_message, *outcome.messages])
        return outcome

    async def _dispatch(self, resolved: ResolvedTarget) -> Outcome:
        history = self.conversation.history
        resource = resolved.resource
        if isinstance(resource, Agent):
            return await self.members.run_agent(Scope(), resource, self.user_input, history)
        if isinstance(resource, Team):
            return await self.members.run_team(Scope(), resource, self.user_input, history)
        if isinstance(resource, Model):
            return await self._model(resource, history)
        if isinstance(resource, Tool):
            return await self._tool(resource)
        raise InvalidSpecError(f"unsupported target type '{resolved.target.type}'")

    async def _model(self, model: Model, history: list[ChatMessage]) -> Outcome:
        """A model target: one completion over history and input, without tools."""
        endpoint = await endpoint_for(model, self.run.values)
        headers = await override_headers(
            self.run.values,
            resource_type="model",
            labels=endpoint.labels,
            agent_overrides=None,
            query_overrides=self.run.request.spec.overrides,
        )
        messages = [*history, {"role": "user", "content": self.user_input}]
        completion = await complete(
            self.run,
            Scope(model=model.metadata.name),
            endpoint,
            ChatRequest(messages=messages, headers=headers),
        )
        return Outcome([completion.message])

    async def _tool(self, tool: Tool) -> Outcome:
        """A tool target: the input (a JSON object, else ``{"input": text}``) as arguments."""
        executor = await tool_from_resource(self.run, tool, delegate=self.members)
        try:
            parsed = json.loads(self.user_input)
        except json.JSONDecodeError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else {"input": self.user_input}
        call = {
            "id": f"call_{self.run.query_id}",
            "type": "function",
            "function": {"name": executor.name, "arguments": json.dumps(arguments)},
        }
        toolset = ToolSet([executor], {executor.name: policy_for(executor, tool, None)})
        result = await toolset.call(self.run, Scope(), call)
        if result.error is not None:
            raise ToolExecutionError(executor.name, result.error)
        return Outcome([{"role": "assistant", "content": result.content}])


class QueryResolver:
    """Resolves queries through ports; safe to share across concurrent resolutions.

    ``models`` defaults to :class:`~ark_mesh.resolver.openai_client.OpenAIModelClient`,
    ``memory`` (a :class:`~ark_mesh.resolver.ports.MemoryFactory`) to Ark's HTTP memory API at
    the Memory's resolved address, ``http`` (for HTTP tools, A2A and memory) to a session the
    resolver owns. ``reconciler_id`` is stamped on every StatusUpdate. ``stream_model_calls``
    is the service's default for streaming model calls when neither the namespace's
    ``ark-config-streaming`` ConfigMap nor the query's ``streaming-enabled`` annotation decides
    (see :mod:`ark_mesh.resolver.streaming`); ``False`` is Ark's behaviour.
    """

    def __init__(
        self,
        store: ResourceStore,
        *,
        models: ModelClient | None = None,
        memory: MemoryFactory | None = None,
        clock: Clock | None = None,
        http: aiohttp.ClientSession | None = None,
        reconciler_id: str | None = None,
        default_timeout: timedelta = DEFAULT_TIMEOUT,
        cancel_grace: float = 10.0,
        stream_model_calls: bool = False,
    ) -> None:
        self._store = store
        self._owned_models: OpenAIModelClient | None = None
        if models is None:
            models = self._owned_models = OpenAIModelClient()
        self._models: ModelClient = models
        self._memory_factory: MemoryFactory = memory or self._http_memory
        self._clock: Clock = clock or SystemClock()
        self._http = http
        self._owns_http = http is None
        self._reconciler_id = reconciler_id
        self._default_timeout = default_timeout
        self._cancel_grace = cancel_grace
        self._stream_model_calls = stream_model_calls

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    def _http_memory(self, memory: Memory, address: str, headers: Mapping[str, str]) -> MemoryStore:
        return HTTPMemoryStore(self._session(), address, headers)

    async def aclose(self) -> None:
        """Close what the resolver created (HTTP session, SDK clients)."""
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None
        if self._owned_models is not None:
            await self._owned_models.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _budget(self, request: QueryRequest) -> float:
        """The execution budget in seconds: ``spec.timeout`` (default 5m) from this start.

        Ark measures ``spec.timeout`` twice: once as a start-by budget from creation (the
        request's ``deadline``, see :meth:`_started_too_late`) and once, in full, for each
        dispatch round. Time spent queued does not shorten execution.
        """
        timeout = self._default_timeout
        if request.spec.timeout:
            try:
                timeout = parse_duration(request.spec.timeout)
            except DurationError as exc:
                raise InvalidSpecError(f"spec.timeout: {exc}") from exc
        return timeout.total_seconds()

    @staticmethod
    def _started_too_late(request: QueryRequest, started_at: datetime) -> bool:
        """Whether the start-by ``deadline`` (creation + ``spec.timeout``) has already passed."""
        if not request.deadline:
            return False
        try:
            deadline = datetime.fromisoformat(request.deadline)
        except ValueError as exc:
            raise InvalidSpecError(f"deadline {request.deadline!r} is not RFC 3339") from exc
        return deadline <= started_at

    async def resolve(
        self,
        request: QueryRequest,
        sink: ResolutionSink,
        *,
        cancel: asyncio.Event | None = None,
        attempt: int = 1,
        raise_transient: bool = False,
        history: Sequence[ChatMessage] | None = None,
        canceled_at: Callable[[], datetime | None] | None = None,
        log: RunLog | None = None,
        journal: Journal | None = None,
    ) -> QueryStatus:
        """Resolve ``request``, reporting through ``sink``; returns the terminal status, or the
        ``input-required`` status when the run stopped for a human's approval.

        ``log`` is the step log of an earlier attempt or round of this query generation: the run
        replays it (:mod:`ark_mesh.resolver.journal`) and, when ``request.resume`` carries the
        decision on its pending approval, applies it. ``journal`` keeps the log durably: it gets
        the whole log after every completed step and at a pause.

        ``history`` is the conversation before this input when the caller supplies it (an
        OpenAI-style request carries all its messages); otherwise memory provides it.
        ``canceled_at`` tells, once ``cancel`` is set, the instant the canceller stamped (the
        controller writes ``canceled`` itself for a standalone query); the ending reuses it.
        """
        clock = self._clock
        started_at, started = clock.now(), clock.monotonic()
        report = RunReporter(request, sink, clock, attempt, self._reconciler_id)
        steps = StepJournal(request, log, journal)
        report.round = steps.round
        run = self._run(report, steps)
        execution = _Execution(
            run,
            self._memory_factory,
            MemberRunner(run),
            raise_transient,
            streams_by_default=self._stream_model_calls,
            history=history,
        )
        ending: Ending | None = None
        ran = False
        budget = 0.0
        try:
            budget = self._budget(request)
            if self._started_too_late(request, started_at):
                ending = Ending.timed_out_in_queue()
        except InvalidSpecError as exc:
            ending = Ending.error(str(exc))
        resume = request.resume
        if ending is None and resume is not None and resume.decision == "failed":
            # The approval ended in a way the agent cannot answer (the cascade limit, an
            # invalid decision): the query ends with the decider's message, nothing runs.
            ending = Ending.error(resume.message or "the approval of the tool calls failed")
        if ending is None:
            await report.status("running", running_status(started_at, request.generation))
            await report.event("QueryExecutionStart", f"Executing query {request.name}")
            skipped = skipped_evaluation(request.spec)
            if skipped is not None:
                await report.event(EVALUATION_SKIPPED, skipped, event_type="Warning")
            if request.spec.cancel or (cancel is not None and cancel.is_set()):
                ending = Ending.canceled()
            else:
                ran = True
                await self._answer_approval(run)
                outcome = await self._supervise(execution, budget, cancel, raise_transient)
                if isinstance(outcome, ApprovalRequired):
                    return await self._pause(execution, outcome)
                ending = outcome
        if ran and ending.phase != "canceled":
            elapsed = timedelta(seconds=clock.monotonic() - started)
            facts = self._facts(execution, elapsed)
        else:
            # Ended before the work began, or canceled: the same ending the controller or a
            # service reports for it. A canceller cannot know what the run measured, and for a
            # running standalone query both the controller and the run report ``canceled`` —
            # whichever lands first must say the same thing.
            facts = RunFacts.before_start(request.spec)
        at = canceled_at() if canceled_at is not None and ending.phase == "canceled" else None
        return await run.report.ending(ending, facts, at=at)

    def _run(
        self,
        report: RunReporter,
        steps: StepJournal | None = None,
        *,
        streams_model_calls: bool = False,
    ) -> QueryRun:
        """The state of one run, on this resolver's ports."""
        return QueryRun(
            request=report.request,
            report=report,
            store=self._store,
            models=self._models,
            http=self._session(),
            clock=self._clock,
            values=ValueResolver(self._store, report.request.namespace),
            journal=steps or StepJournal(report.request, None, None),
            streams_model_calls=streams_model_calls,
        )

    async def _answer_approval(self, run: QueryRun) -> None:
        """A run resumed with a decision says so on the stream (Ark's
        ``tool_approval_response`` line) before it goes on — once: a redelivered resume whose
        decision the log already holds has said it."""
        decision = run.journal.new_decision
        if decision is None:
            return
        action = (
            "approved" if decision.decision in ("approved", "timeout-proceeded") else "rejected"
        )
        line = ToolApprovalLine(
            type="tool_approval_response",
            task_id=decision.task_id,
            action=action,
            timestamp=decision.decided_at,
        )
        await run.report.tool_approval(line, Scope())

    async def _pause(self, execution: _Execution, paused: ApprovalRequired) -> QueryStatus:
        """Stop for a human: the log first (so the pause survives whatever happens next),
        then Ark's ``tool_approval_request`` line, then phase ``input-required`` carrying the
        approval, from which the status writer creates the ``a2a-task-<taskId>``.

        Nothing else ends: no final chunk, no ending event. The run returns and holds no
        worker; the query continues in a new round once the decision is made.
        """
        run = execution.run
        report = run.report
        now = self._clock.now()
        context_id = execution.conversation.conversation_id
        approval = ApprovalRequest(
            task_id=uuid.uuid4().hex,
            agent=paused.agent,
            agent_namespace=run.namespace,
            tool_calls=paused.calls,
            timeout=paused.timeout,
            on_timeout="proceed" if paused.on_timeout == "proceed" else "reject",
            context_id=context_id,
            requested_at=rfc3339(now),
            round=run.journal.round,
        )
        run.journal.chunk_seq = report.last_chunk_seq + 1
        await run.journal.paused(approval)
        line = ToolApprovalLine(
            type="tool_approval_request",
            task_id=approval.task_id,
            tool_calls=approval.tool_calls,
            timeout=approval.timeout or None,
            on_timeout=approval.on_timeout,
            agent_name=approval.agent,
        )
        await report.tool_approval(line, Scope(agent=paused.agent))
        await report.event(
            "ToolApprovalRequested",
            f"Agent {paused.agent} waits for approval of "
            f"{', '.join(str((c.get('function') or {}).get('name')) for c in paused.calls)}",
            {"agent": paused.agent, "taskId": approval.task_id},
        )
        status = input_required_status(
            running_status(now, run.request.generation),
            target=execution.target.target if execution.target else run.request.spec.target,
            a2a=A2AMetadata(context_id=context_id, task_id=approval.task_id),
            conversation_id=context_id,
            usage=run.usage,
        )
        await report.status("input-required", status, approval=approval)
        return status

    async def call_model(
        self,
        request: QueryRequest,
        sink: ResolutionSink,
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        attempt: int = 1,
    ) -> Completion:
        """One completion of the Model ``request.spec.target`` names over ``messages``, whole.

        For callers that own the conversation (an OpenAI-style chat request on a model): no
        agent, memory or tools, and no ending reported — the caller decides how the request
        ended and reports it (:meth:`RunReporter.ending`). Chunks reach ``sink`` numbered from 1
        when ``stream`` is set; the ``LLMCall`` operation events and span are reported as in a
        query. A missing Model raises :class:`~ark_mesh.resolver.errors.ResourceNotFoundError`.
        """
        target = request.spec.target
        if target is None or target.type != "model":
            raise InvalidSpecError("call_model needs a request whose target is a model")
        model = await self._store.get(Model, request.namespace, target.name)
        if model is None:
            raise ResourceNotFoundError("Model", request.namespace, target.name)
        report = RunReporter(request, sink, self._clock, attempt, self._reconciler_id)
        report.target_label = target_label(target)
        report.conversation_id = request.spec.conversation_id
        run = self._run(report, streams_model_calls=stream)
        endpoint = await endpoint_for(model, run.values)
        chat = ChatRequest(messages=list(messages))
        return await complete(run, Scope(model=target.name), endpoint, chat)

    async def _supervise(
        self,
        execution: _Execution,
        budget: float,
        cancel: asyncio.Event | None,
        raise_transient: bool,
    ) -> Ending | ApprovalRequired:
        """Run the work under the deadline and the cancel event; say how it ended, or that
        it stopped for an approval."""
        run = execution.run
        work = asyncio.create_task(execution.execute(), name=f"resolve-{run.query_id}")
        stopper = asyncio.create_task(cancel.wait()) if cancel is not None else None
        waiting = {work} if stopper is None else {work, stopper}
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=max(budget, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            run.report.silenced = True
            work.cancel()
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
        if work not in done:
            run.report.silenced = True
            work.cancel()
            await asyncio.wait({work}, timeout=self._cancel_grace)
            if not work.done():
                log.warning("query %s: work did not stop within the grace period", run.query_id)
            if stopper is not None and stopper in done:
                return Ending.canceled()
            return Ending.timed_out_in_execution()
        failure = work.exception()
        if failure is None:
            return Ending.done(work.result().messages)
        if isinstance(failure, ApprovalRequired):
            return failure
        if isinstance(failure, TransientResolutionError) and raise_transient:
            await run.report.event(
                "QueryExecutionError",
                f"Query {run.request.name} failed transiently: {failure}",
                {"error": str(failure), "transient": "true"},
                event_type="Warning",
            )
            raise failure
        if isinstance(failure, ResolutionError):
            return Ending.error(str(failure))
        log.error("query %s: unexpected failure", run.query_id, exc_info=failure)
        return Ending.error(f"internal error: {type(failure).__name__}: {failure}")

    def _facts(self, execution: _Execution, elapsed: timedelta) -> RunFacts:
        """What the run measured, for the ending; what it never learned comes from the spec,
        exactly as for an ending decided before any run (:meth:`RunFacts.before_start`)."""
        run, conversation = execution.run, execution.conversation
        request = run.request
        now = self._clock.now()
        conditions = memory_conditions(
            used=conversation.store is not None,
            unavailable=conversation.unavailable,
            degraded=conversation.degraded,
            now=now,
            generation=request.generation,
        )
        skipped = skipped_evaluation(request.spec)
        if skipped is not None:
            conditions.append(skipped_evaluation_condition(skipped, now, request.generation))
        unstarted = RunFacts.before_start(request.spec)
        return RunFacts(
            target=execution.target.target if execution.target else unstarted.target,
            usage=run.usage,
            elapsed=elapsed,
            conversation_id=conversation.conversation_id or unstarted.conversation_id,
            a2a=run.a2a,
            conditions=tuple(conditions),
            input=execution.user_input,
        )
