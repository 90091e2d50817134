"""Credentials and TLS of ``bus.connection`` against a real nats-server that checks them.

Each test starts its own nats-server with an ``authorization`` (or ``tls``) block and connects
through :meth:`Bus.connect` with secrets read from files or variables, as a pod would from a
mounted Secret: the right ones connect, the wrong ones raise :class:`BusAuthError` at once,
naming who was refused; a secret that cannot be read fails before the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import nkeys
import pytest

from ark_mesh.bus import (
    AuthSettings,
    Bus,
    BusAuthError,
    BusConfig,
    ConnectionSettings,
    SecretSource,
    TlsSettings,
)
from ark_mesh.bus.credentials import read_secret
from ark_mesh.controller.admission.certs import self_signed
from ark_mesh.testing.nats_server import NatsServer


def _server(tmp_path: Path, conf: str) -> NatsServer:
    path = tmp_path / "server.conf"
    path.write_text(conf)
    return NatsServer(tmp_path / "nats", extra_args=("-c", str(path)))


def _settings(server: NatsServer, **changes: object) -> ConnectionSettings:
    base = ConnectionSettings(servers=(server.url,), connect_attempts=3)
    return msgspec.structs.replace(base, **changes)


def _password_file(tmp_path: Path, text: str) -> SecretSource:
    path = tmp_path / "password"
    path.write_text(text + "\n")
    return SecretSource(file=str(path))


async def test_user_and_password_from_a_file_connect_and_a_wrong_one_is_refused(
    tmp_path: Path,
) -> None:
    conf = 'authorization { users = [ { user: "svc", password: "s3cret" } ] }\n'
    with _server(tmp_path, conf).start() as server:
        good = AuthSettings(user="svc", password=_password_file(tmp_path, "s3cret"))
        bus = await Bus.connect(_settings(server, auth=good))
        assert bus.ready
        await bus.close()
        wrong = AuthSettings(user="svc", password=SecretSource(env="ARK_TEST_WRONG_PASSWORD"))
        os.environ["ARK_TEST_WRONG_PASSWORD"] = "guess"
        try:
            with pytest.raises(BusAuthError) as refused:
                await Bus.connect(_settings(server, auth=wrong, connect_attempts=5))
        finally:
            del os.environ["ARK_TEST_WRONG_PASSWORD"]
        assert "user 'svc'" in str(refused.value)
        assert "bus.connection.auth" in str(refused.value)
        with pytest.raises(BusAuthError, match="no credentials"):
            await Bus.connect(_settings(server))


async def test_a_token_from_a_variable_connects(tmp_path: Path) -> None:
    with _server(tmp_path, 'authorization { token: "t0ken" }\n').start() as server:
        os.environ["ARK_TEST_TOKEN"] = "t0ken"
        try:
            auth = AuthSettings(token=SecretSource(env="ARK_TEST_TOKEN"))
            bus = await Bus.connect(_settings(server, auth=auth))
        finally:
            del os.environ["ARK_TEST_TOKEN"]
        assert bus.ready
        await bus.close()


async def test_an_nkey_seed_file_connects(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    conf = f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n'
    with _server(tmp_path, conf).start() as server:
        bus = await Bus.connect(_settings(server, auth=AuthSettings(nkey_seed_file=str(seed_file))))
        assert bus.ready
        await bus.close()


async def test_tls_verifies_the_server_with_the_configured_ca(tmp_path: Path) -> None:
    certificate = self_signed(["127.0.0.1"], common_name="nats")
    certificate.write(tmp_path / "tls")
    tls_dir = tmp_path / "tls"
    conf = (
        f'tls {{ cert_file: "{tls_dir / "tls.crt"}", key_file: "{tls_dir / "tls.key"}" }}\n'
        'authorization { users = [ { user: "svc", password: "s3cret" } ] }\n'
    )
    with _server(tmp_path, conf).start() as server:
        auth = AuthSettings(user="svc", password=_password_file(tmp_path, "s3cret"))
        tls = TlsSettings(ca_file=str(tls_dir / "ca.crt"))
        bus = await Bus.connect(_settings(server, auth=auth, tls=tls))
        assert bus.ready
        assert bus.nc._current_server is not None  # nats-py keeps the TLS socket there
        await bus.close()
        # A CA that did not sign the server's certificate: refused, not connected in clear.
        other = self_signed(["127.0.0.1"], common_name="other")
        other.write(tmp_path / "other")
        untrusted = TlsSettings(ca_file=str(tmp_path / "other" / "ca.crt"))
        with pytest.raises(BusAuthError, match=r"TLS to NATS .* certificate verify failed"):
            await Bus.connect(_settings(server, auth=auth, tls=untrusted))


def test_secrets_that_cannot_be_read_name_their_setting(tmp_path: Path) -> None:
    with pytest.raises(BusAuthError, match=r"auth\.password\.file: cannot read"):
        read_secret(SecretSource(file=str(tmp_path / "absent")), "bus.connection.auth.password")
    with pytest.raises(BusAuthError, match="ARK_TEST_UNSET is not set"):
        read_secret(SecretSource(env="ARK_TEST_UNSET"), "bus.connection.auth.token")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(BusAuthError, match="empty"):
        read_secret(SecretSource(file=str(tmp_path / "empty")), "x")
    (tmp_path / "pw").write_text("line\n")
    assert read_secret(SecretSource(file=str(tmp_path / "pw")), "x") == "line"


async def test_contradicting_auth_settings_fail_before_connecting() -> None:
    both = AuthSettings(user="u", password=SecretSource(env="P"), token=SecretSource(env="T"))
    with pytest.raises(BusAuthError, match="choose one method"):
        await Bus.connect(ConnectionSettings(servers=("nats://127.0.0.1:1",), auth=both))
    lonely = AuthSettings(user="u")
    assert any("go together" in p for p in lonely.problems())
    ambiguous = AuthSettings(user="u", password=SecretSource(file="a", env="B"))
    assert any("exactly one of file" in p for p in ambiguous.problems())
    assert any("go together" in p for p in TlsSettings(cert_file="c").problems())


def test_a_service_needs_credentials_or_an_explicit_insecure() -> None:
    bare = ConnectionSettings()
    [problem] = bare.security_problems()
    assert "bus.connection.auth is not configured" in problem
    assert "insecure: true" in problem
    assert ConnectionSettings(insecure=True).security_problems() == []
    with_user = ConnectionSettings(auth=AuthSettings(user="u", password=SecretSource(env="P")))
    assert with_user.security_problems() == []
    # As a config file says it (camelCase), through the Struct a service decodes.
    config = msgspec.convert(
        {
            "connection": {
                "auth": {"user": "ark-broker", "password": {"file": "/run/nats/password"}},
                "tls": {"caFile": "/etc/nats/ca.crt", "serverName": "nats"},
                "inboxPrefix": "_INBOX_team-a",
            }
        },
        BusConfig,
    )
    assert config.connection.auth.method == "password"
    assert config.connection.tls == TlsSettings(ca_file="/etc/nats/ca.crt", server_name="nats")
    assert config.connection.inbox_prefix == "_INBOX_team-a"
