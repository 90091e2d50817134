"""The public surface is exactly ``__all__`` (httpx style): nothing leaks, nothing is missing."""

from __future__ import annotations

import ark_mesh.contracts as contracts


def test_all_names_exist() -> None:
    missing = [name for name in contracts.__all__ if not hasattr(contracts, name)]
    assert missing == []


def test_every_public_name_is_in_all() -> None:
    public = {
        name
        for name, value in vars(contracts).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("ark_mesh.")
    }
    assert public - set(contracts.__all__) == set()
