"""Run a service until SIGTERM/SIGINT, then stop it within a grace period.

Kubernetes sends SIGTERM and waits ``terminationGracePeriodSeconds`` before SIGKILL; a service
must stop taking new work at once and finish or hand back what it holds before that. The
:class:`Service` protocol separates the two: ``start`` returns once the service is serving,
``stop(grace)`` drains. :func:`run_service` owns the signals, the health server and the order.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

from ark_mesh.service.health import HealthServer
from ark_mesh.telemetry import get_logger

__all__ = ["Service", "run_service"]

log = get_logger("ark_mesh.service")


class Service(Protocol):
    """What :func:`run_service` needs from a service."""

    name: str

    async def start(self, health: HealthServer) -> None:
        """Start serving; register readiness checks on ``health``."""

    async def stop(self, grace: float) -> None:
        """Stop taking work and finish within ``grace`` seconds."""


async def run_service(
    service: Service,
    *,
    health: HealthServer | None = None,
    grace: float = 25.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Start ``service`` and its health server, wait for a signal (or ``stop``), shut down."""
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stopping.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread: the caller stops us
            pass
    probes = health or HealthServer()
    await probes.start()
    try:
        await service.start(probes)
        log.info("service started", service=service.name, health=probes.url)
        await stopping.wait()
        log.info("service stopping", service=service.name, grace_seconds=grace)
        await service.stop(grace)
    finally:
        await probes.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
        log.info("service stopped", service=service.name)
