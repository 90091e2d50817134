"""A service-style flow with encryption on: the query-reconciler service, in this process,
resolves a sealed ``QueryRequest`` against the fake model server and streams sealed chunks and
status updates that a producer with the tenant's key reads back in clear. The keys reach the
service only through its own configuration file's ``bus.encryption`` block.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ark_mesh.bus import (
    Bus,
    BusConfig,
    ConnectionSettings,
    EncryptionKeySettings,
    EncryptionSettings,
    Publisher,
    StreamReader,
    TenantEncryptionSettings,
    TopologyConfig,
    WorkConsumerSettings,
    WorkerSettings,
)
from ark_mesh.bus.encryption import KEY_ID_HEADER, sealed_key_id
from ark_mesh.contracts import (
    Chunk,
    QueryRequest,
    QuerySpec,
    QueryTarget,
    StatusUpdate,
    decoder_for,
    subjects,
)
from ark_mesh.query_reconciler import QueryReconcilerConfig, QueryReconcilerService
from ark_mesh.service import HealthConfig, HealthServer, ResourcesConfig
from ark_mesh.testing.fake_llm import FakeModelServer
from ark_mesh.testing.nats_server import NatsServer

TENANT = "team-a"
KEY_ENV = "ARK_TEST_TEAM_A_KEY"
SECRET_INPUT = "summarise the acquisition of initech"


def _manifests(base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "default", "namespace": TENANT},
            "spec": {
                "model": {"value": "fake-model"},
                "provider": "openai",
                "config": {
                    "openai": {"baseUrl": {"value": base_url}, "apiKey": {"value": "test-key"}}
                },
            },
        },
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "helper", "namespace": TENANT},
            "spec": {"prompt": "You are helpful.", "modelRef": {"name": "default"}},
        },
    ]


def _config(url: str, manifests: Path) -> QueryReconcilerConfig:
    return QueryReconcilerConfig(
        bus=BusConfig(
            connection=ConnectionSettings(servers=(url,), connect_attempts=3),
            topology=TopologyConfig(
                work_consumers=(
                    WorkConsumerSettings(
                        kind="query", durable="query-reconciler", ack_wait=2.0, max_deliver=3
                    ),
                )
            ),
            worker=WorkerSettings(slots=2, grace_period=5.0, service="query-reconciler"),
            encryption=EncryptionSettings(
                tenants={
                    TENANT: TenantEncryptionSettings(
                        keys=(EncryptionKeySettings(id="2026-01", env=KEY_ENV),)
                    )
                },
                required_tenants=(TENANT,),
            ),
        ),
        instance="encrypted-replica",
        resources=ResourcesConfig(
            source="manifests", manifests=str(manifests), default_namespace=TENANT
        ),
        health=HealthConfig(host="127.0.0.1", port=0),
    )


async def _stored_bodies(bus: Bus, stream: str, subject: str) -> list[tuple[bytes, str]]:
    info = await bus.jsm.stream_info(stream)
    found: list[tuple[bytes, str]] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.jsm.get_msg(stream, seq)
        if raw.subject == subject:
            found.append((raw.data or b"", (raw.headers or {}).get(KEY_ID_HEADER, "")))
    return found


async def test_query_reconciler_resolves_sealed_work_into_sealed_chunks(
    nats_server: NatsServer,
    fake_llm: FakeModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "resources.yaml").write_text(yaml.safe_dump_all(_manifests(fake_llm.base_url)))
    # Through the config file's shape, as a deployment would give it.
    config = msgspec.convert(
        msgspec.to_builtins(_config(nats_server.url, tmp_path)), QueryReconcilerConfig
    )
    encryption = config.bus.encryption

    service = QueryReconcilerService(config)
    health = HealthServer(port=0)
    await health.start()
    producer = await Bus.connect(config.bus.connection, encryption=encryption)
    plain = await Bus.connect(config.bus.connection)
    try:
        await service.start(health)
        assert service.bus is not None
        assert service.bus.cipher.encrypts(TENANT)
        publisher = await Publisher.create(producer)
        request = QueryRequest(
            query_id=str(uuid.uuid4()),
            name="secret-query",
            namespace=TENANT,
            tenant=TENANT,
            spec=QuerySpec(input=SECRET_INPUT, target=QueryTarget(type="agent", name="helper")),
            submitted_at=datetime.now(UTC).isoformat(),
        )
        await publisher.publish(subjects.work_query(TENANT), request, msg_id=request.msg_id)
        chunk_subject = subjects.query_chunk(TENANT, request.query_id)
        chunks: list[Chunk] = []
        async with asyncio.timeout(60):
            async for entry in StreamReader(producer, subjects.ARK_CHUNKS).read(
                chunk_subject, decoder=decoder_for(Chunk), until=lambda e: e.message.is_final
            ):
                chunks.append(entry.message)
        await publisher.close()
        statuses = [
            entry.message
            async for entry in StreamReader(producer, subjects.ARK_STATUS).read(
                subjects.query_status(TENANT, request.query_id),
                decoder=decoder_for(StatusUpdate),
                caught_up=True,
            )
        ]

        assert chunks[-1].is_final
        text = "".join(
            choice.delta.content or ""
            for chunk in chunks
            if not chunk.is_final
            for choice in chunk.choices
        )
        assert text  # the fake model's answer, streamed through sealed chunks
        assert statuses
        assert statuses[-1].terminal
        assert statuses[-1].phase == "done"

        # At rest everything of the tenant is ciphertext under its key; a bus without the
        # key reads nothing of it.
        for stream, subject in (
            (subjects.ARK_CHUNKS, chunk_subject),
            (subjects.ARK_STATUS, subjects.query_status(TENANT, request.query_id)),
            (subjects.ARK_EVENTS, subjects.query_event(TENANT, request.query_id)),
        ):
            stored = await _stored_bodies(plain, stream, subject)
            assert stored, f"nothing stored on {subject}"
            for body, key_id in stored:
                assert key_id == "2026-01"
                assert sealed_key_id(body) == "2026-01"
                assert b"initech" not in body
                assert text.encode()[:20] not in body
        unreadable = [
            entry
            async for entry in StreamReader(plain, subjects.ARK_CHUNKS).read(
                chunk_subject, decoder=decoder_for(Chunk), caught_up=True
            )
        ]
        assert unreadable == []
    finally:
        await service.stop(5.0)
        await health.stop()
        await producer.close()
        await plain.close()
