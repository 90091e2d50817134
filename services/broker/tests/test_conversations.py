"""Stored responses in KV ``ark-responses`` (a real nats-server): sealed with the tenant's key,
the tenant's own, and unreadable under another key or tenant."""

from __future__ import annotations

import os

from ark_mesh.broker.conversations import ResponseStore, StoredResponse
from ark_mesh.bus import Bus, PayloadCipher, Topology, TopologyConfig
from ark_mesh.contracts import subjects
from ark_mesh.testing.nats_server import NatsServer


def stored(tenant: str, response_id: str = "resp_1") -> StoredResponse:
    return StoredResponse(
        id=response_id,
        tenant=tenant,
        model="model/default",
        created_at=1,
        completed_at=2,
        conversation=[
            {"role": "user", "content": "the launch date is March 3"},
            {"role": "assistant", "content": "noted"},
        ],
        output_text="noted",
    )


async def test_a_conversation_is_ciphertext_at_rest_and_the_tenants_own(
    nats_server: NatsServer,
) -> None:
    key = os.urandom(32)
    bus = await Bus.connect(
        servers=(nats_server.url,), encryption=PayloadCipher({"team-a": {"k1": key}})
    )
    try:
        await Topology(TopologyConfig()).provision(bus)
        store = ResponseStore(bus)
        await store.put(stored("team-a"))
        await store.put(stored("team-b"))
        kv = await bus.key_value(subjects.RESPONSES_BUCKET)
        sealed = await kv.get("team-a.resp_1")
        assert b"launch date" not in (sealed.value or b"")
        clear = await kv.get("team-b.resp_1")
        assert b"launch date" in (clear.value or b"")  # no key for team-b: clear, as elsewhere

        assert await store.get("team-a", "resp_1") == stored("team-a")
        assert await store.get("team-b", "resp_1") == stored("team-b")
        assert await store.get("team-a", "resp_2") is None
        assert await store.get("team-a", "resp.with.dots") is None

        # Copied under another id, or read without the key, it does not open.
        await kv.put("team-a.resp_copy", sealed.value or b"")
        assert await store.get("team-a", "resp_copy") is None
        stranger = await Bus.connect(
            servers=(nats_server.url,),
            encryption=PayloadCipher({"team-a": {"k1": os.urandom(32)}}),
        )
        try:
            assert await ResponseStore(stranger).get("team-a", "resp_1") is None
        finally:
            await stranger.close()
    finally:
        await bus.close()
