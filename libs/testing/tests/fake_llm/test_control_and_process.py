"""Scripting over HTTP, script files, and the fake model server as a subprocess."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from ark_mesh.testing.fake_llm import (
    FakeModelProcess,
    FakeModelServer,
    ScriptError,
    load_script,
    parse_rules,
)

SCRIPT = """
models: [fake-model, gpt-4o]
rules:
  - name: weather
    match: {user: weather}
    replies:
      - tool_calls: [{name: get_weather, arguments: {city: Paris}}]
      - content: "It is sunny in Paris"
"""


async def test_control_endpoints_add_rules_list_requests_and_reset(
    fake_llm: FakeModelServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        added = await http.post(
            f"{fake_llm.url}/_fake/rules",
            json={"rules": [{"match": {"user": "ping"}, "reply": {"content": "pong"}}]},
        )
        assert added.status == 201
        async with AsyncOpenAI(base_url=fake_llm.base_url, api_key="k") as client:
            completion = await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "ping"}]
            )
        assert completion.choices[0].message.content == "pong"
        listed = await (await http.get(f"{fake_llm.url}/_fake/requests")).json()
        [recorded] = listed["requests"]
        assert recorded["body"]["messages"] == [{"role": "user", "content": "ping"}]
        assert recorded["outcome"] == "completed"
        assert recorded["headers"]["Authorization"] == "Bearer k"
        assert (await http.post(f"{fake_llm.url}/_fake/reset")).status == 200
        assert (await (await http.get(f"{fake_llm.url}/_fake/requests")).json())["requests"] == []
        assert (await (await http.get(f"{fake_llm.url}/_fake/rules")).json())["rules"] == []


async def test_invalid_rule_is_refused_naming_the_field(fake_llm: FakeModelServer) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{fake_llm.url}/_fake/rules",
            json=[{"reply": {"usage": {"prompt_tokens": "many"}}}],
        )
        assert response.status == 400
        assert "prompt_tokens" in (await response.json())["error"]["message"]


def test_parse_rules_rejects_unknown_fields_and_empty_rules() -> None:
    with pytest.raises(ScriptError, match="colour"):
        parse_rules({"reply": {"content": "x", "colour": "red"}})
    with pytest.raises(ScriptError, match="reply or replies"):
        parse_rules({"match": {"user": "x"}})
    with pytest.raises(ScriptError, match="user_regex"):
        parse_rules({"match": {"user_regex": "("}, "reply": {"content": "x"}})


def test_load_script_reads_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCRIPT)
    script = load_script(tmp_path / "s.yaml")
    assert script.models == ["fake-model", "gpt-4o"]
    assert script.rules[0].name == "weather"
    (tmp_path / "s.json").write_text('[{"reply": {"content": "j"}}]')
    assert load_script(tmp_path / "s.json").rules[0].sequence()[0].content == "j"
    (tmp_path / "bad.yaml").write_text("rules: [{replies: [{delay: -1}]}]")
    with pytest.raises(ScriptError, match="delay"):
        load_script(tmp_path / "bad.yaml")


async def test_reset_rewinds_script_rules_but_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCRIPT)
    async with (
        FakeModelServer(load_script(tmp_path / "s.yaml")) as fake,
        AsyncOpenAI(base_url=fake.base_url, api_key="k") as client,
    ):

        async def turn() -> str | None:
            completion = await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "weather?"}]
            )
            message = completion.choices[0].message
            return message.content or (message.tool_calls or [])[0].function.name  # type: ignore[union-attr]

        assert [await turn(), await turn()] == ["get_weather", "It is sunny in Paris"]
        fake.reset()
        assert await turn() == "get_weather"


async def test_subprocess_serves_a_script_file_and_is_scripted_over_http(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCRIPT)
    async with FakeModelProcess(script=tmp_path / "s.yaml") as process:
        await process.control.add_rule({"match": {"user": "extra"}, "reply": {"content": "added"}})
        async with AsyncOpenAI(base_url=process.base_url, api_key="k") as client:
            first = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "weather today"}]
            )
            extra = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "extra"}]
            )
            models = [m.id async for m in client.models.list()]
        assert first.choices[0].message.tool_calls is not None
        assert extra.choices[0].message.content == "added"
        assert models == ["fake-model", "gpt-4o"]
        recorded = await process.control.requests()
        assert [r.body["model"] for r in recorded if r.endpoint == "chat"] == ["gpt-4o", "gpt-4o"]
        async with asyncio.timeout(10):
            await process.control.wait_until(lambda rs: len(rs) == 2)
        await process.control.reset()
        assert await process.control.requests() == []


async def test_fake_llm_process_fixture(fake_llm_process: FakeModelProcess) -> None:
    async with AsyncOpenAI(base_url=fake_llm_process.base_url, api_key="k") as client:
        completion = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content == "Echo: hi"


async def test_subprocess_with_a_broken_script_exits_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rules: [{reply: {content: 1}}]")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ark_mesh.testing.fake_llm",
        "--port",
        "0",
        "--script",
        str(tmp_path / "bad.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"content" in stderr


def test_the_readme_script_example_is_a_valid_script(tmp_path: Path) -> None:
    import ark_mesh.testing.fake_llm as package

    readme = Path(package.__file__).with_name("README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.yaml").write_text(example)
    script = load_script(tmp_path / "example.yaml")
    assert script.rules[0].name == "weather"
    assert len(script.rules) == 6
    mock_llm_like = script.rules[-1]
    assert mock_llm_like.match.stream is True
    assert mock_llm_like.reply is not None
    assert mock_llm_like.reply.stream_usage is False
