"""``/healthz`` and ``/readyz`` for Kubernetes probes.

Liveness only says the event loop answers (restarting a process whose NATS is down would not
help); readiness runs every registered check, so a replica that lost NATS or has not synced its
watch stops receiving traffic without being killed. Each check is a plain callable returning a
bool or raising, so components register their own state without knowing about HTTP.

``/metrics`` (Prometheus text) is served on the same port when the process's telemetry has a
scrape reader: one port per pod for the kubelet and for Prometheus.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ark_mesh.telemetry.prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE

__all__ = ["HealthServer", "ReadinessCheck"]

ReadinessCheck = Callable[[], bool | Awaitable[bool]]


class HealthServer:
    """A small aiohttp server with the probe endpoints (and any extra routes a service adds)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        metrics: Callable[[], str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.app = web.Application()
        self._checks: dict[str, ReadinessCheck] = {}
        self._runner: web.AppRunner | None = None
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self._metrics = metrics
        if metrics is not None:
            self.app.router.add_get("/metrics", self._metrics_page)

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def readiness(self) -> dict[str, str]:
        """Run every check; the value is ``ok`` or the reason it is not."""
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                outcome: Any = check()
                if inspect.isawaitable(outcome):
                    outcome = await asyncio.wait_for(outcome, timeout=2.0)
                results[name] = "ok" if outcome else "not ready"
            except Exception as exc:  # a failing check is a "no", never a crashed probe
                results[name] = f"error: {exc}"
        return results

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics_page(self, _: web.Request) -> web.Response:
        assert self._metrics is not None
        # Collecting walks every instrument's series: cheap, but off the event loop's hot path.
        page = await asyncio.get_running_loop().run_in_executor(None, self._metrics)
        return web.Response(body=page.encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def _readyz(self, _: web.Request) -> web.Response:
        results = await self.readiness()
        ready = all(value == "ok" for value in results.values())
        # The pid tells a caller which process answered (a test harness that picked a port
        # another process took must not mistake that process's readiness for its own).
        return web.json_response(
            {"status": "ok" if ready else "not ready", "checks": results, "pid": os.getpid()},
            status=200 if ready else 503,
        )
