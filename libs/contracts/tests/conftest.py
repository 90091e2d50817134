"""Sample Ark manifests shared by the contracts tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLES = Path(__file__).parent / "samples"


def load_sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return data


@pytest.fixture(name="load_sample")
def load_sample_fixture() -> Callable[[str], dict[str, Any]]:
    """The sample loader, as a fixture: test modules cannot import conftest in importlib mode."""
    return load_sample


@pytest.fixture(params=sorted(p.name for p in SAMPLES.glob("*.yaml")))
def sample(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_sample(request.param)
