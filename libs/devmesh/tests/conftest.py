"""Run the real ``ark-mesh`` console script as a subprocess, the way a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ARK_MESH = Path(sys.executable).with_name("ark-mesh")
READY_WITHIN = 600.0
"""A generous bound for the whole mesh to start on a loaded CI machine (a wait, not a target)."""


def environment(home: Path) -> dict[str, str]:
    """The caller's environment, with the CLI's state under ``home`` and no mesh named by env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARK_MESH_")}
    env.pop("KUBECONFIG", None)
    env["ARK_MESH_HOME"] = str(home)
    return env


def cli(home: Path, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARK_MESH), *args],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Dev:
    """A running ``ark-mesh dev``: its output lines so far, read by a thread as they come."""

    home: Path
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, home: Path, args: Sequence[str]) -> Dev:
        process = subprocess.Popen(
            [str(ARK_MESH), "dev", *args],
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        dev = cls(home, process)
        threading.Thread(target=dev._read, daemon=True).start()
        return dev

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("mesh ready"):
                self.ready.set()
        self.ended.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while not (self.ready.is_set() or self.ended.is_set()) and time.monotonic() < deadline:
            self.ready.wait(0.2)
        if not self.ready.is_set():
            self.stop()
            raise AssertionError("ark-mesh dev did not get ready:\n" + "\n".join(self.lines))

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit status."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(120)
        self.ended.wait(10)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.interrupt()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """One ``ark-mesh dev`` (scale-flexible, no first query) shared by a test module."""
    home = tmp_path_factory.mktemp("ark-mesh-home")
    running = Dev.start(home, ["--no-query"])
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
