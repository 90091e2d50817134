"""The service as a real process: ``python -m ark_mesh.embeddings_reconciler --config FILE``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from ark_mesh.service import HealthConfig
from ark_mesh.testing.fake_llm.wire import embedding_vector
from ark_mesh.testing.nats_server import free_port


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    """Poll ``/readyz`` until 200 (generous bound; fails with the process's log)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if process.returncode is not None:
                raise AssertionError(f"service exited early:\n{tail(log)}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"service never became ready:\n{tail(log)}")


async def test_the_process_answers_becomes_ready_and_exits_cleanly_on_sigterm(
    world: Any,
) -> None:
    port = free_port()
    config = msgspec.structs.replace(
        world.config(), health=HealthConfig(host="127.0.0.1", port=port)
    )
    path = world.write_config(config, "process.yaml")
    log = world.root / "process.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ark_mesh.embeddings_reconciler",
            "--config",
            str(path),
            stdout=output,
            stderr=output,
            env={**os.environ, "ARK_LOG_FORMAT": "json"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(process, url, log)
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
            body = await response.json()
        assert body["checks"] == {"nats": "ok", "consumer": "ok", "resources": "ok"}

        request = world.request(["from a process"])
        await world.submit(request)
        result = await world.result(request)
        assert result.status == "completed", result.error
        assert result.embeddings == [embedding_vector("from a process")]

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, tail(log)
    assert '"service stopped"' in tail(log)


async def test_a_bad_configuration_is_refused_naming_the_field(world: Any) -> None:
    path = world.root / "bad.yaml"
    path.write_text("maxBatch: 0\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ark_mesh.embeddings_reconciler",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert "maxBatch" in stderr.decode()
