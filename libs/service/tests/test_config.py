"""Configuration: file, environment overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import ConfigError, load_config


class Nats(msgspec.Struct, rename="camel", kw_only=True):
    url: str = "nats://127.0.0.1:4222"
    connect_timeout: float = 2.0


class Reconciliation(msgspec.Struct, rename="camel", kw_only=True):
    default_reconciliation: str = "inController"
    allowed_modes: list[str] = msgspec.field(default_factory=lambda: ["inController"])


class Config(msgspec.Struct, rename="camel", kw_only=True):
    nats: Nats | None = None
    reconciliation: Reconciliation = msgspec.field(default_factory=Reconciliation)
    slots: int = 8


def test_defaults_without_file_or_environment() -> None:
    config = load_config(Config, environ={})
    assert config.nats is None
    assert config.slots == 8
    assert config.reconciliation.allowed_modes == ["inController"]


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "nats:\n  url: nats://nats:4222\nreconciliation:\n  defaultReconciliation: standalone\n"
    )
    config = load_config(
        Config,
        environ={
            "ARK_MESH_CONFIG": str(path),
            "ARK_MESH__SLOTS": "32",
            "ARK_MESH__NATS__CONNECT_TIMEOUT": "0.5",
            "ARK_MESH__RECONCILIATION__ALLOWEDMODES": "[standalone, broker]",
            "UNRELATED": "x",
        },
    )
    assert config.nats == Nats(url="nats://nats:4222", connect_timeout=0.5)
    assert config.slots == 32
    assert config.reconciliation.default_reconciliation == "standalone"
    assert config.reconciliation.allowed_modes == ["standalone", "broker"]


def test_invalid_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\.slots"):
        load_config(Config, environ={"ARK_MESH__SLOTS": "many"})


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(Config, missing, environ={})


def test_non_mapping_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Config, path, environ={})


class Strict(ConfigSection, frozen=True, kw_only=True):
    health_port: int = 8080
    tenants: dict[str, int] = msgspec.field(default_factory=dict)


def test_a_config_file_has_camel_case_keys_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    """A misspelt or snake_case key would otherwise be ignored and its default used unseen."""
    path = tmp_path / "config.yaml"
    path.write_text("healthPort: 9000\ntenants: {team-a: 1}\n")
    config = load_config(Strict, path, environ={})
    assert config.health_port == 9000
    assert config.tenants == {"team-a": 1}, "names chosen by the user are kept as written"
    path.write_text("health_port: 9000\n")
    with pytest.raises(ConfigError, match="health_port"):
        load_config(Strict, path, environ={})
