"""ServiceProcess: a port taken between picking it and binding it does not fail a start."""

from __future__ import annotations

import socket
from pathlib import Path

from ark_mesh.testing.processes import ServiceProcess

SERVICE = """
import sys

import yaml
from aiohttp import web

config = yaml.safe_load(open(sys.argv[2]))
app = web.Application()
app.router.add_get("/readyz", lambda request: web.Response(text="ready"))
web.run_app(app, host="127.0.0.1", port=config["health"]["port"], print=None)
"""


async def test_a_start_whose_port_was_taken_meanwhile_retries_on_a_fresh_port(
    tmp_path: Path,
) -> None:
    package = tmp_path / "src"
    package.mkdir()
    (package / "tiny_service.py").write_text(SERVICE)
    process = ServiceProcess(
        "tiny", "tiny_service", {}, tmp_path / "work", env={"PYTHONPATH": str(package)}
    )
    taken = process.health_port
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        await process.start(ready_within=30)
        assert process.running
        assert process.health_port != taken
        assert process.starts == 2
        assert "address already in use" in process.log_tail(200)
    finally:
        await process.stop()
        squatter.close()
