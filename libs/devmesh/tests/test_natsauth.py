"""The local mesh's NATS users: files a service can name, none readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

from ark_mesh.bus.permissions import SERVICES, tenant_inbox_prefix
from ark_mesh.devmesh.natsauth import MeshCredentials


def test_every_user_gets_a_private_password_file_and_services_name_theirs(
    tmp_path: Path,
) -> None:
    credentials = MeshCredentials(tmp_path / "nats-auth", tenants=("team-a",))
    conf = credentials.write().read_text()
    users = [f"ark-{s}" for s in SERVICES] + ["ark-operator", "tenant-team-a"]
    assert set(credentials.passwords) == set(users)
    for user in users:
        path = credentials.password_file(user)
        assert path.read_text() == credentials.passwords[user] + "\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert f'user: "{user}"' in conf
    assert stat.S_IMODE(credentials.config_path.stat().st_mode) == 0o600
    auth = credentials.service_auth("broker")
    assert auth == {
        "user": "ark-broker",
        "password": {"file": str(credentials.password_file("ark-broker"))},
    }
    options = credentials.tenant_options("team-a")
    assert options["inbox_prefix"] == tenant_inbox_prefix("team-a")
    [url] = credentials.operator_urls(["nats://127.0.0.1:4222"])
    assert url == f"nats://ark-operator:{credentials.passwords['ark-operator']}@127.0.0.1:4222"
