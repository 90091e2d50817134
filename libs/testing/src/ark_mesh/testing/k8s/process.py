"""Run the emulator as a real subprocess and drive it through its control endpoint.

A separate process matters when the code under test runs in another process too (a service
started by a test), or when a test must SIGKILL things around the API server without taking
the server down with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from ark_mesh.testing.k8s.faults import FaultRule
from ark_mesh.testing.k8s.store import ObjectActivity

__all__ = ["EmulatorProcess"]


class EmulatorProcess:
    """``python -m ark_mesh.testing.k8s`` on a free port, with an async control client."""

    def __init__(
        self,
        *,
        crd_paths: Iterable[str | Path] = (),
        kubeconfig_path: str | Path,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        startup_timeout: float = 30.0,
    ) -> None:
        self._args = [
            sys.executable,
            "-m",
            "ark_mesh.testing.k8s",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig_path),
            "--history-size",
            str(history_size),
            "--bookmark-interval",
            str(bookmark_interval),
        ]
        crds = [str(p) for p in crd_paths]
        if crds:
            self._args += ["--crds", *crds]
        self.kubeconfig_path = Path(kubeconfig_path)
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator process is not running")
        return self._url

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the emulator process is not running")
        return self._process.pid

    async def start(self) -> str:
        self._process = await asyncio.create_subprocess_exec(
            *self._args,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # inherited: pytest captures it, and a pipe nobody reads could fill up
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), self._startup_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError("the emulator process did not start in time") from None
        text = line.decode().strip()
        if not text.startswith("listening on "):
            await self.stop()
            raise RuntimeError(f"the emulator process failed to start (stdout: {text!r})")
        self._url = text.removeprefix("listening on ")
        self._session = aiohttp.ClientSession()
        return self._url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- control endpoint ----------------------------------------------------------------

    async def _call(
        self, method: str, action: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        if self._session is None:
            raise RuntimeError("the emulator process is not running")
        async with self._session.request(
            method, f"{self.url}/_emulator/{action}", json=json, params=params
        ) as response:
            body = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"control call {action} failed: {body}")
            return body

    async def inject(self, rule: FaultRule) -> None:
        rule_json = rule.to_json()
        rule_json.pop("hits", None)
        await self._call("POST", "faults", json=rule_json)

    async def clear_faults(self) -> None:
        await self._call("DELETE", "faults")

    async def wait_for_watches(self, count: int = 1) -> int:
        """Until ``count`` watches are open at the server; returns how many are."""
        result = await self._call("GET", "watches", params={"min": str(count)})
        return int(result["open"])

    async def drop_watches(self) -> int:
        return int((await self._call("POST", "watches/drop"))["dropped"])

    async def compact(self) -> None:
        await self._call("POST", "compact")

    async def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "requests")
        return result

    async def activity(
        self, resource: str, namespace: str, name: str, *, group: str | None = None
    ) -> ObjectActivity:
        params = {"resource": resource, "namespace": namespace, "name": name}
        if group is not None:
            params["group"] = group
        return ObjectActivity(**(await self._call("GET", "activity", params=params)))

    async def configure(
        self, *, history_size: int | None = None, bookmark_interval: float | None = None
    ) -> None:
        changes: dict[str, Any] = {}
        if history_size is not None:
            changes["history_size"] = history_size
        if bookmark_interval is not None:
            changes["bookmark_interval"] = bookmark_interval
        await self._call("PUT", "config", json=changes)
