"""Topology: provisioning is idempotent, changes JetStream cannot apply are reported clearly,
and dedicated tenants get their own work streams without overlapping the shared ones."""

from __future__ import annotations

import msgspec
import pytest

from ark_mesh.bus import (
    Bus,
    ConsumerSettings,
    Publisher,
    PublishError,
    StreamSettings,
    Topology,
    TopologyConfig,
    TopologyConfigError,
    TopologyConflictError,
)
from ark_mesh.contracts import subjects


async def test_second_provisioning_changes_nothing(bus: Bus, kit: type) -> None:
    plan = Topology(kit.small_topology())
    first = await plan.provision(bus)
    before = {name: await bus.jsm.stream_info(name) for name in (s.name for s in plan.streams)}

    second = await Topology(kit.small_topology()).provision(bus)

    assert first.changed
    assert {result.action for result in first.results} == {"created"}
    assert not second.changed
    assert {result.action for result in second.results} == {"unchanged"}
    for name, info in before.items():
        again = await bus.jsm.stream_info(name)
        assert again.created == info.created
        assert again.config == info.config
    names = {result.name for result in second.results}
    assert {
        "ARK_WORK",
        "ARK_CHUNKS",
        "ARK_EVENTS",
        "ARK_STATUS",
        "ARK_MEMORY",
        "ARK_DLQ",
        "KV_ark-queries",
        "KV_ark-cancel",
        "KV_ark-runs",
        "KV_ark-responses",
        "KV_ark-sessions",
        "ARK_WORK/query-reconciler",
        "ARK_STATUS/status-sync",
    } <= names


async def test_streams_have_the_configured_shape(bus: Bus, topology: Topology) -> None:
    work = await bus.jsm.stream_info(subjects.ARK_WORK)
    assert work.config.retention == "workqueue"
    assert work.config.subjects == ["ark.*.work.>"]
    chunks = await bus.jsm.stream_info(subjects.ARK_CHUNKS)
    assert chunks.config.retention == "limits"
    assert chunks.config.max_age == 3600
    assert chunks.config.allow_direct is True
    consumer = await bus.jsm.consumer_info(subjects.ARK_WORK, "query-reconciler")
    assert consumer.config.filter_subject == "ark.*.work.query"
    assert consumer.config.ack_policy == "explicit"
    kv = await bus.key_value(subjects.QUERIES_BUCKET)
    revision = await kv.create("ark.q1", b"{}")
    assert revision >= 1


async def test_editable_change_is_applied_in_place(bus: Bus, kit: type) -> None:
    await Topology(kit.small_topology()).provision(bus)
    default = TopologyConfig().chunks
    changed = kit.small_topology(chunks=msgspec.structs.replace(default, max_age=7200))

    report = await Topology(changed).provision(bus)

    result = report.by_name()["ARK_CHUNKS"]
    assert result.action == "updated"
    assert result.fields == ("max_age",)
    info = await bus.jsm.stream_info(subjects.ARK_CHUNKS)
    assert info.config.max_age == 7200


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        (StreamSettings(storage="memory"), "storage"),
        # 2.9 accepts compression and drops it; only the echoed config tells.
        (StreamSettings(compression="s2"), "compression"),
        (StreamSettings(allow_msg_ttl=True), "allow_msg_ttl"),
        (StreamSettings(replicas=3), "num_replicas"),
    ],
)
async def test_change_the_server_cannot_apply_names_stream_and_field(
    bus: Bus, kit: type, setting: StreamSettings, field: str
) -> None:
    await Topology(kit.small_topology()).provision(bus)
    with pytest.raises(TopologyConflictError) as caught:
        await Topology(kit.small_topology(events=setting)).provision(bus)
    assert caught.value.name == subjects.ARK_EVENTS
    assert caught.value.field == field
    assert subjects.ARK_EVENTS in str(caught.value)
    assert field in str(caught.value)


async def test_consumer_change_is_applied_in_place(bus: Bus, kit: type) -> None:
    base = kit.small_topology()
    await Topology(base).provision(bus)
    slower = msgspec.structs.replace(
        base,
        work_consumers=tuple(
            msgspec.structs.replace(consumer, ack_wait=45.0, max_ack_pending=7)
            for consumer in base.work_consumers
        ),
    )
    report = await Topology(slower).provision(bus)
    result = report.by_name()["ARK_WORK/query-reconciler"]
    assert result.action == "updated"
    assert set(result.fields) == {"ack_wait", "max_ack_pending"}
    info = await bus.jsm.consumer_info(subjects.ARK_WORK, "query-reconciler")
    assert info.config.ack_wait == 45.0
    assert info.config.max_ack_pending == 7


async def test_consumer_the_server_refuses_is_reported(bus: Bus, kit: type) -> None:
    base = kit.small_topology()
    await Topology(base).provision(bus)
    # A second consumer over query work would overlap on a work-queue stream.
    overlapping = msgspec.structs.replace(
        base,
        consumers=(
            ConsumerSettings(
                stream=subjects.ARK_WORK, durable="spy", filter_subject="ark.*.work.query"
            ),
        ),
    )
    with pytest.raises(TopologyConflictError) as caught:
        await Topology(overlapping).provision(bus)
    assert caught.value.name == "ARK_WORK/spy"
    assert "server refused" in str(caught.value)
    assert "not unique" in str(caught.value)


async def test_dedicated_tenant_gets_its_own_work_stream(bus: Bus, kit: type) -> None:
    config = kit.small_topology(dedicated_tenants=("vip",), shared_tenants=("acme", "beta"))
    plan = Topology(config)
    await plan.provision(bus)
    publisher = await Publisher.create(bus)

    vip = plan.work_binding("query", tenant="vip")
    shared = plan.work_binding("query")
    assert vip.stream == "ARK_WORK_TENANT_vip"
    assert shared.stream == "ARK_WORK_QUERY"
    ack_vip = await publisher.publish(subjects.work_query("vip"), kit.request(1), msg_id="v")
    ack_acme = await publisher.publish(subjects.work_query("acme"), kit.request(2), msg_id="a")
    ack_beta = await publisher.publish(subjects.work_responses("beta"), kit.request(3))
    assert ack_vip.stream == "ARK_WORK_TENANT_vip"
    assert ack_acme.stream == "ARK_WORK_QUERY"
    assert ack_beta.stream == "ARK_WORK_RESPONSES"
    # A tenant in neither list is refused loudly rather than queued where nobody looks.
    with pytest.raises(PublishError, match=r"ark\.stranger\.work\.query"):
        await publisher.publish(subjects.work_query("stranger"), kit.request(4))
    await publisher.close()

    info = await bus.jsm.consumer_info(vip.stream, vip.durable)
    assert info.config.filter_subject == "ark.vip.work.query"
    assert info.num_pending == 1


async def test_switching_to_dedicated_tenants_over_an_old_shared_stream_is_a_conflict(
    bus: Bus, kit: type
) -> None:
    await Topology(kit.small_topology()).provision(bus)
    sharded = kit.small_topology(dedicated_tenants=("vip",), shared_tenants=("acme",))
    with pytest.raises(TopologyConflictError) as caught:
        await Topology(sharded).provision(bus)
    assert caught.value.field == "subjects"
    assert "overlap" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dedicated_tenants": ("vip",)}, "needs sharedTenants"),
        ({"shared_tenants": ("a",)}, "only meaningful with dedicatedTenants"),
        ({"dedicated_tenants": ("a",), "shared_tenants": ("a",)}, "both dedicated and shared"),
        ({"dedicated_tenants": ("a.b",), "shared_tenants": ()}, "contains '.'"),
        ({"dedicated_tenants": ("a", "a"), "shared_tenants": ()}, "twice"),
    ],
)
def test_inconsistent_configuration_is_explained(
    kit: type, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(TopologyConfigError, match=message):
        Topology(kit.small_topology(**changes))


def test_unknown_binding_lists_what_exists(kit: type) -> None:
    with pytest.raises(TopologyConfigError, match="dedicated tenants"):
        Topology(kit.small_topology()).work_binding("query", tenant="vip")


def test_config_decodes_from_plain_values() -> None:
    from ark_mesh.bus import BusConfig

    config = msgspec.convert({"topology": {"chunks": {"maxAge": 5}}}, BusConfig)
    assert config.topology.chunks.max_age == 5
    with pytest.raises(msgspec.ValidationError, match="storage"):
        msgspec.convert({"topology": {"work": {"storage": "tape"}}}, BusConfig)
