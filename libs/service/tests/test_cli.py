"""The shared entry point: exit code 2 for configuration a restart cannot fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import structlog

from ark_mesh.bus import AuthSettings, BusConfig, ConnectionSettings
from ark_mesh.service import ConfigError, HealthServer, service_main
from ark_mesh.service.cli import check_bus_security


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``service_main`` configures the process's logging onto pytest's captured stdout; undo it so
    later tests do not write into a file pytest has closed."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


class Health(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 0


class Config(msgspec.Struct, frozen=True, kw_only=True):
    health: Health = Health()
    slots: int = 1


class Never:
    name = "never"

    async def start(self, health: HealthServer) -> None:  # pragma: no cover - never started
        raise AssertionError("must not start with a bad configuration")

    async def stop(self, grace: float) -> None:  # pragma: no cover
        pass


def test_invalid_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("slots: lots\n")
    code = service_main(
        ["--config", str(path)],
        name="demo",
        description="d",
        config_type=Config,
        build=lambda c: Never(),
    )
    assert code == 2
    assert "$.slots" in capsys.readouterr().err


def test_rule_broken_at_build_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def build(config: Config) -> Never:
        raise ConfigError("slots must be even")

    code = service_main(
        [],
        name="demo",
        description="d",
        config_type=Config,
        build=build,
    )
    assert code == 2
    assert "slots must be even" in capsys.readouterr().err


class BusBacked(msgspec.Struct, frozen=True, kw_only=True):
    """A service config with a bus, as every NATS-backed service has."""

    health: Health = Health()
    bus: BusConfig = BusConfig()


def test_a_service_on_nats_without_credentials_exits_2_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("bus: {connection: {servers: ['nats://127.0.0.1:1']}}\n")
    code = service_main(
        ["--config", str(path)],
        name="demo",
        description="d",
        config_type=BusBacked,
        build=lambda c: Never(),
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "bus.connection.auth is not configured" in err
    assert "bus.connection.insecure: true" in err


def test_insecure_is_allowed_and_said_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    insecure = BusConfig(connection=ConnectionSettings(insecure=True))
    check_bus_security("demo", insecure)
    assert "INSECURE: connecting to NATS without credentials" in capsys.readouterr().out
    check_bus_security("demo", None)  # a service without a bus (preset simple's controller)
    with pytest.raises(ConfigError, match="choose one method"):
        check_bus_security(
            "demo",
            BusConfig(
                connection=ConnectionSettings(
                    auth=AuthSettings(creds_file="/c", nkey_seed_file="/n")
                )
            ),
        )
