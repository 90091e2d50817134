"""The Helm values shown in ``docs/operations.md`` render with the real helm and reach the services.

Each ``yaml`` block of that page is a values file an operator may copy. It must pass the chart's
schema, render, produce config files every service decodes without ignoring a key, and keep
user-chosen map keys (tenant names) exactly as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, Chart
from .test_chart import CONFIG_TYPES, decode, unknown_keys

OPERATIONS = REPO / "docs" / "operations.md"
FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = [yaml.safe_load(code) for code in FENCE.findall(OPERATIONS.read_text())]


def test_the_page_has_values_blocks() -> None:
    assert len(BLOCKS) >= 4
    assert all(isinstance(block, dict) for block in BLOCKS)


@pytest.mark.parametrize("values", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_values_block_renders_and_reaches_every_service(
    chart: Chart, values: dict[str, Any], tmp_path: Path
) -> None:
    rendered = chart.render(None, values)
    components = [c for c in CONFIG_TYPES if rendered.has("ConfigMap", rendered.name(c))]
    assert "controller" in components
    for component in components:
        raw = yaml.safe_load(rendered.config(component))
        assert not unknown_keys(raw, CONFIG_TYPES[component]), component
        config = decode(rendered, component, tmp_path)
        tenants = values.get("bus", {}).get("encryption", {}).get("tenants", {})
        if tenants and getattr(config, "bus", None) is not None:
            assert set(config.bus.encryption.tenants) == set(tenants), (
                f"{component}: tenant names changed on the way to the config file"
            )
