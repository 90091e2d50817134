"""``ark-mesh`` against a running ``ark-mesh dev``: every command a real subprocess.

One ``ark-mesh dev`` serves the module (see ``conftest.dev``); each test talks to it the way a
user would after ``make run``: no URL given, the commands find the mesh through the state file.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import nats
import pytest

from ark_mesh.devmesh import PRESETS

from .conftest import ARK_MESH, Dev, cli, environment

pytestmark = pytest.mark.slow


def _state(dev: Dev) -> dict[str, object]:
    state: dict[str, object] = json.loads((dev.home / "dev.json").read_text())
    return state


def test_dev_prints_one_line_per_part_as_it_becomes_ready_and_names_its_run_folder(
    dev: Dev,
) -> None:
    ready = [line.split()[1] for line in dev.lines if line.startswith("  ready  ")]
    parts = ["nats-server", "kubernetes-api", "fake-model", *PRESETS["scale-flexible"]["services"]]
    assert sorted(ready) == sorted(parts), dev.lines
    first = dev.lines[0]
    assert "configs and logs in " in first, first
    folder = Path(first.split("configs and logs in ", 1)[1])
    assert folder.parent == dev.home / "runs"
    for service in PRESETS["scale-flexible"]["services"]:
        assert (folder / f"{service}.log").is_file(), service
    state = _state(dev)
    assert state["pid"] == dev.process.pid
    assert state["workdir"] == str(folder)


def test_query_streams_the_answer_then_phase_usage_duration_and_exits_0_on_done(
    dev: Dev,
) -> None:
    result = cli(dev.home, "query", "--agent", "assistant", "hi")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Echo: hi" in out, out
    assert out.index("Echo: hi") < out.index("phase: done"), out
    assert "tokens: prompt 50, completion 100, total 150" in out, out
    assert "duration: " in out, out


def test_a_query_cr_streams_from_its_chunk_subject_and_exits_0_on_done(dev: Dev) -> None:
    result = cli(dev.home, "query", "--via", "kube", "--agent", "assistant", "as a CR")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.index("Echo: as a CR") < result.stdout.index("phase: done")


def test_a_query_that_ends_in_error_exits_1_and_says_why(dev: Dev) -> None:
    result = cli(dev.home, "query", "--agent", "nobody", "hi")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "phase: error" in result.stdout
    assert "agent 'nobody' which does not exist" in result.stdout


@pytest.mark.parametrize("via", ["broker", "kube"])
def test_a_query_that_times_out_exits_4(dev: Dev, via: str) -> None:
    """A 1ms spec.timeout has always passed before a resolver picks the query up."""
    result = cli(
        dev.home, "query", "--via", via, "--agent", "assistant", "--query-timeout", "1ms", "slow"
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "phase: error" in result.stdout
    assert "reason: TimedOutInQueue" in result.stdout


def test_get_and_list_show_a_query_and_an_unknown_one_exits_6(dev: Dev) -> None:
    sent = cli(dev.home, "query", "--agent", "assistant", "--name", "listed", "hello")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    listing = cli(dev.home, "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "  listed  " in line)
    query_id = row.split()[0]
    got = cli(dev.home, "get", query_id)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["status"]["phase"] == "done"
    unknown = cli(dev.home, "get", "no-such-query")
    assert unknown.returncode == 6
    assert "no-such-query" in unknown.stderr
    assert "404" in unknown.stderr


def test_cancel_of_a_finished_query_says_so(dev: Dev) -> None:
    sent = cli(dev.home, "query", "--via", "kube", "--agent", "assistant", "--name", "gone", "x")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    cancelled = cli(dev.home, "cancel", "--via", "kube", "gone")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "spec.cancel set" in cancelled.stdout
    missing = cli(dev.home, "cancel", "--via", "kube", "nothing-here")
    assert missing.returncode == 6
    assert "no Query 'nothing-here' in namespace default" in missing.stderr


def test_tail_prints_each_message_of_the_pattern_decoded(dev: Dev) -> None:
    tail = subprocess.Popen(
        [str(ARK_MESH), "tail", "ark.default.>", "--count", "6"],
        env=environment(dev.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stderr is not None
        assert tail.stderr.readline().startswith("tailing ark.default.>")
        sent = cli(dev.home, "query", "--agent", "assistant", "tail me")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        out, _ = tail.communicate(timeout=120)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 6, out
    for line in lines:
        subject, schema, body = line.split("  ", 2)
        assert subject.startswith("ark.default."), line
        assert json.loads(body)["schema"] == schema, line
    schemas = {line.split("  ")[1] for line in lines}
    assert "ark.query-request.v1" in schemas, out


def test_dlq_lists_a_dead_letter_with_its_reason(dev: Dev) -> None:
    nats_url = str(_state(dev)["nats_url"])

    async def publish_garbage() -> None:
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().publish(
                "ark.default.work.query", b'{"schema": "ark.query-request.v1", "bogus": 1}'
            )
        finally:
            await client.close()

    asyncio.run(publish_garbage())
    letters: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    while not letters and time.monotonic() < deadline:  # the worker dead-letters it soon
        result = cli(dev.home, "dlq", "--json")
        assert result.returncode == 0, result.stderr
        letters = [json.loads(line) for line in result.stdout.splitlines()]
        time.sleep(0.2)
    assert letters, "no dead letter appeared"
    assert letters[0]["subject"] == "ark.default.work.query"
    assert str(letters[0]["reason"]).startswith("undecodable"), letters[0]
    listed = cli(dev.home, "dlq")
    assert "reason: undecodable" in listed.stdout
    assert "by query-reconciler" in listed.stdout
