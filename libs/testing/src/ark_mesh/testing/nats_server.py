"""A real ``nats-server`` with JetStream, run as a child process on free loopback ports.

Tests in this project never talk to a shared or fixed-port server: each one starts its own,
with its own store directory, so tests cannot see each other's streams and a crash test can kill
"the broker" without touching anything else on the machine.

The server can be stopped and started again on the *same* port and store directory, which is how
tests prove that file-backed streams, consumers and clients survive a broker restart. Only the
process this object started is ever signalled (by its PID).

The lifecycle methods are synchronous (they block for at most a few hundred milliseconds while
the server boots) so they work from fixtures of any scope and from plain scripts; the ``a``-prefixed
twins run them in a thread so an event loop with live publishers and workers keeps running while
the broker restarts.

Exceptions::

    NatsServerError
     ├── NatsServerNotFoundError      no nats-server binary on PATH or in the usual system location
     └── NatsServerStartTimeoutError  the process exited or did not accept connections in time
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = [
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFoundError",
    "NatsServerStartTimeoutError",
    "find_nats_server",
    "free_port",
]

BINARY_ENV: Final = "ARK_MESH_NATS_SERVER"
"""Environment variable that names the nats-server binary explicitly (wins over PATH)."""

_FALLBACK_LOCATIONS: Final = ("/usr/sbin/nats-server", "/usr/local/bin/nats-server")
_LOOPBACK: Final = "127.0.0.1"


class NatsServerError(RuntimeError):
    """Base class for failures of the test broker itself (not of the code under test)."""


class NatsServerNotFoundError(NatsServerError):
    """No nats-server executable could be found."""


class NatsServerStartTimeoutError(NatsServerError):
    """The server process exited early or never became ready; the message carries its log tail."""


def find_nats_server() -> str:
    """Return the path of the nats-server binary: ``$ARK_MESH_NATS_SERVER``, PATH, system dirs."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise NatsServerNotFoundError(f"{BINARY_ENV}={explicit!r} is not an executable file")
        return explicit
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in _FALLBACK_LOCATIONS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerNotFoundError(
        "nats-server not found on PATH or in /usr/sbin; install it (Debian: apt-get install "
        f"nats-server) or set {BINARY_ENV} to its path"
    )


_handed_out: set[int] = set()
"""Ports this process already handed out: the kernel may offer a released port again at once,
and two services of one mesh started together would then both be given it (one fails to bind,
and its readiness poll reaches the other)."""


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback interface, never one this process
    handed out before.

    The port is released before returning, so another process could take it; for tests on one
    machine that window is small enough, and a clash shows up as a start failure with a clear log.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((_LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class NatsServer:
    """One nats-server process with JetStream enabled, bound to 127.0.0.1 only.

    ``store_dir`` holds the JetStream file store (and the server log next to it); keep the same
    directory across :meth:`restart` to keep the data. Ports are chosen once, at construction, so
    a restarted server is reachable at the same :attr:`url` and clients can reconnect by
    themselves.
    """

    def __init__(
        self,
        store_dir: Path | str,
        *,
        binary: str | None = None,
        port: int | None = None,
        monitor_port: int | None = None,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 20.0,
        health_path: str = "/healthz",
    ) -> None:
        self.store_dir = Path(store_dir)
        self.binary = binary or find_nats_server()
        self.port = port if port is not None else free_port()
        self.monitor_port = monitor_port if monitor_port is not None else free_port()
        self.extra_args = tuple(extra_args)
        self.ready_timeout = ready_timeout
        self.health_path = health_path
        """The monitor path that must answer 200 before the server counts as ready."""
        self.log_path = self.store_dir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:41234``."""
        return f"nats://{_LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        """Base URL of the HTTP monitoring endpoint (``/varz``, ``/jsz``, ``/healthz``)."""
        return f"http://{_LOOPBACK}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        """PID of the running server, or ``None`` when it is not running."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The exact command line used to start the server (useful in failure messages)."""
        return [
            self.binary,
            "-js",
            "-a",
            _LOOPBACK,
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-sd",
            str(self.store_dir),
            *self.extra_args,
        ]

    # -- lifecycle (blocking) -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and block until it accepts clients and JetStream is ready."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C in the terminal goes to pytest, which then
                # stops the server in order, instead of the server dying under a running test.
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, which flushes the file store), then SIGKILL if it hangs."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crashed broker would die."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._process = None

    def restart(self, grace: float = 10.0) -> Self:
        """Stop and start again on the same ports and store directory."""
        self.stop(grace)
        return self.start()

    # -- lifecycle (non-blocking twins for use inside a running event loop) ---------------------

    async def astart(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def astop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, grace)

    async def arestart(self, grace: float = 10.0) -> Self:
        return await asyncio.to_thread(self.restart, grace)

    # -- context managers -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- readiness ------------------------------------------------------------------------------

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        # Readiness means two things: the client port speaks the NATS protocol (sends INFO), and
        # the monitor's /healthz answers 200, which on 2.9 includes JetStream having recovered
        # its store — a client connecting before that would see "JetStream not enabled".
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.005
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise NatsServerStartTimeoutError(
                    f"nats-server exited with code {code} during start "
                    f"({' '.join(self.command())}); log tail:\n{self.log_tail()}"
                )
            if self._speaks_nats() and self._healthy():
                return
            if time.monotonic() > deadline:
                raise NatsServerStartTimeoutError(
                    f"nats-server on {self.url} not ready after {self.ready_timeout:.0f}s; "
                    f"log tail:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _speaks_nats(self) -> bool:
        try:
            with socket.create_connection((_LOOPBACK, self.port), timeout=1.0) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.monitor_url}{self.health_path}", timeout=1.0
            ) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"NatsServer({self.url}, {state}, store={self.store_dir})"

    def __del__(self) -> None:
        # Last resort for a forgotten server: never leave an orphan broker behind a test run.
        with contextlib.suppress(Exception):
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
