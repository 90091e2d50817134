"""The topology on a real 3-node cluster: every stream, bucket and durable consumer at R3."""

from __future__ import annotations

import asyncio

import msgspec

from ark_mesh.bus import Bus, Topology, TopologyConfig
from ark_mesh.devmesh.mesh import replicated_topology
from ark_mesh.testing.nats_cluster import NatsCluster


async def test_replicated_topology_places_everything_on_three_nodes(
    nats_cluster: NatsCluster,
) -> None:
    config = msgspec.convert(replicated_topology(3), TopologyConfig)
    async with await Bus.connect(servers=tuple(nats_cluster.urls)) as bus:
        plan = Topology(config)
        first = await plan.provision(bus)
        assert {result.action for result in first.results} == {"created"}
        second = await Topology(config).provision(bus)
        assert not second.changed

        for stream in plan.streams:
            info = await bus.jsm.stream_info(stream.name)
            assert info.config.num_replicas == 3, stream.name
            assert info.cluster is not None
            members = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
            assert members == set(nats_cluster.names), stream.name
            if stream.kind == "kv":
                # Reads go to the leader: a lagging follower must not answer "no such key".
                assert not info.config.allow_direct, stream.name
        for consumer in plan.consumers:
            cinfo = await bus.jsm.consumer_info(consumer.stream, consumer.durable)
            assert cinfo.cluster is not None
            # Left unset, a durable consumer takes its stream's replica count.
            members = {cinfo.cluster.leader, *(r.name for r in cinfo.cluster.replicas or [])}
            assert members == set(nats_cluster.names), consumer.durable


async def test_an_explicit_consumer_replica_count_is_asked_for_and_checked(
    nats_cluster: NatsCluster,
) -> None:
    settings = replicated_topology(3)
    settings["consumers"] = [
        {
            "stream": "ARK_STATUS",
            "durable": "status-sync",
            "filterSubject": "ark.*.query.*.status",
            "replicas": 1,
        }
    ]
    config = msgspec.convert(settings, TopologyConfig)
    async with await Bus.connect(servers=tuple(nats_cluster.urls)) as bus:
        await Topology(config).provision(bus)
        cinfo = await bus.jsm.consumer_info("ARK_STATUS", "status-sync")
        assert cinfo.config.num_replicas == 1
        assert cinfo.cluster is not None
        assert not cinfo.cluster.replicas
        assert not (await Topology(config).provision(bus)).changed


async def test_provisioning_waits_out_a_cluster_without_quorum(nats_cluster: NatsCluster) -> None:
    """With two of three nodes down there is no meta leader and every JetStream request goes
    unanswered, and with one back R3 streams cannot be placed yet; provisioning retries (each
    step is idempotent) and completes once all are back."""
    config = msgspec.convert(replicated_topology(3), TopologyConfig)
    async with await Bus.connect(servers=(nats_cluster.urls[0],), request_timeout=1.0) as bus:
        await nats_cluster.akill(1)
        await nats_cluster.akill(2)
        provisioning = asyncio.create_task(Topology(config).provision(bus))
        await asyncio.sleep(1.0)
        assert not provisioning.done(), "nothing can be created without a quorum"
        # One node back gives a quorum, but an R3 stream needs all three ("no suitable peers").
        await nats_cluster.arestart(1)
        await nats_cluster.arestart(2)
        report = await provisioning
        assert {result.action for result in report.results} <= {"created", "unchanged"}
        assert not (await Topology(config).provision(bus)).changed
