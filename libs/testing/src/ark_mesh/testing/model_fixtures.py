"""pytest fixtures for the model-side test infrastructure.

Every fixture starts a real server on a free loopback port and stops it afterwards:

* ``fake_llm`` — the OpenAI-compatible fake model server in this process (scripted directly);
* ``fake_llm_process`` — the same server as a subprocess (scripted over ``/_fake``), for
  services that run in their own processes;
* ``a2a_server`` — a small A2A agent (JSON-RPC ``message/send``, agent card);
* ``mcp_server`` — an MCP server over streamable HTTP with ``add``, ``echo``, ``fail`` and
  ``slow`` tools.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import FakeModelProcess, FakeModelServer
from ark_mesh.testing.mcp_server import MCPTestServer

__all__ = ["a2a_server", "fake_llm", "fake_llm_process", "mcp_server"]


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeModelServer]:
    """An in-process fake model server; point clients at ``fake_llm.base_url``."""
    async with FakeModelServer() as server:
        yield server


@pytest.fixture
async def fake_llm_process() -> AsyncIterator[FakeModelProcess]:
    """The fake model server as a subprocess; script it with ``fake_llm_process.control``."""
    async with FakeModelProcess() as process:
        yield process


@pytest.fixture
async def a2a_server() -> AsyncIterator[A2ATestServer]:
    """A message-counting A2A agent; ``a2a_server.url`` is its JSON-RPC endpoint."""
    async with A2ATestServer() as server:
        yield server


@pytest.fixture
async def mcp_server() -> AsyncIterator[MCPTestServer]:
    """An MCP server over streamable HTTP; ``mcp_server.url`` ends in ``/mcp``."""
    async with MCPTestServer() as server:
        yield server
