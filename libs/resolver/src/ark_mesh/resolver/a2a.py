"""A2A client: JSON-RPC ``message/send`` to an A2A agent (protocol 0.3), blocking, and the
agent card an A2AServer's discovery reads (:func:`fetch_agent_card`).

The reply is either a Message (its text parts are the answer) or a Task (its artifacts, else its
status message, are the answer; ``failed``/``rejected``/``canceled`` tasks are errors). The
``contextId`` and task id come back for ``status.response.a2a`` — status only, never an
annotation, so resolving never rewrites the Query's metadata. A Message names a task too when the
agent answers within one (A2A 0.3 ``Message.taskId``).

An agent ark-mesh runs itself answers in the same terms (:func:`own_task`): Ark executes such an
agent as an A2A agent of its own, whose task is the query, so its answer carries the Query's UID
as ``taskId`` and the caller's ``contextId`` (the ``a2a-context-id`` annotation), and a client
reads ``response.a2a`` the same way whichever engine answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ark_mesh.contracts import A2AMetadata
from ark_mesh.resolver.errors import A2AError, A2AUnavailableError

__all__ = [
    "AGENT_CARD_PATHS",
    "A2AReply",
    "fetch_agent_card",
    "own_task",
    "parse_result",
    "send_message",
]

_FAILED_STATES = frozenset({"failed", "rejected", "canceled"})

AGENT_CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
"""Where an A2A server publishes its card: the current path first, then the pre-0.3 one."""


@dataclass(frozen=True)
class A2AReply:
    text: str
    context_id: str | None
    task_id: str | None = None
    state: str | None = None

    def metadata(self) -> A2AMetadata | None:
        """The ids for ``status.response.a2a``; ``None`` when the agent gave neither."""
        if not (self.context_id or self.task_id):
            return None
        return A2AMetadata(context_id=self.context_id, task_id=self.task_id)


def own_task(query_id: str, context_id: str | None) -> A2AMetadata:
    """The A2A ids of an answer from an agent ark-mesh runs itself (not over A2A).

    Ark runs such an agent as its own A2A agent, with the query as the task: the answer is stamped
    with the Query's UID as ``taskId`` and with the ``contextId`` the caller gave, if any. Ark's
    ``agent-tool-delegation-native`` test reads ``response.a2a.taskId`` after a native run. No
    ``A2ATask`` exists for this id (Ark creates one only for a Task an engine returns).
    """
    return A2AMetadata(context_id=context_id or None, task_id=query_id)


def _id(value: Any) -> str | None:
    """An id of the reply: a non-empty string, else absent."""
    return value if isinstance(value, str) and value else None


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(
        part.get("text", "")
        for part in parts
        if isinstance(part, Mapping) and part.get("kind", "text") == "text"
    )


def parse_result(result: Any, agent: str) -> A2AReply:
    """The answer inside a ``message/send`` result (a Message or a Task)."""
    if not isinstance(result, Mapping):
        raise A2AError(f"A2A agent '{agent}' returned no result")
    if result.get("kind") == "task":
        status = result.get("status") or {}
        state = status.get("state")
        status_text = _text((status.get("message") or {}).get("parts"))
        if state in _FAILED_STATES:
            raise A2AError(
                f"A2A agent '{agent}' task {result.get('id')} {state}: {status_text or 'no detail'}"
            )
        artifacts = result.get("artifacts") or []
        text = "\n".join(
            t for t in (_text(a.get("parts")) for a in artifacts if isinstance(a, Mapping)) if t
        )
        return A2AReply(
            text=text or status_text,
            context_id=_id(result.get("contextId")),
            task_id=_id(result.get("id")),
            state=state,
        )
    return A2AReply(
        text=_text(result.get("parts")),
        context_id=_id(result.get("contextId")),
        task_id=_id(result.get("taskId")),
    )


async def send_message(
    session: aiohttp.ClientSession,
    url: str,
    text: str,
    *,
    agent: str,
    context_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    wait_seconds: float = 300.0,
) -> A2AReply:
    """Send ``text`` to the A2A agent at ``url`` and wait for its answer."""
    message: dict[str, Any] = {
        "kind": "message",
        "role": "user",
        "messageId": str(uuid.uuid4()),
        "parts": [{"kind": "text", "text": text}],
    }
    if context_id:
        message["contextId"] = context_id
    body = {
        "jsonrpc": "2.0",
        "id": str(uuid.uuid4()),
        "method": "message/send",
        "params": {"message": message, "configuration": {"blocking": True}},
    }
    try:
        async with session.post(
            url,
            json=body,
            headers=dict(headers or {}),
            timeout=aiohttp.ClientTimeout(total=wait_seconds),
        ) as response:
            if response.status >= 500:
                raise A2AUnavailableError(
                    f"A2A agent '{agent}' at {url} answered HTTP {response.status}"
                )
            if response.status >= 400:
                raise A2AError(
                    f"A2A agent '{agent}' at {url} refused the request: HTTP {response.status}"
                )
            try:
                answer = await response.json(content_type=None)
            except ValueError as exc:
                raise A2AError(f"A2A agent '{agent}' at {url} answered with invalid JSON") from exc
    except TimeoutError as exc:
        raise A2AUnavailableError(
            f"A2A agent '{agent}' at {url} timed out after {wait_seconds:g}s"
        ) from exc
    except aiohttp.ClientError as exc:
        raise A2AUnavailableError(f"A2A agent '{agent}' at {url} unreachable: {exc}") from exc
    if not isinstance(answer, Mapping):
        raise A2AError(f"A2A agent '{agent}' answered with a non-object")
    if answer.get("error") is not None:
        error = answer["error"]
        detail = error.get("message") if isinstance(error, Mapping) else str(error)
        raise A2AError(f"A2A agent '{agent}' returned an error: {detail}")
    return parse_result(answer.get("result"), agent)


async def fetch_agent_card(
    session: aiohttp.ClientSession,
    address: str,
    *,
    headers: Mapping[str, str] | None = None,
    wait_seconds: float = 30.0,
) -> dict[str, Any]:
    """The agent card of the A2A server at ``address`` (a base URL).

    Raises :class:`A2AUnavailableError` when the server cannot be reached or fails (5xx), and
    :class:`A2AError` when it answers without a usable card (no card at either path, a body that
    is not a JSON object, a card without a name).
    """
    base = address.rstrip("/")
    status = 0
    for path in AGENT_CARD_PATHS:
        url = base + path
        try:
            async with session.get(
                url, headers=dict(headers or {}), timeout=aiohttp.ClientTimeout(total=wait_seconds)
            ) as response:
                status = response.status
                if status == 404:
                    continue
                if status >= 500:
                    raise A2AUnavailableError(f"agent card at {url}: HTTP {status}")
                if status >= 400:
                    raise A2AError(f"agent card at {url}: HTTP {status}")
                try:
                    card = await response.json(content_type=None)
                except ValueError as exc:
                    raise A2AError(f"agent card at {url} is not valid JSON") from exc
        except TimeoutError as exc:
            raise A2AUnavailableError(
                f"agent card at {url}: timed out after {wait_seconds:g}s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise A2AUnavailableError(f"agent card at {url}: unreachable: {exc}") from exc
        if not isinstance(card, dict) or not isinstance(card.get("name"), str) or not card["name"]:
            raise A2AError(f"agent card at {url} has no name")
        return card
    raise A2AError(f"no agent card at {base} ({' or '.join(AGENT_CARD_PATHS)}: HTTP {status})")
