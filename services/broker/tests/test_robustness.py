"""No client mistake is a 5xx: malformed ids, headers, encodings, numbers and bodies are 4xx that
name what was wrong (Ark's envelope, OpenAI's error object under ``/openai/v1``); a NATS outage
is a 503 with ``Retry-After``; OpenAI's clients get OpenAI's stream and error semantics.

Issue 11 measured each of these as a 500 or a hung stream before.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any
from urllib.parse import urlsplit

import msgspec
import openai
import pytest

from ark_mesh.broker import SSEConfig
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedError, Usage

TARGET = {"type": "agent", "name": "helper"}
BAD_IDS = ["a b", "*", ">", "a..b", "é", "a%2Eb", "x" * 300, "a\tb"]


def client(world: Any, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{world.url}/openai/v1", api_key="token-of-team-a", max_retries=max_retries
    )


async def _raw(world: Any, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request over a plain socket: for bytes no HTTP client library would send."""
    address = urlsplit(world.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(request)
        await writer.drain()
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        writer.close()
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_an_id_that_cannot_be_a_key_is_not_found(running: Any, bad_id: str) -> None:
    path = f"/v1/queries/{bad_id.replace('%', '%25').replace(' ', '%20')}"
    for method, suffix in (
        ("GET", ""),
        ("GET", "/events"),
        ("GET", "/stream"),
        ("POST", "/cancel"),
    ):
        async with running.http.request(
            method, f"{running.url}{path}{suffix}", headers=running.auth()
        ) as response:
            assert response.status == 404, (suffix, await response.text())
            error = (await response.json())["error"]
        assert (error["code"], error["field"]) == ("NOT_FOUND", "id")


async def test_header_bytes_that_are_not_utf8_are_never_a_500(running: Any) -> None:
    host = urlsplit(running.url).netloc.encode()
    token = b"Authorization: Bearer token-of-team-a\r\n"
    body = msgspec.json.encode({"input": "hi", "target": TARGET})

    def request(head: bytes, extra: bytes = b"") -> bytes:
        return head + b"Host: %s\r\nConnection: close\r\n" % host + extra + b"\r\n"

    # A token that is not UTF-8 is just an unknown token.
    status, _, answer = await _raw(
        running,
        request(b"GET /v1/queries HTTP/1.1\r\n", b"Authorization: Bearer caf\xe9\xff\r\n"),
    )
    assert status == 401
    assert msgspec.json.decode(answer)["error"]["field"] == "Authorization"
    # An Idempotency-Key that is not UTF-8 is a key like any other.
    status, _, answer = await _raw(
        running,
        request(
            b"POST /v1/queries HTTP/1.1\r\n",
            token + b"Idempotency-Key: caf\xe9\r\nContent-Length: %d\r\n" % len(body),
        )
        + body,
    )
    assert status == 202, answer
    # A Last-Event-ID that is not UTF-8 is refused, the message quoting it escaped.
    query_id = msgspec.json.decode(answer)["id"]
    status, _, answer = await _raw(
        running,
        request(
            b"GET /v1/queries/%s/stream HTTP/1.1\r\n" % query_id.encode(),
            token + b"Last-Event-ID: \xff1\r\n",
        ),
    )
    assert status == 400
    error = msgspec.json.decode(answer)["error"]
    assert error["field"] == "Last-Event-ID"
    assert "udcff" in error["message"]


@pytest.mark.parametrize(
    ("path", "payload", "status"),
    [
        (
            "/v1/queries",
            b'{"input": "caf\xe9", "target": {"type": "agent", "name": "helper"}}',
            400,
        ),
        (
            "/openai/v1/chat/completions",
            b'{"model": "agent/helper", "messages": [{"x": "\xff"}]}',
            400,
        ),
        # Typed all the way down: refused at the first level that has the wrong type.
        ("/v1/queries", b"[" * 100_000 + b"]" * 100_000, 422),
        (
            "/openai/v1/chat/completions",
            b'{"model": "agent/helper", "messages": [{"role": "user", "content": "x", "n": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}]}",
            400,
        ),
    ],
    ids=["not-utf8", "not-utf8-openai", "deep", "deep-openai"],
)
async def test_a_body_that_does_not_decode_is_4xx_naming_the_body(
    running: Any, path: str, payload: bytes, status: int
) -> None:
    async with running.http.post(
        f"{running.url}{path}", data=payload, headers=running.auth()
    ) as response:
        assert response.status == status, await response.text()
        error = (await response.json())["error"]
    assert error.get("field", error.get("param")) == "body", error
    _, listed = await running.get("/v1/queries")
    assert listed["items"] == []


@pytest.mark.parametrize("path", ["/v1/queries", "/openai/v1/chat/completions"])
async def test_a_body_that_does_not_decompress_is_400_naming_the_encoding(
    running: Any, path: str
) -> None:
    for payload in (b"not gzip at all", b"\x1f\x8bxx"):
        async with running.http.post(
            f"{running.url}{path}",
            data=payload,
            headers={**running.auth(), "Content-Encoding": "gzip"},
        ) as response:
            assert response.status == 400
            error = (await response.json())["error"]
            # The server drops such a connection: it says so, so the client does not reuse it.
            assert response.headers["Connection"].lower() == "close"
        assert error.get("field", error.get("param")) == "Content-Encoding", error
    # A real gzip body is read as any other.
    async with running.http.post(
        f"{running.url}/v1/queries",
        data=gzip.compress(msgspec.json.encode({"input": "zipped", "target": TARGET})),
        headers={**running.auth(), "Content-Encoding": "gzip"},
    ) as response:
        assert response.status == 202


@pytest.mark.parametrize(
    "value", ["99999999999999999999999", str(2**63), "18446744073709551616", "-1", "1e3", "٣"]
)
async def test_a_resume_point_that_is_no_sequence_is_400_naming_it(
    running: Any, value: str
) -> None:
    query_id = await running.submit()
    stream = f"{running.url}/v1/queries/{query_id}/stream"
    async with running.http.get(
        stream, headers={**running.auth(), "Last-Event-ID": value}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "Last-Event-ID"
    async with running.http.get(
        stream, params={"after": value}, headers=running.auth()
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "after"


async def test_resuming_at_or_past_the_end_of_a_finished_stream_ends_at_once(running: Any) -> None:
    query_id = await running.submit()
    await running.wait_phase(query_id)
    events, _ = await running.sse(f"/v1/queries/{query_id}/stream")
    last = max(event.id for event in events if event.id is not None)
    for after in (last, last + 1_000, 2**63 - 1):
        rest, _ = await running.sse(f"/v1/queries/{query_id}/stream", last_event_id=after)
        assert [event.data for event in rest] == ["[DONE]"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/queries", {"input": "x", "target": TARGET, "timeout": "9999999999h"}, "timeout"),
        (
            "/openai/v1/chat/completions",
            {
                "model": "agent/helper",
                "messages": [{"role": "user", "content": "x"}],
                "metadata": {"timeout": "9" * 400 + "h"},
            },
            "metadata.timeout",
        ),
    ],
)
async def test_a_duration_longer_than_go_allows_is_422_naming_it(
    running: Any, path: str, body: dict[str, Any], field: str
) -> None:
    async with running.http.post(f"{running.url}{path}", json=body, headers=running.auth()) as r:
        assert r.status == 422, await r.text()
        error = (await r.json())["error"]
    assert error.get("field", error.get("param")) == field
    assert "2562047h" in error["message"]


async def test_an_unknown_target_is_openais_model_not_found_and_runs_once(running: Any) -> None:
    # The SDK's default retries are on: a 5xx here would run the query three times.
    async with client(running, max_retries=2) as api:
        with pytest.raises(openai.NotFoundError) as raised:
            await api.chat.completions.create(
                model="agent/nobody", messages=[{"role": "user", "content": "hi"}]
            )
    body = raised.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"], body["param"]) == (
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert "agent 'nobody'" in body["message"]
    _, listed = await running.get("/v1/queries")
    assert len(listed["items"]) == 1


async def test_a_streamed_call_to_an_unknown_target_is_model_not_found_too(world: Any) -> None:
    # The failure arrives before the first heartbeat is due (generous here, so a slow machine
    # cannot turn this into a 200 stream): no byte of a stream has been sent yet.
    await world.start_reconciler()
    await world.start_broker(world.broker_config(streaming=SSEConfig(heartbeat_seconds=60.0)))
    async with client(world, max_retries=2) as api:
        with pytest.raises(openai.NotFoundError) as raised:
            await api.chat.completions.create(
                model="team/nobody", messages=[{"role": "user", "content": "hi"}], stream=True
            )
    body = raised.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"]) == ("model_not_found", "model")
    _, listed = await world.get("/v1/queries")
    assert len(listed["items"]) == 1


async def test_a_query_that_fails_is_arks_500_that_openai_clients_do_not_retry(
    running: Any,
) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="refuse me"),
            reply=Reply(error=ScriptedError(status=400, message="content policy")),
        )
    )
    async with client(running, max_retries=2) as api:
        with pytest.raises(openai.InternalServerError) as raised:
            await api.chat.completions.create(
                model="agent/helper", messages=[{"role": "user", "content": "refuse me"}]
            )
    assert raised.value.response.headers["x-should-retry"] == "false"
    body = raised.value.response.json()
    assert body["detail"]["phase"] == "error"
    assert "content policy" in body["detail"]["message"]
    assert body["error"]["message"] == body["detail"]["message"]
    _, listed = await running.get("/v1/queries")
    assert len(listed["items"]) == 1


def _usage_rule(running: Any) -> None:
    running.fake.add_rule(
        Rule(
            match=Match(user="count me"),
            reply=Reply(
                content="one two three four",
                usage=Usage(prompt_tokens=5, completion_tokens=4, total_tokens=9),
            ),
        )
    )


async def test_a_stream_without_include_usage_has_no_usage_chunk(running: Any) -> None:
    _usage_rule(running)
    async with client(running) as api:
        stream = await api.chat.completions.create(
            model="agent/helper", messages=[{"role": "user", "content": "count me"}], stream=True
        )
        # The loop from OpenAI's docs: every chunk has choices[0].
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "one two three four"
    # The model did report usage (the mesh asks for it): it is the client that did not.
    assert running.fake.requests_to("chat")[-1].body["stream_options"] == {"include_usage": True}


async def test_a_stream_with_include_usage_ends_with_one_usage_chunk(running: Any) -> None:
    _usage_rule(running)
    async with client(running) as api:
        stream = await api.chat.completions.create(
            model="agent/helper",
            messages=[{"role": "user", "content": "count me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    *content, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        5,
        4,
        9,
    )
    assert all(chunk.choices and chunk.usage is None for chunk in content)
    final = (content[-1].model_extra or {})["ark"]["completedQuery"]
    assert final["status"]["tokenUsage"]["totalTokens"] == 9


async def test_nats_unavailable_is_503_with_retry_after(running: Any) -> None:
    query_id = await running.submit()
    await running.wait_phase(query_id)
    running.nats.stop()
    try:
        async with running.http.get(
            f"{running.url}/v1/queries/{query_id}", headers=running.auth()
        ) as response:
            assert response.status == 503, await response.text()
            assert int(response.headers["Retry-After"]) > 0
            assert (await response.json())["error"]["code"] == "UNAVAILABLE"
    finally:
        running.nats.start()


async def test_a_query_whose_status_exceeds_one_nats_message_fails_at_once(running: Any) -> None:
    # The fake model echoes the input: the answer's status update is larger than NATS'
    # max_payload (1 MiB). It ends in error naming that, from its first delivery, and the
    # error's own messages (final chunk with the input, record) fit.
    async with running.http.post(
        f"{running.url}/v1/queries",
        json={"input": "x" * 400_000, "target": TARGET},
        headers=running.auth(),
    ) as response:
        assert response.status == 202, await response.text()
        query_id = (await response.json())["id"]
    final = await running.wait_phase(query_id, "done", "error", "canceled")
    assert final["status"]["phase"] == "error"
    [condition] = final["status"]["conditions"]
    assert "more than the server's max_payload" in condition["message"]
    assert len(running.fake.requests_to("chat")) == 1  # not redelivered
    async with running.http.get(
        f"{running.url}/v1/queries/{query_id}/stream", headers=running.auth()
    ) as response:
        lines = [line for line in (await response.text()).splitlines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert '"completedQuery"' in lines[-2]  # the ending's final chunk was delivered


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/queries", {"input": "x" * 600_000, "target": TARGET}),
        (
            "/openai/v1/chat/completions",
            {"model": "agent/helper", "messages": [{"role": "user", "content": "x" * 600_000}]},
        ),
    ],
)
async def test_a_query_larger_than_the_bus_carries_is_413_naming_the_input(
    running: Any, path: str, body: dict[str, Any]
) -> None:
    async with running.http.post(
        f"{running.url}{path}", json=body, headers=running.auth()
    ) as response:
        assert response.status == 413, await response.text()
        assert "Retry-After" not in response.headers  # retrying the same request cannot help
        error = (await response.json())["error"]
    assert error.get("field", error.get("param")) == "input", error
    assert "half of the NATS server's max_payload of 1048576 bytes" in error["message"]
    _, listed = await running.get("/v1/queries")
    assert listed["items"] == []
    assert running.fake.requests_to("chat") == []
