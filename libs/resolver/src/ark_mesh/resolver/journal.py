"""The run's step log while it runs: record each completed step, replay a recorded one.

A resolution is deterministic given what the model and the tools answered: the agent loop, the
team strategies and the selectors only branch on those answers. So a run is resumed — after an
approval decision, or on another replica after a crash — by running it again from the start
with its :class:`~ark_mesh.contracts.approvals.RunLog`: each model call and each tool call first
asks :class:`StepJournal` whether the log holds its result, and only the first step the log
does not hold is executed for real. Replayed steps stream nothing and report no operation
events (their chunks and events were delivered when they ran), but their token usage counts.

Each live step is appended and the whole log handed to the :class:`Journal` port *before* the
run goes on, so whatever the process does next, a completed model turn or tool call is never
repeated. A tool call with side effects is bracketed: the log is recorded with ``in_flight`` set
to its call id before it starts, so after a crash the one call whose effect is unknown is known,
and it is executed again only when the tool says it is idempotent.

Replay matches steps in order. A model step must come from the same speaker; a tool step must
carry the same call id. A call of a tool that runs other steps inside it (an agent or a team
used as a tool) is a container: it runs again and its inner steps replay. Any other mismatch
means the resources changed under the run: it stops with
:class:`~ark_mesh.resolver.errors.ReplayDivergedError` rather than guess.

:class:`ApprovalRequired` is how the agent loop stops at an approval-gated tool call. It is not
an error: it unwinds to the resolver, which reports phase ``input-required`` and returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ark_mesh.contracts.approvals import (
    ApprovalDecision,
    ApprovalRequest,
    Decision,
    ModelStep,
    RunLog,
    RunStep,
    ToolStep,
)
from ark_mesh.contracts.messages import QueryRequest
from ark_mesh.resolver.errors import ReplayDivergedError

__all__ = ["ApprovalRequired", "Journal", "StepJournal"]


class Journal(Protocol):
    """Where a run's step log is kept durably (JetStream KV, the approval's A2ATask, memory)."""

    async def record(self, log: RunLog) -> None: ...


class ApprovalRequired(Exception):  # noqa: N818 — a pause, not an error
    """The run reached tool calls a human must approve; carries the calls waiting."""

    def __init__(self, agent: str, calls: Sequence[dict[str, Any]], timeout: str, on_timeout: str):
        super().__init__(f"agent '{agent}' waits for approval of {len(calls)} tool call(s)")
        self.agent = agent
        self.calls = list(calls)
        self.timeout = timeout
        self.on_timeout = "proceed" if on_timeout == "proceed" else "reject"


class StepJournal:
    """One run's view of its log: the steps to replay, the steps recorded, the decisions."""

    def __init__(self, request: QueryRequest, log: RunLog | None, journal: Journal | None) -> None:
        self._request = request
        self._journal = journal
        usable = (
            log is not None
            and log.query_id == request.query_id
            and log.generation == request.generation
        )
        previous = log if usable and log is not None else None
        self._replay: list[RunStep] = list(previous.steps) if previous else []
        self._cursor = 0
        self.steps: list[RunStep] = []
        self.decisions: list[ApprovalDecision] = list(previous.decisions) if previous else []
        self.pending: ApprovalRequest | None = previous.pending if previous else None
        self.interrupted_call: str | None = previous.in_flight if previous else None
        self.conversation_id: str | None = previous.conversation_id if previous else None
        self.chunk_seq = previous.chunk_seq if previous else 0
        resume = request.resume
        self.new_decision: ApprovalDecision | None = None
        """The decision this run brings (``None`` when the log already had it: a redelivery)."""
        if (
            resume is not None
            and self.pending is not None
            and resume.task_id == self.pending.task_id
            and self.decision_for_task(resume) is None
        ):
            self.decisions.append(resume)
            self.new_decision = resume

    # ------------------------------------------------------------------ state

    @property
    def round(self) -> int:
        """How many approval decisions the run has had (the status update's ``round``)."""
        return len(self.decisions)

    @property
    def replaying(self) -> bool:
        return self._cursor < len(self._replay)

    def decision_for_task(self, decision: ApprovalDecision) -> ApprovalDecision | None:
        for known in self.decisions:
            if known.task_id == decision.task_id:
                return known
        return None

    def decision_for_call(self, call_id: str) -> Decision | None:
        """The decision on a gated tool call of the pending approval, if one was given."""
        pending = self.pending
        if pending is None or not any(c.get("id") == call_id for c in pending.tool_calls):
            return None
        for known in self.decisions:
            if known.task_id == pending.task_id:
                return known.decision
        return None

    def log(self, *, in_flight: str | None = None) -> RunLog:
        return RunLog(
            query_id=self._request.query_id,
            generation=self._request.generation,
            steps=list(self.steps),
            decisions=list(self.decisions),
            pending=self.pending,
            in_flight=in_flight,
            chunk_seq=self.chunk_seq,
            conversation_id=self.conversation_id,
        )

    async def _save(self, *, in_flight: str | None = None) -> None:
        if self._journal is not None:
            await self._journal.record(self.log(in_flight=in_flight))

    # ------------------------------------------------------------------ replay

    def _peek(self) -> RunStep | None:
        return self._replay[self._cursor] if self.replaying else None

    def recorded(self, call_id: str) -> bool:
        """Whether the next step to replay is this tool call's result."""
        step = self._peek()
        return isinstance(step, ToolStep) and step.call_id == call_id

    def replay_model(self, speaker: str) -> ModelStep | None:
        """The recorded answer of this model call, or ``None`` when it must be made live."""
        step = self._peek()
        if step is None:
            return None
        if not isinstance(step, ModelStep) or step.speaker != speaker:
            raise ReplayDivergedError(
                f"a model call by '{speaker}'", _describe(step), self._cursor + 1
            )
        self._cursor += 1
        self.steps.append(step)
        return step

    def replay_tool(self, call_id: str, name: str, *, container: bool) -> ToolStep | None:
        """The recorded result of this tool call, or ``None`` when it must run (live, or as a
        container whose inner steps replay)."""
        step = self._peek()
        if step is None:
            return None
        if isinstance(step, ToolStep) and step.call_id == call_id:
            self._cursor += 1
            self.steps.append(step)
            return step
        if container:
            return None
        raise ReplayDivergedError(
            f"a call of tool '{name}' ({call_id})", _describe(step), self._cursor + 1
        )

    # ------------------------------------------------------------------ recording

    async def model_done(self, speaker: str, message: dict[str, Any], usage: Any) -> None:
        self.steps.append(ModelStep(speaker=speaker, message=message, usage=usage))
        await self._save()

    async def tool_starting(self, call_id: str) -> None:
        """Record that a call with side effects is about to start (its effect is unknown
        until :meth:`tool_done`)."""
        await self._save(in_flight=call_id)

    async def tool_done(self, step: ToolStep) -> None:
        """Record a finished call. A container (agent or team used as a tool) re-run during
        replay finishes where its recorded result already is: that record is kept, not
        repeated."""
        if self.recorded(step.call_id):
            self._cursor += 1
            self.steps.append(self._replay[self._cursor - 1])
            return
        if self.interrupted_call == step.call_id:
            self.interrupted_call = None
        self.steps.append(step)
        if self.pending is not None and all(
            any(isinstance(s, ToolStep) and s.call_id == c.get("id") for s in self.steps)
            for c in self.pending.tool_calls
        ):
            self.pending = None
        await self._save()

    async def paused(self, request: ApprovalRequest) -> RunLog:
        """Record the pause; returns the log as stored."""
        self.pending = request
        await self._save()
        return self.log()


def _describe(step: RunStep) -> str:
    if isinstance(step, ModelStep):
        return f"a model call by '{step.speaker}'"
    return f"a call of tool '{step.name}' ({step.call_id})"
