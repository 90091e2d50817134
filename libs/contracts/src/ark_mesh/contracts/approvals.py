"""Durable runs: human approval of tool calls and the step log a run is resumed from.

Ark's round trip (reference §3.8): an agent tool with ``approval.required`` stops the query at
phase ``input-required``; an ``A2ATask a2a-task-<taskId>`` (no ``a2aServerRef``) carries the
pending tool calls in ``status.protocolMetadata``; a human writes ``{"decision": "approved"}`` or
``{"decision": "rejected"}`` into its ``spec.input`` (or the approval timeout applies
``onTimeout``); the controller resumes the query, which executes the approved calls or answers the
rejected ones with an error result, and the agent loop goes on.

ark-mesh resumes a run by **replaying its step log** (:class:`RunLog`): every completed model
turn and tool call of the run is recorded as a :class:`RunStep`; a resumed run — after an
approval, or on another replica after a crash — re-enters the same code path and takes each
recorded effect from the log instead of calling the model or the tool again, until it reaches
the first step the log does not hold. Approval decisions are part of the log
(:attr:`RunLog.decisions`), so "resume after approval" and "resume after a crash" are one
mechanism. The log of a query is keyed by its id and generation; a run never replays a log of
another generation.

Which denials the agent can react to (Ark's ``IsResumableDenial``), the cascade cap and the
messages are rules of the contract, as pure functions here, so the controller, the services and
a custom consumer apply the same ones.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

import msgspec

from ark_mesh.contracts.resources import TokenUsage

__all__ = [
    "APPROVAL_CASCADE_ANNOTATION",
    "APPROVAL_TASK_PREFIX",
    "MAX_APPROVAL_CASCADES",
    "REJECTED_BY_TIMEOUT_RESULT",
    "REJECTED_BY_USER_RESULT",
    "ApprovalDecision",
    "ApprovalReason",
    "ApprovalRequest",
    "Decision",
    "ModelStep",
    "RunLog",
    "RunStep",
    "ToolApprovalLine",
    "ToolStep",
    "approval_task_name",
    "cascade_limit_message",
    "decision_result",
    "is_resumable_denial",
]

APPROVAL_TASK_PREFIX: Final = "a2a-task-"
"""An approval's A2ATask is named ``a2a-task-<taskId>`` (Ark's rule)."""

APPROVAL_CASCADE_ANNOTATION: Final = "ark.mckinsey.com/approval-cascade-count"
"""On the Query: how many denials in a row the agent was resumed after (Ark's annotation)."""

MAX_APPROVAL_CASCADES: Final = 3
"""After this many resumed denials in a row, the next denial ends the query in ``error``."""

REJECTED_BY_USER_RESULT: Final = "Tool execution rejected by user"
REJECTED_BY_TIMEOUT_RESULT: Final = "Tool execution rejected: approval timeout exceeded"

Decision = Literal["approved", "rejected", "timeout-rejected", "timeout-proceeded", "failed"]
"""How an approval ended. ``failed`` is not a denial the agent can react to (an invalid
decision, the task deleted): the query ends in ``error`` with the task's message."""


class ApprovalReason:
    """The ``Completed`` condition reasons Ark writes on an approval's A2ATask."""

    GRANTED: Final = "ApprovalGranted"
    REJECTED: Final = "ApprovalRejected"
    TIMEOUT_PROCEEDED: Final = "ApprovalTimeoutProceeded"
    TIMEOUT_REJECTED: Final = "ApprovalTimeoutRejected"
    INVALID: Final = "InvalidApprovalDecision"
    NOT_STARTED: Final = "TaskNotStarted"


class _Camel(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    pass


class ApprovalRequest(_Camel, frozen=True, kw_only=True):
    """A run paused for a human: which tool calls wait, for whom, and for how long.

    ``tool_calls`` are the model's own tool calls (OpenAI shape: ``id``, ``type``,
    ``function.name``, ``function.arguments``), all approved or rejected together, as in Ark.
    ``timeout`` is the agent tool's ``approval.timeout`` (a Go duration, empty for none) and
    ``on_timeout`` its ``approval.onTimeout`` (``reject`` when unset). ``round`` counts the
    decisions the run already had: the first pause is round 0.
    """

    task_id: str
    agent: str
    agent_namespace: str
    tool_calls: list[dict[str, Any]]
    timeout: str = ""
    on_timeout: Literal["reject", "proceed"] = "reject"
    context_id: str | None = None
    requested_at: str
    round: int = 0

    @property
    def task_name(self) -> str:
        return approval_task_name(self.task_id)


class ApprovalDecision(_Camel, frozen=True, kw_only=True):
    """A human's (or the timeout's) answer to one :class:`ApprovalRequest`."""

    task_id: str
    decision: Decision
    message: str = ""
    decided_by: str | None = None
    decided_at: str

    @property
    def resumable_denial(self) -> bool:
        return is_resumable_denial(self.decision)


class ModelStep(_Camel, frozen=True, kw_only=True, tag="model", tag_field="kind"):
    """One completed model turn: the assistant message as the agent loop kept it, and its usage.

    ``speaker`` is who called the model (agent, model or selector name); replay checks it so a
    log that no longer matches the resources is never applied to the wrong call.
    """

    speaker: str
    message: dict[str, Any]
    usage: TokenUsage = msgspec.field(default_factory=TokenUsage)


class ToolStep(_Camel, frozen=True, kw_only=True, tag="tool", tag_field="kind"):
    """One completed tool call (or the rejection that stood in for it)."""

    call_id: str
    name: str
    text: str
    error: str | None = None
    signal: Literal["terminate", "selection"] | None = None
    """A built-in tool's control signal (``terminate`` ends a team, ``selection`` names the
    next speaker); ``text`` then holds its value."""


RunStep = ModelStep | ToolStep


class RunLog(_Camel, frozen=True, kw_only=True):
    """The durable record of one run of one query generation.

    ``steps`` are in the order the run produced them; ``decisions`` the approval answers it was
    given; ``pending`` the approval it is waiting for, if any; ``chunk_seq`` the last chunk number
    it streamed, so a resumed run continues the stream without a gap or a repeat.
    ``in_flight`` names a tool call that had started but not finished when the log was written:
    after a crash it is the one call whose effect is unknown.
    """

    SCHEMA: ClassVar[str] = "ark.run-log.v1"

    query_id: str
    generation: int = 1
    steps: list[RunStep] = msgspec.field(default_factory=list)
    decisions: list[ApprovalDecision] = msgspec.field(default_factory=list)
    pending: ApprovalRequest | None = None
    in_flight: str | None = None
    chunk_seq: int = 0
    conversation_id: str | None = None
    """The memory conversation the run opened, so a resumed run writes to the same one."""

    @property
    def round(self) -> int:
        return len(self.decisions)

    def decision_for(self, task_id: str) -> ApprovalDecision | None:
        for decision in self.decisions:
            if decision.task_id == task_id:
                return decision
        return None


class ToolApprovalLine(_Camel, frozen=True, kw_only=True):
    """Ark's ``tool_approval_request`` / ``tool_approval_response`` stream line.

    It travels on the chunk stream inside a chunk's ``ark.toolApproval`` (the chunk has no
    choices); renderers that speak Ark's stream (the broker's SSE, the CLI) print this object
    in place of the chunk, as Ark's executor writes it.
    """

    type: Literal["tool_approval_request", "tool_approval_response"]
    task_id: str
    tool_calls: list[dict[str, Any]] | None = None
    timeout: str | None = None
    on_timeout: str | None = None
    agent_name: str | None = None
    action: str | None = None
    timestamp: str | None = None


def approval_task_name(task_id: str) -> str:
    return f"{APPROVAL_TASK_PREFIX}{task_id}"


def is_resumable_denial(decision: Decision) -> bool:
    """An explicit reject or a timeout-reject: the agent is resumed to answer it (Ark)."""
    return decision in ("rejected", "timeout-rejected")


def decision_result(decision: Decision) -> str | None:
    """The tool result that stands in for a denied call; ``None`` when the call is executed."""
    if decision == "rejected":
        return REJECTED_BY_USER_RESULT
    if decision == "timeout-rejected":
        return REJECTED_BY_TIMEOUT_RESULT
    return None


def cascade_limit_message(limit: int = MAX_APPROVAL_CASCADES) -> str:
    """The ``error`` content when the agent keeps asking for a denied tool (Ark's words)."""
    return (
        f"Approval cascade limit reached ({limit}). "
        "The agent kept retrying a denied tool; aborting."
    )
