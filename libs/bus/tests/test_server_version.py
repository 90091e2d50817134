"""The supported nats-server floor: checked against the real server's INFO at every connect."""

from __future__ import annotations

import subprocess

import pytest

from ark_mesh.bus import Bus, ServerVersionError
from ark_mesh.bus.connection import parse_server_version
from ark_mesh.testing.nats_server import NatsServer


def _binary_version(server: NatsServer) -> str:
    # "nats-server: v2.9.10" — asked of the binary itself, not assumed.
    out = subprocess.run([server.binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().rsplit("v", 1)[-1]


def test_versions_compare_numerically() -> None:
    assert parse_server_version("2.10.27") > parse_server_version("2.9.10")
    assert parse_server_version("v2.11.0-RC.1") == (2, 11, 0)
    assert parse_server_version("2.9") == (2, 9, 0)
    with pytest.raises(ValueError, match="not a nats-server version"):
        parse_server_version("latest")


async def test_a_server_at_or_above_the_floor_is_accepted(nats_server: NatsServer) -> None:
    version = _binary_version(nats_server)
    async with await Bus.connect(servers=(nats_server.url,), min_server_version=version) as bus:
        assert bus.nc._server_info["version"] == version
    async with await Bus.connect(servers=(nats_server.url,)) as bus:  # the default floor
        assert parse_server_version(bus.nc._server_info["version"]) >= (2, 9, 0)


async def test_an_older_server_is_refused_naming_version_and_floor(
    nats_server: NatsServer,
) -> None:
    version = _binary_version(nats_server)
    major, minor, _ = parse_server_version(version)
    floor = f"{major}.{minor + 1}.0"
    with pytest.raises(ServerVersionError) as caught:
        await Bus.connect(servers=(nats_server.url,), min_server_version=floor, connect_attempts=1)
    assert caught.value.version == version
    assert caught.value.floor == floor
    assert caught.value.server == nats_server.url
    message = str(caught.value)
    assert version in message
    assert floor in message
    assert "minServerVersion" in message
