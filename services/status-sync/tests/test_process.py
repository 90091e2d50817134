"""The service as a real process: ``python -m ark_mesh.status_sync --config FILE`` becomes
ready, applies an update, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from ark_mesh.service import HealthConfig
from ark_mesh.testing.nats_server import free_port


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_ready(process: asyncio.subprocess.Process, url: str, log: Path) -> dict[str, Any]:
    """Poll ``/readyz`` until 200 (generous bound; fails with the process's log)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if process.returncode is not None:
                raise AssertionError(f"service exited early:\n{tail(log)}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        body: dict[str, Any] = await response.json()
                        return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"service never became ready:\n{tail(log)}")


async def test_the_process_applies_updates_and_exits_cleanly_on_sigterm(sync: Any) -> None:
    port = free_port()
    path = sync.write_config(sync.config(health=HealthConfig(host="127.0.0.1", port=port)))
    log: Path = sync.root / "status-sync.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ark_mesh.status_sync",
            "--config",
            str(path),
            stdout=output,
            stderr=output,
            env={**os.environ, "ARK_LOG_FORMAT": "json"},
        )
    try:
        body = await wait_ready(process, f"http://127.0.0.1:{port}", log)
        assert body["checks"] == {"nats": "ok", "consumer": "ok", "kubernetes": "ok"}
        query = await sync.create_query("from-a-process")
        await sync.publish(sync.update(query, "running"))
        await sync.wait_phase(query, "running")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, tail(log)
    assert '"service stopped"' in tail(log)
