"""Request → resolver input: targets, the last user message, the Query an agent runs as."""

from __future__ import annotations

import pytest

from ark_mesh.contracts import ResponsesRequest
from ark_mesh.responses_reconciler import (
    InvalidRequestError,
    Target,
    as_query_request,
    last_user_text,
    parse_target,
)


def test_targets_are_type_slash_name() -> None:
    assert parse_target("agent/helper") == Target("agent", "helper")
    assert parse_target("model/gpt-4o").label == "model/gpt-4o"
    assert parse_target("tool/lookup") == Target("tool", "lookup")
    for bad in ("helper", "prompt/x", "agent/", "agent/a/b"):
        with pytest.raises(InvalidRequestError, match=repr(bad)):
            parse_target(bad)


def test_the_last_user_message_is_the_input() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    assert last_user_text(messages) == "second"
    with pytest.raises(InvalidRequestError, match="last user message"):
        last_user_text([{"role": "system", "content": "only a prompt"}])


def test_an_agent_request_becomes_a_query_on_the_request_id() -> None:
    request = ResponsesRequest(
        request_id="r-1",
        tenant="t",
        namespace="ns",
        target="agent/helper",
        messages=[{"role": "user", "content": "hi"}],
        parameters={"city": "Paris"},
        session_id="s",
        conversation_id="c",
        timeout="30s",
        submitted_at="2026-01-01T00:00:00Z",
    )
    query = as_query_request(request, parse_target(request.target))
    assert query.query_id == "r-1"
    assert query.spec.input == "hi"
    assert query.spec.target is not None
    assert (query.spec.target.type, query.spec.target.name) == ("agent", "helper")
    assert [(p.name, p.value) for p in query.spec.parameters or []] == [("city", "Paris")]
    assert (query.spec.session_id, query.spec.conversation_id) == ("s", "c")
    assert query.spec.timeout == "30s"
