"""End-to-end helpers: every part is a real process (see :mod:`ark_mesh.devmesh`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ark_mesh.bus import Bus, ConnectionSettings, StreamReader
from ark_mesh.contracts import Chunk, Query, StatusUpdate, decoder_for, subjects
from ark_mesh.devmesh import LocalMesh
from ark_mesh.kube import CORE_EVENTS

TERMINAL = ("done", "error", "canceled")


@dataclass
class Probe:
    """Reads what the mesh produced: Query objects, events, and the bus subjects of a query."""

    mesh: LocalMesh
    bus: Bus | None

    async def query(self, name: str) -> Query:
        async with await self.mesh.client() as client:
            return await client.get(Query, self.mesh.namespace, name)

    async def wait_phase(self, name: str, *phases: str, within: float = 90.0) -> Query:
        async with await self.mesh.client() as client, asyncio.timeout(within):
            while True:
                query = await client.get(Query, self.mesh.namespace, name)
                if query.status is not None and query.status.phase in phases:
                    return query
                await asyncio.sleep(0.05)

    async def wait_all(self, names: list[str], *phases: str, within: float = 120.0) -> list[Query]:
        return list(
            await asyncio.gather(*(self.wait_phase(n, *phases, within=within) for n in names))
        )

    async def events(self, name: str) -> list[dict[str, Any]]:
        async with await self.mesh.client() as client:
            found = await client.list_objects(
                CORE_EVENTS, self.mesh.namespace, field_selector=f"involvedObject.name={name}"
            )
            return list(found.items)

    async def chunks(self, uid: str, *, within: float = 60.0) -> list[Chunk]:
        """Every chunk stored for the query, once its final chunk is there."""
        assert self.bus is not None
        reader = StreamReader(self.bus)
        subject = subjects.query_chunk(self.mesh.namespace, uid)
        decode = decoder_for(Chunk).decode
        async with asyncio.timeout(within):
            async for _ in reader.read(subject, decoder=decode, until=lambda e: e.message.is_final):
                pass
        return [e.message async for e in reader.read(subject, decoder=decode, caught_up=True)]

    async def status_updates(self, uid: str) -> list[StatusUpdate]:
        assert self.bus is not None
        reader = StreamReader(self.bus)
        subject = subjects.query_status(self.mesh.namespace, uid)
        return [
            e.message
            async for e in reader.read(
                subject, decoder=decoder_for(StatusUpdate).decode, caught_up=True
            )
        ]


@pytest.fixture
async def start_mesh(tmp_path) -> AsyncIterator[Callable[..., Any]]:  # type: ignore[no-untyped-def]
    started: list[tuple[LocalMesh, Bus | None]] = []

    async def start(**options: Any) -> tuple[LocalMesh, Probe]:
        mesh = LocalMesh(workdir=tmp_path / f"mesh-{len(started)}", **options)
        await mesh.start()
        bus = None
        if mesh.nats_urls:
            # With nats_auth the probe reads as the operator (every tenant, no writes).
            urls = (
                mesh.credentials.operator_urls(mesh.nats_urls)
                if mesh.credentials is not None
                else mesh.nats_urls
            )
            bus = await Bus.connect(ConnectionSettings(servers=tuple(urls)))
        started.append((mesh, bus))
        return mesh, Probe(mesh, bus)

    yield start
    for mesh, bus in reversed(started):
        if bus is not None:
            await bus.close()
        await mesh.stop()
