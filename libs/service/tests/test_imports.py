"""Importing the service skeleton loads no SDK a service may never use (issue 14).

Every service imports :mod:`ark_mesh.service`, which imports the resolver and the Kubernetes
adapter. The OpenAI SDK (~50 MiB resident), the MCP client (~50 MiB) and kubernetes-asyncio's
``client`` package (~65 MiB) are imported where they are used — an SDK client built, an MCP
session opened, a Kubernetes transport built — so status-sync and the broker, which never call a
model, do not carry them. Checked in a fresh interpreter: this test process has them loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("openai", "mcp", "kubernetes_asyncio.client", "pydantic")

_PROBE = """
import importlib, json, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps([m for m in sys.argv[1].split(",") if m in sys.modules]))
"""


def loaded_after_importing(*modules: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "module",
    ["ark_mesh.service", "ark_mesh.resolver", "ark_mesh.kube", "ark_mesh.resolver.tools.mcp"],
)
def test_importing_loads_no_sdk(module: str) -> None:
    assert loaded_after_importing(module) == []


def test_the_probe_sees_an_sdk_that_is_imported() -> None:
    """The check above can fail: importing the SDK's user shows up."""
    assert loaded_after_importing("ark_mesh.service", "openai") == ["openai", "pydantic"]
