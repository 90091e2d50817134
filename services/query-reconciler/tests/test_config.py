"""The configuration file and its environment overrides, as Helm and operators use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ark_mesh.query_reconciler import QueryReconcilerConfig
from ark_mesh.service import ConfigError, load_config


def test_file_and_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "bus:\n"
        "  connection: {servers: [nats://nats-a:4222]}\n"
        "  worker: {slots: 32}\n"
        "resources: {source: manifests, manifests: /etc/ark/manifests}\n"
        "memory: {backend: jetstream}\n"
    )
    config = load_config(
        QueryReconcilerConfig,
        path,
        environ={
            "ARK_MESH__BUS__CONNECTION__SERVERS": "[nats://nats-b:4222]",
            "ARK_MESH__HEALTH__PORT": "9090",
            "ARK_MESH__INSTANCE": "replica-7",
        },
    )
    assert config.bus.connection.servers == ("nats://nats-b:4222",)
    assert config.bus.worker.slots == 32
    assert config.resources.source == "manifests"
    assert config.memory.backend == "jetstream"
    assert config.health.port == 9090
    assert config.identity() == "replica-7"
    # Untouched sections keep their defaults, including the bus topology.
    assert config.bus.topology.work_consumers[0].durable == "query-reconciler"


def test_a_bad_value_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("memory: {backend: redis}\n")
    with pytest.raises(ConfigError, match=r"memory.backend"):
        load_config(QueryReconcilerConfig, path, environ={})


def test_the_model_connection_pool_is_sized_by_configuration(tmp_path: Path) -> None:
    """``models.maxConnections`` bounds the model client's pool; by default it is far above
    the SDK's 1,000, which made 5,000 concurrent slow queries run in steps of 1,000."""
    assert load_config(QueryReconcilerConfig, None, environ={}).models.max_connections == 10_000
    path = tmp_path / "config.yaml"
    path.write_text("models: {maxConnections: 250}\n")
    config = load_config(QueryReconcilerConfig, path, environ={})
    assert config.models.client().max_connections == 250
    path.write_text("models: {maxConnections: 0}\n")
    with pytest.raises(ConfigError, match=r"maxConnections"):
        load_config(QueryReconcilerConfig, path, environ={})
