"""From a :class:`~ark_mesh.contracts.ResponsesRequest` to what the resolver understands.

Pure functions, no I/O: the target string, the last user message, and the
:class:`~ark_mesh.contracts.QueryRequest` an agent or team target is resolved as. The query's id
is the request id, so the resolver's chunks carry ``ark.query = <request_id>`` and land on the
request's own subjects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ark_mesh.contracts import (
    DurationError,
    Parameter,
    QueryRequest,
    QuerySpec,
    QueryTarget,
    ResponsesRequest,
    parse_duration,
)
from ark_mesh.contracts.ark import STREAMING_ANNOTATION
from ark_mesh.responses_reconciler.errors import InvalidRequestError

__all__ = ["Target", "as_query_request", "last_user_text", "parse_target", "timeout_of"]

TargetType = Literal["agent", "team", "model", "tool"]
_TYPES: tuple[TargetType, ...] = ("agent", "team", "model", "tool")


@dataclass(frozen=True)
class Target:
    type: TargetType
    name: str

    @property
    def label(self) -> str:
        return f"{self.type}/{self.name}"


def parse_target(raw: str) -> Target:
    """``agent/<name>``, ``team/<name>``, ``model/<name>`` or ``tool/<name>`` (the OpenAI
    ``model`` field of Ark). A tool target runs as a query: the last user message is its input
    (a JSON object of arguments, else ``{"input": text}``)."""
    kind, _, name = raw.partition("/")
    if not name or "/" in name or kind not in _TYPES:
        raise InvalidRequestError(
            f"target {raw!r} is not '<type>/<name>' with type one of {', '.join(_TYPES)}"
        )
    return Target(kind, name)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (string content, or the text parts of a list)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        if isinstance(content, str) and content.strip():
            return content
        break
    raise InvalidRequestError("messages: the last user message is missing or has no text")


def timeout_of(request: ResponsesRequest, default: timedelta) -> timedelta:
    if not request.timeout:
        return default
    try:
        return parse_duration(request.timeout)
    except DurationError as exc:
        raise InvalidRequestError(f"timeout: {exc}") from exc


def earlier_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation before the last user message: the history an agent or team runs with.

    System messages are the caller's, not the agent's: the agent's own prompt comes first and
    the caller's system messages are dropped rather than stacked on top of it.
    """
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return [m for m in messages[:index] if m.get("role") != "system"]
    return []


def as_query_request(
    request: ResponsesRequest, target: Target, *, input_text: str | None = None
) -> QueryRequest:
    """The Query an agent, team or tool target runs as: the last user message is its input, and
    :func:`earlier_messages` its history. A model target passes its own ``input_text`` (its
    messages go to the model whole). A streaming request is annotated the way ark-api annotates
    a query whose client asks to stream, so the model calls stream too."""
    parameters = [
        Parameter(name=name, value=str(value)) for name, value in (request.parameters or {}).items()
    ]
    return QueryRequest(
        query_id=request.request_id,
        name=request.request_id,
        namespace=request.namespace,
        tenant=request.tenant,
        origin="broker",
        spec=QuerySpec(
            input=last_user_text(request.messages) if input_text is None else input_text,
            target=QueryTarget(type=target.type, name=target.name),
            parameters=parameters or None,
            session_id=request.session_id,
            conversation_id=request.conversation_id,
            timeout=request.timeout,
        ),
        annotations={STREAMING_ANNOTATION: "true"} if request.stream else None,
        submitted_at=request.submitted_at,
        deadline=request.deadline,
    )
