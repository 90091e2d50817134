"""Invalid bodies get a 4xx in Ark's envelope naming the field; nothing is accepted."""

from __future__ import annotations

import pytest

TARGET = {"type": "agent", "name": "helper"}


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"target": TARGET}, 422, "input", "missing required field"),
        ({"input": "", "target": TARGET}, 422, "input", "length"),
        ({"input": "hi", "target": {"type": "robot", "name": "x"}}, 422, "target.type", "robot"),
        ({"input": "hi", "target": TARGET, "timeout": "soon"}, 422, "timeout", "soon"),
        (
            {"input": "hi", "target": TARGET, "conversationId": "c" * 129},
            422,
            "conversationId",
            "128",
        ),
        ({"input": "hi", "target": TARGET, "colour": "blue"}, 422, "colour", "unknown field"),
        ({"input": "hi"}, 422, "target", "target or selector"),
        ({"input": "hi", "target": TARGET, "name": "Not_A_Name"}, 422, "name", "DNS-1123"),
        (
            {"input": "hi", "target": TARGET, "parameters": [{"value": "x"}]},
            422,
            "parameters[0].name",
            "missing",
        ),
        (b'{"input": "hi", ', 400, "body", "not valid JSON"),
        (b"", 422, "body", "empty"),
    ],
)
async def test_invalid_bodies_name_the_field(running, body, status, field, words) -> None:
    code, answer, _ = await running.post(body)
    assert code == status, answer
    error = answer["error"]
    assert error["code"] == "BAD_REQUEST"
    assert error["field"] == field, error
    assert words.lower() in error["message"].lower(), error
    _, listed = await running.get("/v1/queries")
    assert listed["items"] == []


async def test_bad_last_event_id_is_refused(running) -> None:
    query_id = await running.submit()
    async with running.http.get(
        f"{running.url}/v1/queries/{query_id}/stream",
        headers={**running.auth(), "Last-Event-ID": "yesterday"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "Last-Event-ID"
