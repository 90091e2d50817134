"""Leader election between real processes: one leader, and fail-over after SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from ark_mesh.kube import LEASES, KubeClient, LeaderElectionConfig, LeaderElector
from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.tracking import ObjectTracker

CANDIDATE = Path(__file__).with_name("leader_candidate.py")
LEASE_DURATION = 2.0


def parse_micro_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Candidate:
    def __init__(self, identity: str, process: asyncio.subprocess.Process) -> None:
        self.identity = identity
        self.process = process

    async def next_line(self) -> str:
        """The next ``leading …``/``lost …`` line (log lines in between are skipped)."""
        assert self.process.stdout is not None
        while True:
            line = (await self.process.stdout.readline()).decode()
            if not line or line.startswith(("leading ", "lost ")):
                return line.strip()


@pytest.fixture
async def candidates(kube_emulator: KubeEmulator) -> AsyncIterator[dict[str, Candidate]]:
    started: dict[str, Candidate] = {}
    for identity in ("alpha", "beta"):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CANDIDATE),
            "--kubeconfig",
            str(kube_emulator.kubeconfig_path),
            "--identity",
            identity,
            "--lease-duration",
            str(LEASE_DURATION),
            stdout=asyncio.subprocess.PIPE,
        )
        started[identity] = Candidate(identity, process)
    yield started
    for candidate in started.values():
        if candidate.process.returncode is None:
            candidate.process.kill()
        await candidate.process.wait()


async def test_one_leader_and_failover_after_sigkill(
    kube_emulator: KubeEmulator, kube: KubeClient, candidates: dict[str, Candidate]
) -> None:
    with ObjectTracker(kube_emulator, "leases", "default", "ark-mesh-controller") as lease_log:
        lines = {name: asyncio.create_task(c.next_line()) for name, c in candidates.items()}
        done, _ = await asyncio.wait(
            lines.values(), timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        assert done, "no candidate became leader"
        leader_name = next(name for name, task in lines.items() if task in done)
        follower_name = next(name for name in candidates if name != leader_name)
        assert lines[leader_name].result() == f"leading {leader_name}"

        # the leader keeps renewing while the follower waits: several renewals, one holder
        async with asyncio.timeout(30):
            await lease_log.wait_for(lambda changes: len(changes) >= 4)
        holders = {c.object["spec"]["holderIdentity"] for c in lease_log.changes}
        assert holders == {leader_name}
        assert not lines[follower_name].done()

        candidates[leader_name].process.send_signal(signal.SIGKILL)
        await candidates[leader_name].process.wait()
        last_renewal = parse_micro_time(
            (await kube.get_object(LEASES, "default", "ark-mesh-controller"))["spec"]["renewTime"]
        )

        # generous bound: the follower must take over, proven by its own output and the Lease
        line = await asyncio.wait_for(lines[follower_name], timeout=LEASE_DURATION + 30)
        assert line == f"leading {follower_name}"

    lease = await kube.get_object(LEASES, "default", "ark-mesh-controller")
    spec = lease["spec"]
    assert spec["holderIdentity"] == follower_name
    assert spec["leaseTransitions"] == 1
    taken_after = (parse_micro_time(spec["acquireTime"]) - last_renewal).total_seconds()
    # never before the dead leader's lease ran out (same machine, same clock)…
    assert taken_after >= LEASE_DURATION - 0.05
    # …and within the lease duration plus the follower's retry period (generous slack)
    assert taken_after <= LEASE_DURATION + 10
    transitions = [c.object["spec"]["holderIdentity"] for c in lease_log.changes]
    first_follower = transitions.index(follower_name)
    assert set(transitions[:first_follower]) == {leader_name}
    assert set(transitions[first_follower:]) == {follower_name}


async def test_released_lease_is_taken_without_waiting_for_expiry(kube: KubeClient) -> None:
    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(
            namespace="default",
            name="handover",
            identity=identity,
            lease_duration=60,
            renew_deadline=40,
            retry_period=0.1,
        )

    first, second = LeaderElector(kube, config("one")), LeaderElector(kube, config("two"))
    assert await first.run(lambda: asyncio.sleep(0, result="work done")) == "work done"
    # a lease of 60 s was released, so the second candidate need not wait a minute
    await asyncio.wait_for(second.acquire(), timeout=30)
    assert second.is_leader
    assert not first.is_leader
    lease = await kube.get_object(LEASES, "default", "handover")
    assert lease["spec"]["holderIdentity"] == "two"


def test_config_rejects_unsafe_timings() -> None:
    with pytest.raises(ValueError, match="lease_duration must be greater than renew_deadline"):
        LeaderElectionConfig(
            namespace="d", name="n", identity="i", lease_duration=5, renew_deadline=5
        )
    with pytest.raises(ValueError, match="renew_deadline must be greater than retry_period"):
        LeaderElectionConfig(
            namespace="d",
            name="n",
            identity="i",
            lease_duration=5,
            renew_deadline=2,
            retry_period=2,
        )
