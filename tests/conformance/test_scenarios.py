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
