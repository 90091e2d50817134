"""The nats-server fixture itself: real process, JetStream, restart on the same store, cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from ark_mesh.testing.nats_server import (
    BINARY_ENV,
    NatsServer,
    NatsServerNotFoundError,
    NatsServerStartTimeoutError,
    find_nats_server,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; check that it is not one.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


async def test_client_fixture_talks_jetstream(nats_client: Client, nats_server: NatsServer) -> None:
    assert nats_server.url.startswith("nats://127.0.0.1:")
    js = nats_client.jetstream()
    await js.add_stream(name="PROBE", subjects=["probe.>"])
    ack = await js.publish("probe.one", b"hello")
    assert ack.stream == "PROBE"
    assert ack.seq == 1


async def test_restart_keeps_file_store_and_port(nats_server: NatsServer) -> None:
    port, old_pid = nats_server.port, nats_server.pid
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    await js.add_stream(name="KEEP", subjects=["keep.>"], storage="file")
    for index in range(5):
        await js.publish(f"keep.{index}", str(index).encode())
    await client.close()

    await nats_server.arestart()

    assert nats_server.port == port
    assert nats_server.pid != old_pid
    assert old_pid is not None
    assert not _alive(old_pid)
    client = await nats.connect(nats_server.url)
    info = await client.jetstream().stream_info("KEEP")
    assert info.state.messages == 5
    await client.close()


def test_kill_and_stop_signal_only_their_own_process(tmp_path: Path) -> None:
    first = NatsServer(tmp_path / "a").start()
    second = NatsServer(tmp_path / "b").start()
    try:
        first_pid = first.pid
        assert first_pid is not None
        first.kill()
        assert not _alive(first_pid)
        assert second.running
        assert second.pid is not None
        assert _alive(second.pid)
    finally:
        first.stop()
        second.stop()
    assert not second.running


def test_start_failure_reports_the_server_log(tmp_path: Path) -> None:
    holder = NatsServer(tmp_path / "holder").start()
    try:
        clash = NatsServer(tmp_path / "clash", port=holder.port, ready_timeout=5)
        with pytest.raises(NatsServerStartTimeoutError) as caught:
            clash.start()
        message = str(caught.value)
        assert "log tail" in message
        assert str(holder.port) in message
        assert not clash.running
    finally:
        holder.stop()


def test_binary_lookup_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = find_nats_server()
    monkeypatch.setenv(BINARY_ENV, real)
    assert find_nats_server() == real
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "missing-binary"))
    with pytest.raises(NatsServerNotFoundError, match="missing-binary"):
        find_nats_server()


def test_context_manager_stops_on_exit(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "ctx") as server:
        pid = server.pid
        assert pid is not None
        assert _alive(pid)
    assert not _alive(pid)
    assert not server.running
    server.stop()  # stopping twice is harmless
    assert not server.running
