"""``ark-mesh dev --nats-cluster``: the mesh on a 3-node JetStream cluster, replicated R3."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest
import yaml

from .conftest import Dev, cli

pytestmark = pytest.mark.slow


async def _replicas(urls: list[str], streams: list[str]) -> dict[str, int]:
    client = await nats.connect(servers=urls)
    try:
        jsm = client.jsm()
        found: dict[str, int] = {}
        for stream in streams:
            info = await jsm.stream_info(stream)
            found[stream] = info.config.num_replicas or 1
        return found
    finally:
        await client.close()


def test_dev_on_a_cluster_answers_a_query_with_every_stream_replicated(tmp_path: Path) -> None:
    dev = Dev.start(tmp_path, ["--preset", "scale-flexible", "--nats-cluster", "--no-query"])
    try:
        dev.wait_ready()
        assert any(line.strip().startswith("ready  nats-server x3") for line in dev.lines)
        state = json.loads((tmp_path / "dev.json").read_text())
        urls = state["nats_url"].split(",")
        assert len(urls) == 3
        config = yaml.safe_load(Path(state["workdir"], "broker.yaml").read_text())
        assert config["bus"]["connection"]["servers"] == urls

        answered = cli(tmp_path, "query", "--agent", "assistant", "hello cluster")
        assert answered.returncode == 0, answered.stdout + answered.stderr

        streams = ["ARK_WORK", "ARK_CHUNKS", "ARK_EVENTS", "ARK_STATUS", "KV_ark-queries"]
        assert asyncio.run(_replicas(urls, streams)) == dict.fromkeys(streams, 3)
    finally:
        dev.stop()
