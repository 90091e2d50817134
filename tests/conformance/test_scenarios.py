"""Ark's behaviours, scenario by scenario, in every preset (see ``conftest.py`` and the README).

Each ``scenarios/<name>.yaml`` runs once per preset against that preset's shared mesh, in a
namespace of its own; pytest reports each (preset, scenario) pair on its own line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario(run_in_mesh: Callable[[Path], Awaitable[None]], scenario: Path) -> None:
    await run_in_mesh(scenario)


async def test_a_failing_scenario_names_the_assertion(
    run_in_mesh: Callable[[Path], Awaitable[None]],
) -> None:
    """The engine itself can fail: a wrong expectation is reported with path, expected, actual."""
    scenario = Path(__file__).parent / "failing" / "wrong-content.yaml"
    with pytest.raises(AssertionError) as failure:
        await run_in_mesh(scenario)
    message = str(failure.value)
    assert "step 'wrong-expectation', operation 2 (assert)" in message
    assert (
        "status.response.content: expected 'Something the model never said.', "
        "actual 'Echo: Echo this sentence.'"
    ) in message
