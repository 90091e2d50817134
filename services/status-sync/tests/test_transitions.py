"""The Kubernetes Event recorded for each phase transition."""

from __future__ import annotations

import msgspec

from ark_mesh.contracts import Condition, QueryPhase, QueryStatus, StatusUpdate
from ark_mesh.status_sync import transition


def update(
    phase: QueryPhase, *, attempt: int = 1, seq: int = 1, generation: int = 1
) -> StatusUpdate:
    return StatusUpdate(
        query_id="uid-1",
        name="q",
        namespace="ns",
        tenant="ns",
        generation=generation,
        attempt=attempt,
        seq=seq,
        phase=phase,
        status=QueryStatus(phase=phase),
        timestamp="2026-01-01T00:00:00Z",
    )


def test_transition_events_use_ark_condition_reasons() -> None:
    timed_out = msgspec.structs.replace(
        update("error"),
        status=QueryStatus(
            phase="error",
            conditions=[
                Condition(
                    type="Completed",
                    status="True",
                    reason="TimedOutInExecution",
                    message="Query timed out during execution",
                )
            ],
        ),
    )
    event = transition(timed_out, "running")
    assert (event.reason, event.type) == ("TimedOutInExecution", "Warning")
    assert event.note == "Query timed out during execution (running -> error)"
    bare = transition(update("running"), None)
    assert (bare.reason, bare.type) == ("QueryRunning", "Normal")
    assert bare.note == "phase running (new -> running)"
