"""tilt/dev-restart.sh, run for real under /bin/sh: SIGHUP starts the command again (what
live_update relies on), SIGTERM stops it and passes its exit status on, and a command that
dies on its own ends the wrapper, so Kubernetes still sees crashes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

WRAPPER = REPO / "tilt" / "dev-restart.sh"

# A stand-in service: announces its pid, exits 0 on SIGTERM (as the services do), else waits.
SERVICE = """
import os, signal, sys, time
def stop(*_):
    with open(sys.argv[1], "a") as f:
        f.write(f"stopped {os.getpid()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(sys.argv[1], "a") as f:
    f.write(f"started {os.getpid()}\\n")
while True:
    time.sleep(1)
"""


def events(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for(
    log: Path, count: int, process: subprocess.Popen[bytes], within: float = 30
) -> list[str]:
    deadline = time.monotonic() + within
    while len(events(log)) < count:
        if process.poll() is not None:
            pytest.fail(f"wrapper exited with {process.returncode}; log: {events(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"expected {count} lines in time, got {events(log)}")
        time.sleep(0.02)
    return events(log)


@pytest.fixture
def wrapped(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "service.log"
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    # Its own process group, so teardown can stop the wrapper and whatever it started.
    process = subprocess.Popen(
        ["/bin/sh", str(WRAPPER), sys.executable, str(script), str(log)], start_new_session=True
    )
    try:
        yield process, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_sighup_restarts_the_command(wrapped: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, log = wrapped
    first = wait_for(log, 1, process)[0].split()[1]
    process.send_signal(signal.SIGHUP)
    lines = wait_for(log, 3, process)
    assert lines[1] == f"stopped {first}"
    kind, second = lines[2].split()
    assert kind == "started"
    assert second != first
    assert process.poll() is None, "the wrapper keeps running across restarts"

    process.send_signal(signal.SIGHUP)
    lines = wait_for(log, 5, process)
    assert lines[3] == f"stopped {second}"
    assert lines[4].startswith("started ")


def test_sigterm_stops_the_command_and_passes_its_status(
    wrapped: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log = wrapped
    pid = wait_for(log, 1, process)[0].split()[1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, "the service's own exit status (graceful stop)"
    assert events(log) == [f"started {pid}", f"stopped {pid}"]


def test_a_crash_ends_the_wrapper_with_the_crash_status(tmp_path: Path) -> None:
    process = subprocess.Popen(
        ["/bin/sh", str(WRAPPER), sys.executable, "-c", "raise SystemExit(3)"],
    )
    assert process.wait(timeout=30) == 3
