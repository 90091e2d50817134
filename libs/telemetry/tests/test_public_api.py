"""The public surface of ark_mesh.telemetry is exactly what ``__all__`` lists."""

from __future__ import annotations

import ark_mesh.telemetry as telemetry


def test_all_lists_every_public_name_and_nothing_else() -> None:
    exported = {name for name in dir(telemetry) if not name.startswith("_")}
    modules = {name for name in exported if type(getattr(telemetry, name)).__name__ == "module"}
    assert set(telemetry.__all__) == exported - modules
    assert sorted(telemetry.__all__) == telemetry.__all__
