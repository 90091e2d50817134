"""Process lifecycle glue: turn SIGTERM/SIGINT into an event a service awaits.

Kubernetes stops a pod with SIGTERM and kills it ``terminationGracePeriodSeconds`` later. A
service awaits :func:`shutdown_signal`, then drains its workers (stop fetching, finish or hand
back in-flight work) and closes the bus, all inside that period.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable

from ark_mesh.telemetry import get_logger

__all__ = ["shutdown_signal"]

_log = get_logger(__name__)


def shutdown_signal(
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> asyncio.Event:
    """Install handlers on the running loop; the returned event is set on the first signal.

    A second signal is not swallowed: it restores the default handler, so an operator can
    still interrupt a drain that hangs.
    """
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    chosen = tuple(signals)

    def handle(received: signal.Signals) -> None:
        _log.info("shutdown requested", signal=received.name)
        event.set()
        for sig in chosen:
            loop.remove_signal_handler(sig)

    for sig in chosen:
        loop.add_signal_handler(sig, handle, sig)
    return event
