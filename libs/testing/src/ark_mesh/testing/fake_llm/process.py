"""The fake model server in its own process, and the HTTP client that scripts it.

Services under test run as separate processes, and an in-process fake (or a transport mock)
cannot reach them; a real subprocess on a free port can. :class:`FakeModelControl` speaks the
server's ``/_fake`` control endpoints, so a test scripts a subprocess the same way it scripts an
in-process :class:`~ark_mesh.testing.fake_llm.server.FakeModelServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

import aiohttp
import msgspec

from ark_mesh.testing.fake_llm.script import Rule
from ark_mesh.testing.fake_llm.server import RecordedRequest

__all__ = ["FakeModelControl", "FakeModelProcess", "FakeModelProcessError"]

_READY_PREFIX = "fake-llm listening on "


class FakeModelProcessError(RuntimeError):
    """The subprocess did not come up; the message carries its stderr."""


@dataclass
class FakeModelControl:
    """Scripts a running fake model server through ``/_fake/*``."""

    url: str
    _session: aiohttp.ClientSession | None = field(default=None, init=False)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def add_rule(self, rule: Rule | Mapping[str, Any]) -> None:
        await self.add_rules([rule])

    async def add_rules(self, rules: Sequence[Rule | Mapping[str, Any]]) -> None:
        payload = [msgspec.to_builtins(r) if isinstance(r, Rule) else dict(r) for r in rules]
        async with self._client().post(f"{self.url}/_fake/rules", json=payload) as response:
            if response.status != 201:
                raise ValueError(f"fake model server refused rules: {await response.text()}")

    async def requests(self) -> list[RecordedRequest]:
        async with self._client().get(f"{self.url}/_fake/requests") as response:
            response.raise_for_status()
            data = await response.json()
        return msgspec.convert(data["requests"], list[RecordedRequest])

    async def reset(self) -> None:
        async with self._client().post(f"{self.url}/_fake/reset") as response:
            response.raise_for_status()

    async def wait_until(
        self,
        predicate: Callable[[list[RecordedRequest]], bool],
        poll: float = 0.05,
    ) -> list[RecordedRequest]:
        """Poll the request log until ``predicate`` holds (another process: no shared event).
        Bound it with ``asyncio.timeout`` at the call site."""
        while True:
            recorded = await self.requests()
            if predicate(recorded):
                return recorded
            await asyncio.sleep(poll)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class FakeModelProcess:
    """``python -m ark_mesh.testing.fake_llm`` on a free loopback port."""

    script: Path | None = None
    startup_timeout: float = 30.0
    _process: asyncio.subprocess.Process | None = field(default=None, init=False)
    _stderr: IO[bytes] | None = field(default=None, init=False)
    _url: str | None = field(default=None, init=False)
    _control: FakeModelControl | None = field(default=None, init=False)

    async def start(self) -> None:
        command = [sys.executable, "-m", "ark_mesh.testing.fake_llm", "--port", "0"]
        if self.script is not None:
            command += ["--script", str(self.script)]
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=self._stderr
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(self.startup_timeout):
                line = (await self._process.stdout.readline()).decode()
        except TimeoutError:
            line = ""
        if not line.startswith(_READY_PREFIX):
            await self._terminate()
            errors = self._errors()
            await self.stop()
            raise FakeModelProcessError(f"fake model server did not start: {errors}")
        self._url = line[len(_READY_PREFIX) :].strip()
        self._control = FakeModelControl(self._url)

    def _errors(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return "(no stderr)"
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip() or "(empty stderr)"

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.close()
        await self._terminate()
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()

    async def _terminate(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the fake model process is not started")
        return self._process.pid

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fake model process is not started")
        return self._url

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def control(self) -> FakeModelControl:
        if self._control is None:
            raise RuntimeError("the fake model process is not started")
        return self._control
