"""The status-update ordering rules on their own (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from ark_mesh.contracts import QueryPhase, QueryStatus, StatusUpdate
from ark_mesh.contracts.ordering import decide


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


@pytest.mark.parametrize(
    ("current", "incoming", "applied"),
    [
        (None, "running", True),
        ("", "pending", True),
        ("pending", "running", True),
        ("queued", "running", True),
        ("running", "done", True),
        ("running", "input-required", True),
        ("input-required", "running", False),
        ("running", "queued", False),
        ("running", "pending", False),
        ("running", "running", False),
        ("done", "error", False),
        ("error", "done", False),
        ("canceled", "running", False),
        ("done", "done", False),
    ],
)
def test_phases_only_move_forward(current: str | None, incoming: QueryPhase, applied: bool) -> None:
    status: dict[str, Any] | None = None if current is None else {"phase": current}
    assert decide(update(incoming), status).apply is applied


def test_within_one_rank_the_newer_attempt_and_seq_wins() -> None:
    older = update("provisioning", attempt=1, seq=2)
    newer = update("pending", attempt=2, seq=1)
    assert not decide(older, {"phase": "pending"}, newest=newer).apply
    assert decide(newer, {"phase": "provisioning"}, newest=newer).apply


def test_an_update_a_newer_one_follows_is_skipped() -> None:
    running = update("running", seq=1)
    done = update("done", seq=2)
    verdict = decide(running, {"phase": "pending"}, newest=done)
    assert not verdict.apply
    assert "superseded" in verdict.reason
    assert decide(done, {"phase": "pending"}, newest=running).apply
    assert not decide(
        update("done", generation=1), {}, newest=update("running", generation=2)
    ).apply
