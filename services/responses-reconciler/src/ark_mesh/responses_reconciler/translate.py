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
from ark_mesh.responses_reconciler.errors import InvalidRequestError

__all__ = ["Target", "as_query_request", "last_user_text", "parse_target", "timeout_of"]

TargetType = Literal["agent", "team", "model"]
_TYPES: tuple[TargetType, ...] = ("agent", "team", "model")


@dataclass(frozen=True)
class Target:
    type: TargetType
    name: str

    @property
    def label(self) -> str:
        return f"{self.type}/{self.name}"


def parse_target(raw: str) -> Target:
    """``agent/<name>``, ``team/<name>`` or ``model/<name>`` (the OpenAI ``model`` field of Ark)."""
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


def as_query_request(
    request: ResponsesRequest, target: Target, *, input_text: str | None = None
) -> QueryRequest:
    """The Query an agent or team target runs as. Only the last user message is its input: the
    resolver takes history from a Memory resource, not from the caller (see the README).
    A model target passes its own ``input_text`` (its messages go to the model whole)."""
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
        submitted_at=request.submitted_at,
        deadline=request.deadline,
    )
