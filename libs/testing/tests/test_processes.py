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


PID_SERVICE = """
import os
import sys

import yaml
from aiohttp import web

config = yaml.safe_load(open(sys.argv[2]))
app = web.Application()
app.router.add_get("/readyz", lambda request: web.json_response({"pid": os.getpid()}))
web.run_app(app, host="127.0.0.1", port=config["health"]["port"], print=None)
"""


async def test_another_services_readiness_on_a_shared_port_is_not_taken_for_ours(
    tmp_path: Path,
) -> None:
    """Two services given the same port (a free port handed out twice): the second cannot bind,
    and the first's ``/readyz`` answers on that port; its pid tells the harness it is not the
    second's, which is started again on a fresh port instead of being called ready."""
    package = tmp_path / "src"
    package.mkdir()
    (package / "pid_service.py").write_text(PID_SERVICE)
    env = {"PYTHONPATH": str(package)}
    first = ServiceProcess("first", "pid_service", {}, tmp_path / "first", env=env)
    second = ServiceProcess("second", "pid_service", {}, tmp_path / "second", env=env)
    second.health_port = first.health_port
    second.config["health"] = {"host": "127.0.0.1", "port": first.health_port}
    await first.start(ready_within=30)
    try:
        await second.start(ready_within=30)
        assert second.running
        assert second.health_port != first.health_port
        assert second.starts == 2
    finally:
        await second.stop()
        await first.stop()
