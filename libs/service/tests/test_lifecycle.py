"""Health endpoints and the SIGTERM lifecycle, with a real HTTP server and a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import aiohttp

from ark_mesh.service import HealthServer


async def test_readiness_follows_the_checks() -> None:
    ready = False

    async def flaky() -> bool:
        raise RuntimeError("nats disconnected")

    health = HealthServer(port=0)
    health.add_check("nats", lambda: ready)
    await health.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{health.url}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{health.url}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"] == {"nats": "not ready"}
            ready = True
            async with http.get(f"{health.url}/readyz") as response:
                assert response.status == 200
            health.add_check("watch", flaky)
            async with http.get(f"{health.url}/readyz") as response:
                body = await response.json()
                assert response.status == 503
                assert body["checks"]["watch"] == "error: nats disconnected"
    finally:
        await health.stop()


SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from ark_mesh.service import HealthServer, run_service

    class Demo:
        name = "demo"
        async def start(self, health):
            health.add_check("demo", lambda: True)
            print(f"@PORT {health.port}", flush=True)
        async def stop(self, grace):
            print(f"@STOP {grace}", flush=True)
            await asyncio.sleep(0.05)
            print("@DRAINED", flush=True)

    asyncio.run(run_service(Demo(), health=HealthServer(port=0), grace=3.0))
    print("@EXIT", flush=True)
    """
)


async def test_sigterm_drains_then_exits(tmp_path: Path) -> None:
    script = tmp_path / "demo.py"
    script.write_text(SERVICE)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    assert process.stdout is not None
    # Log lines share stdout with the script's own "@" markers; read up to the port marker.
    first = ""
    while not first.startswith("@PORT "):
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert first, "the service exited before it was ready"
    port = int(first.split()[1])
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(process.stdout.read(), 30)).decode().splitlines()
    assert await process.wait() == 0
    assert [line for line in rest if line.startswith("@")] == ["@STOP 3.0", "@DRAINED", "@EXIT"]
