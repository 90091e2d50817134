"""The service as a real process: ``python -m ark_mesh.responses_reconciler --config FILE``
becomes ready, answers a request, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import aiohttp
import msgspec

from ark_mesh.service import HealthConfig
from ark_mesh.testing.nats_server import free_port


async def test_the_process_becomes_ready_answers_and_exits_cleanly_on_sigterm(world: Any) -> None:
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
            "ark_mesh.responses_reconciler",
            "--config",
            str(path),
            stdout=output,
            stderr=output,
            env={**os.environ, "ARK_LOG_FORMAT": "json"},
        )
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        body: dict[str, Any] | None = None
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                assert process.returncode is None, f"exited early:\n{log.read_text()[-3000:]}"
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            body = await response.json()
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        assert body is not None, f"never ready:\n{log.read_text()[-3000:]}"
        assert body["checks"] == {"nats": "ok", "consumer": "ok", "resources": "ok"}

        request = world.request("model/default", [{"role": "user", "content": "ping"}])
        await world.submit(request)
        result = await world.result(request)
        assert result.status == "completed"
        assert result.message == {"role": "assistant", "content": "Echo: ping"}

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, log.read_text()[-3000:]
    assert '"service stopped"' in log.read_text()
