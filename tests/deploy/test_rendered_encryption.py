"""Encryption as the chart configures it: a hyphenated tenant's data is ciphertext on the bus.

The chart renders ``bus.encryption`` into every service's config file; the services look keys
up by the tenant token of each subject. This renders a release with keys for ``team-a`` (a
namespace-style name, which a key rewrite would have left in clear), loads the broker's config
file as the broker does, and publishes that tenant's chunk and status update
through a bus built from it. A client without keys then reads the raw stored bytes: none of the
tenant's text is in them, while the configured bus reads it back.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from ark_mesh.bus import Bus, ConnectionSettings, Publisher, StreamReader, Topology
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    QueryStatus,
    StatusUpdate,
    decoder_for,
    subjects,
)
from ark_mesh.testing.nats_server import NatsServer

from .conftest import Chart
from .test_chart import decode

TENANT = "team-a"
SECRET = "the acquisition closes on friday"


async def test_a_hyphenated_tenants_data_is_ciphertext_through_the_rendered_config(
    chart: Chart, tmp_path: Path
) -> None:
    key_file = tmp_path / "team-a.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    values = {
        "bus": {
            "encryption": {
                "tenants": {TENANT: {"keys": [{"id": "team-a-1", "file": str(key_file)}]}},
                "requiredTenants": [TENANT],
            }
        },
        "broker": {"auth": {"tokens": [{"tenant": TENANT, "sha256": "b" * 64}]}},
        # An external single server (the test's): streams at one replica.
        "nats": {"url": "nats://nats.messaging:4222"},
    }
    rendered = chart.render("scale-strict", values)
    config = decode(rendered, "broker", tmp_path).bus
    assert set(config.encryption.tenants) == {TENANT}

    with NatsServer(tmp_path / "nats").start() as server:
        settings = ConnectionSettings(servers=(server.url,))
        bus = await Bus.connect(settings, encryption=config.encryption)
        plain = await Bus.connect(settings)
        try:
            await Topology(config.topology).provision(bus)
            publisher = await Publisher.create(bus)
            chunk = Chunk(
                id="chatcmpl-1",
                created=1,
                model="m",
                choices=[ChunkChoice(delta=ChunkDelta(content=SECRET))],
                ark=ArkChunkMetadata(query="q1"),
                seq=1,
            )
            chunk_ack = await publisher.publish(subjects.query_chunk(TENANT, "q1"), chunk)
            update = StatusUpdate(
                query_id="q1",
                name="q1",
                namespace=TENANT,
                tenant=TENANT,
                seq=1,
                phase="error",
                status=QueryStatus(phase="error", error=SECRET),
                timestamp="2026-11-29T00:00:00Z",
            )
            status_ack = await publisher.publish(subjects.query_status(TENANT, "q1"), update)
            await publisher.close()

            for stream, ack in (
                (subjects.ARK_CHUNKS, chunk_ack),
                (subjects.ARK_STATUS, status_ack),
            ):
                raw = await plain.jsm.get_msg(stream, ack.seq)
                assert raw.data is not None
                assert SECRET.encode() not in raw.data, stream
                assert b"acquisition" not in raw.data, stream

            reader = StreamReader(bus)
            read = [
                entry.message
                async for entry in reader.read(
                    subjects.query_chunk(TENANT, "q1"),
                    decoder=decoder_for(Chunk).decode,
                    caught_up=True,
                )
            ]
            assert read == [chunk]
        finally:
            await plain.close()
            await bus.close()
