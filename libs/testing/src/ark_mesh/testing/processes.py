"""Run an ark-mesh service as a real subprocess: config file in, ``/readyz`` out.

End-to-end tests kill services with SIGKILL and restart them, so each service must be its own
process, started the way Kubernetes starts it: ``python -m <module> --config <file>``, probed
on ``/readyz``, stopped with SIGTERM. Output goes to a log file whose tail is attached to every
failure, because a service that dies at start-up in CI is otherwise a mystery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml

from ark_mesh.testing.nats_server import free_port

__all__ = ["ServiceProcess", "ServiceProcessError"]


class ServiceProcessError(RuntimeError):
    """A service subprocess failed to start or stop; the message ends with its log tail."""


class ServiceProcess:
    """One service subprocess. ``config`` is written as YAML; ``health.port`` is set for you."""

    def __init__(
        self,
        name: str,
        module: str,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.workdir = workdir
        self.health_port = free_port()
        self.config = {**config, "health": {"host": "127.0.0.1", "port": self.health_port}}
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self._env = dict(env or {})
        self._process: asyncio.subprocess.Process | None = None
        self._log: Any = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def start(self, *, ready_within: float = 60.0) -> Self:
        """Start and wait for ``/readyz``. A port picked free can be taken by another process
        before the service binds it (the machine runs other tests too): a start that fails
        with "address already in use" is retried on fresh ports, twice."""
        for attempt in range(3):
            try:
                return await self._start(ready_within)
            except ServiceProcessError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                self._fresh_ports()
        raise AssertionError("unreachable")

    def _fresh_ports(self) -> None:
        self.health_port = free_port()
        self.config["health"] = {"host": "127.0.0.1", "port": self.health_port}
        http = self.config.get("http")
        if isinstance(http, dict) and "port" in http:
            self.config["http"] = {**http, "port": free_port()}

    async def _start(self, ready_within: float) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ARK_LOG_FORMAT": "console", **self._env}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            "--config",
            str(self.config_path),
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        self.starts += 1
        try:
            await self.wait_ready(within=ready_within)
        except BaseException:
            await self.stop(grace=2.0)
            raise
        return self

    async def wait_ready(self, *, within: float = 60.0) -> None:
        """Poll ``/readyz`` until it answers 200; fail early if the process exits."""
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running:
                    code = self._process.returncode if self._process else None
                    raise ServiceProcessError(
                        f"{self.name} exited with {code} before it was ready:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(
                        f"{self.health_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200 and self._answered_by_this(await response.read()):
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise ServiceProcessError(
                        f"{self.name} not ready within {within}s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    def _answered_by_this(self, body: bytes) -> bool:
        """Whether a ``/readyz`` answer came from this process (ark-mesh's names its pid): the
        port may have been taken by another service, whose readiness is not ours. An answer
        that names no pid is taken at its word."""
        try:
            decoded = json.loads(body)
        except ValueError:
            return True
        pid = decoded.get("pid") if isinstance(decoded, dict) else None
        return pid is None or self._process is None or pid == self._process.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye — what a node failure looks like."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGKILL)

    async def stop(self, *, grace: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                process.send_signal(signal.SIGKILL)
                await process.wait()
        else:
            await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    async def wait_exit(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def restart(self, *, ready_within: float = 60.0) -> Self:
        await self.stop()
        return await self.start(ready_within=ready_within)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
