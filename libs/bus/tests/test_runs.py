"""Run logs in ``ark-runs``: round trip, generations, the revision check, deletion, and sealing
per tenant (another tenant's key, or none, cannot read a log; a log moved to another key does
not open)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ark_mesh.bus import (
    Bus,
    EncryptionKeySettings,
    EncryptionSettings,
    RunLogConflictError,
    RunLogStore,
    RunLogUnreadableError,
    TenantEncryptionSettings,
    Topology,
    run_key,
)
from ark_mesh.bus.encryption import sealed_key_id
from ark_mesh.contracts import subjects
from ark_mesh.contracts.approvals import (
    ApprovalDecision,
    ApprovalRequest,
    ModelStep,
    RunLog,
    ToolStep,
)
from ark_mesh.testing.nats_server import NatsServer

TENANT = "acme"
SECRET = "the launch codes are 0000"


def _log(query_id: str = "q1", generation: int = 1, **changes: object) -> RunLog:
    fields: dict[str, object] = {
        "query_id": query_id,
        "generation": generation,
        "steps": [
            ModelStep(
                speaker="helper",
                message={
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call-1",
                            "type": "function",
                            "function": {"name": "launch", "arguments": '{"code": "0000"}'},
                        }
                    ],
                },
            ),
            ToolStep(call_id="call-1", name="launch", text=SECRET),
        ],
        "chunk_seq": 3,
    }
    fields.update(changes)
    return RunLog(**fields)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def sealed_bus(
    nats_server: NatsServer, topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Bus]:
    monkeypatch.setenv("ARK_TEST_RUNS_KEY", base64.b64encode(os.urandom(32)).decode())
    settings = EncryptionSettings(
        tenants={
            TENANT: TenantEncryptionSettings(
                keys=(EncryptionKeySettings(id="runs-1", env="ARK_TEST_RUNS_KEY"),)
            )
        }
    )
    connected = await Bus.connect(
        servers=(nats_server.url,), name="sealed", connect_attempts=3, encryption=settings
    )
    yield connected
    await connected.close()


async def test_a_saved_log_loads_back_with_its_revision(bus: Bus, topology: Topology) -> None:
    store = RunLogStore(bus)
    assert (await store.load(TENANT, "q1", 1)).log is None
    first = await store.save(TENANT, _log(), revision=0)
    paused = _log(
        pending=ApprovalRequest(
            task_id="t1",
            agent="helper",
            agent_namespace=TENANT,
            tool_calls=[{"id": "call-2", "type": "function"}],
            requested_at="2026-01-01T00:00:00Z",
        )
    )
    second = await store.save(TENANT, paused, revision=first)

    stored = await store.load(TENANT, "q1", 1)

    assert second > first
    assert stored.revision == second
    assert stored.log == paused
    assert stored.log.round == 0
    decided = ApprovalDecision(task_id="t1", decision="approved", decided_at="2026-01-01T00:01:00Z")
    resumed = _log(decisions=[decided])
    await store.save(TENANT, resumed, revision=second)
    again = await store.load(TENANT, "q1", 1)
    assert again.log is not None
    assert again.log.round == 1
    assert again.log.decision_for("t1") == decided


async def test_a_log_of_another_generation_is_never_returned(bus: Bus, topology: Topology) -> None:
    store = RunLogStore(bus)
    revision = await store.save(TENANT, _log(generation=1), revision=0)

    newer = await store.load(TENANT, "q1", 2)

    assert newer.log is None
    assert newer.revision == revision  # …but the next generation's first save names it
    await store.save(TENANT, _log(generation=2), revision=newer.revision)
    assert (await store.load(TENANT, "q1", 1)).log is None
    loaded = (await store.load(TENANT, "q1", 2)).log
    assert loaded is not None
    assert loaded.generation == 2


async def test_a_second_writer_cannot_interleave(bus: Bus, topology: Topology) -> None:
    store = RunLogStore(bus)
    base = await store.save(TENANT, _log(chunk_seq=1), revision=0)
    with pytest.raises(RunLogConflictError, match="query q1"):
        await store.save(TENANT, _log(chunk_seq=9), revision=0)  # thought it was first
    ours = await store.save(TENANT, _log(chunk_seq=2), revision=base)
    with pytest.raises(RunLogConflictError):
        await store.save(TENANT, _log(chunk_seq=9), revision=base)  # read before our save

    stored = await store.load(TENANT, "q1", 1)
    assert stored.revision == ours
    assert stored.log is not None
    assert stored.log.chunk_seq == 2


async def test_a_deleted_log_is_gone_and_the_key_can_be_written_again(
    bus: Bus, topology: Topology
) -> None:
    store = RunLogStore(bus)
    await store.save(TENANT, _log(), revision=0)

    await store.delete(TENANT, "q1")
    await store.delete(TENANT, "never-written")  # nothing to delete is fine

    gone = await store.load(TENANT, "q1", 1)
    assert gone.log is None
    assert gone.revision > 0  # the purge marker
    with pytest.raises(RunLogConflictError):
        await store.save(TENANT, _log(), revision=0)
    await store.save(TENANT, _log(generation=2), revision=gone.revision)
    assert (await store.load(TENANT, "q1", 2)).log is not None


async def test_logs_are_sealed_with_the_tenants_key(sealed_bus: Bus, bus: Bus) -> None:
    sealed = RunLogStore(sealed_bus)
    await sealed.save(TENANT, _log(), revision=0)

    kv = await bus.key_value(subjects.RUNS_BUCKET)
    stored = (await kv.get(run_key(TENANT, "q1"))).value or b""
    assert SECRET.encode() not in stored
    assert b"launch" not in stored
    assert sealed_key_id(stored) == "runs-1"
    loaded = (await sealed.load(TENANT, "q1", 1)).log
    assert loaded is not None
    assert loaded.steps[1] == ToolStep(call_id="call-1", name="launch", text=SECRET)
    # A process without the tenant's key cannot replay it, and says so instead of starting over.
    with pytest.raises(RunLogUnreadableError, match="no key configured for tenant 'acme'"):
        await RunLogStore(bus).load(TENANT, "q1", 1)
    # The same ciphertext under another query's key does not open.
    await kv.put(run_key(TENANT, "q2"), stored)
    with pytest.raises(RunLogUnreadableError, match="authentication failed"):
        await sealed.load(TENANT, "q2", 1)


async def test_the_bucket_is_part_of_the_topology(bus: Bus, topology: Topology) -> None:
    info = await bus.jsm.stream_info(f"KV_{subjects.RUNS_BUCKET}")
    assert info.config.max_msgs_per_subject == 1
    assert info.config.max_age == topology.config.runs_bucket.ttl > 0
