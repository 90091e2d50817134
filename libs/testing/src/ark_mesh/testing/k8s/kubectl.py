"""Run the real ``kubectl`` against an emulator (or any cluster) from async tests.

Failures become :class:`KubectlError` with the server's ``reason``, HTTP ``code`` and message,
taken from the last failure ``Status`` body kubectl logs at ``-v=8`` (kubectl's own summary
omits the reason for some errors, e.g. ``The Query "q" is invalid``), so tests can assert on
them the way they would on an API client's exception.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Kubectl", "KubectlError", "KubectlResult"]

_RESPONSE_BODY = re.compile(r'"Response Body" body="(.*)"\s*$')
_HTTP_STATUS = re.compile(r"round_trippers\.go:\d+\] \w+ \S+ (\d{3}) ")
_LOG_LINE = re.compile(r"^[IWE]\d{4} ")


@dataclass(frozen=True, slots=True)
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str


class KubectlError(Exception):
    """kubectl exited non-zero; ``code``/``reason`` are the server's when it answered."""

    def __init__(self, args: list[str], result: KubectlResult) -> None:
        self.args_used = args
        self.result = result
        status = _last_failure_status(result.stderr)
        codes = [int(c) for c in _HTTP_STATUS.findall(result.stderr) if int(c) >= 400]
        self.code: int | None = status.get("code") or (codes[-1] if codes else None)
        self.reason: str | None = status.get("reason")
        summary = "\n".join(
            line for line in result.stderr.splitlines() if not _LOG_LINE.match(line)
        ).strip()
        self.message: str = status.get("message") or summary
        super().__init__(f"kubectl {' '.join(args)} failed ({self.code} {self.reason}): {summary}")


class Kubectl:
    """``kubectl --kubeconfig <path> …`` with a private discovery cache."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        cache_dir: Path,
        executable: str = "kubectl",
        deadline: float = 60.0,
    ) -> None:
        self._deadline = deadline
        found = shutil.which(executable)
        if found is None:
            raise FileNotFoundError(f"{executable} is not installed (Debian: kubernetes-client)")
        self._base = [found, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir)]

    async def run(self, *args: str, stdin: str | None = None) -> KubectlResult:
        """Run and return the result; raises :class:`KubectlError` on a non-zero exit."""
        argv = [*args, "-v=8"]
        process = await asyncio.create_subprocess_exec(
            *self._base,
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None),
                self._deadline,
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        result = KubectlResult(process.returncode, out.decode(), err.decode())
        if result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    async def json(self, *args: str, stdin: str | None = None) -> Any:
        """Run with ``-o json`` and decode the output."""
        result = await self.run(*args, "-o", "json", stdin=stdin)
        return json.loads(result.stdout)

    async def raw(self, path: str) -> str:
        """``kubectl get --raw <path>``: the server's body as is (watch streams included)."""
        return (await self.run("get", "--raw", path)).stdout


def _last_failure_status(log: str) -> dict[str, Any]:
    for line in reversed(log.splitlines()):
        match = _RESPONSE_BODY.search(line)
        if match is None:
            continue
        try:
            body = json.loads(f'"{match.group(1)}"')
            status = json.loads(body)
        except ValueError:
            continue
        if isinstance(status, dict) and status.get("kind") == "Status":
            return status
    return {}
