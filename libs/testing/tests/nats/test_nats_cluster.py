"""The 3-node cluster fixture: it forms, R3 streams survive their leader's death, nodes rejoin."""

from __future__ import annotations

import nats
from nats.js import api

from ark_mesh.testing.nats_cluster import NatsCluster


async def test_cluster_forms_and_advertises_itself(nats_cluster: NatsCluster) -> None:
    assert len(nats_cluster.urls) == 3
    assert len(set(nats_cluster.urls)) == 3
    for index in range(3):
        meta = nats_cluster.jsz(index)["meta_cluster"]
        assert meta["name"] == nats_cluster.cluster_name
        assert meta["leader"] in nats_cluster.names
    client = await nats.connect(servers=nats_cluster.urls)
    try:
        # The bus reads "cluster" from INFO to decide whether replicas > 1 may be asked for.
        assert client._server_info.get("cluster") == nats_cluster.cluster_name
    finally:
        await client.close()


async def test_r3_stream_survives_killing_its_leader(nats_cluster: NatsCluster) -> None:
    client = await nats.connect(servers=nats_cluster.urls, max_reconnect_attempts=-1)
    try:
        js = client.jetstream(timeout=10.0)
        await js.add_stream(api.StreamConfig(name="PROBE", subjects=["probe.>"], num_replicas=3))
        await js.create_key_value(api.KeyValueConfig(bucket="probe", replicas=3))
        for n in range(5):
            await js.publish(f"probe.{n}", b"before")
        leader = await nats_cluster.stream_leader("PROBE")
        assert 0 <= await nats_cluster.bucket_leader("probe") < 3

        await nats_cluster.akill(leader)
        assert not nats_cluster.nodes[leader].running
        successor = await nats_cluster.stream_leader("PROBE")
        assert successor != leader

        ack = await js.publish("probe.after", b"after")
        assert ack.seq == 6
        info = await js.stream_info("PROBE")
        assert info.state.messages == 6

        await nats_cluster.arestart(leader)
        assert nats_cluster.nodes[leader].running
        # The restarted node catches up as a follower: all three replicas hold every message.
        ack = await js.publish("probe.rejoined", b"again")
        assert ack.seq == 7
        info = await js.stream_info("PROBE")
        assert info.cluster is not None
        peers = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
        assert peers == set(nats_cluster.names)
    finally:
        await client.close()
