"""Simple preset: controller only, no nats-server anywhere, queries complete in-controller."""

from __future__ import annotations

import asyncio

import pytest

from ark_mesh.contracts import Query
from ark_mesh.devmesh import LocalMesh
from ark_mesh.testing import ark_objects

pytestmark = pytest.mark.slow


async def wait_phase(mesh: LocalMesh, name: str, *phases: str, within: float = 60.0) -> Query:
    async with await mesh.client() as client, asyncio.timeout(within):
        while True:
            query = await client.get(Query, mesh.namespace, name)
            if query.status is not None and query.status.phase in phases:
                return query
            await asyncio.sleep(0.05)


async def test_simple_preset_resolves_in_controller_without_nats() -> None:
    async with LocalMesh(preset="simple") as mesh:
        assert mesh.nats is None
        assert set(mesh.services) == {"controller"}
        async with await mesh.client() as client:
            await client.create(ark_objects.query("hello", mesh.namespace, "Hello, Ark!"))
        query = await wait_phase(mesh, "hello", "done", "error")
        assert query.status is not None
        assert query.status.phase == "done"
        assert query.status.response is not None
        assert "Hello, Ark!" in query.status.response.content
        controller_log = mesh.services["controller"].log_tail(400)
        assert "nats" not in controller_log.lower()
