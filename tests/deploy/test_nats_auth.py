"""The chart's NATS users and permissions (decision 55), rendered and run.

The rendered nats.conf starts a real nats-server with the users of the release; each service's
rendered config names its own user and takes its password from the Secret; a tenant user reads
its own subjects and is refused another tenant's; a scale preset without users does not render
unless ``nats.insecure`` says so; the chart's permission table is the one
``ark_mesh.bus.permissions`` writes.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest

from ark_mesh.bus.permissions import (
    permission_table,
    service_permissions,
    tenant_inbox_prefix,
    tenant_permissions,
)

from .conftest import CHART, Chart
from .test_chart import CONFIG_TYPES, decode
from .test_nats import nats_server

TENANTS = [{"name": "team-a", "replay": True}, {"name": "team-b"}]
SINGLE_NODE_WITH_TENANTS = {"nats": {"replicas": 1, "auth": {"tenants": TENANTS}}}


def _users(text: str) -> list[str]:
    return [line.split('"')[1] for line in text.splitlines() if line.strip().startswith("user:")]


def test_the_charts_permission_table_is_the_bus_libraries() -> None:
    written = json.loads((CHART / "nats-permissions.json").read_text())
    assert written == permission_table(), "run `make schemas`"


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_every_service_has_its_own_user_and_its_password_from_the_secret(
    chart: Chart, preset: str, tmp_path: Path
) -> None:
    rendered = chart.render(preset, SINGLE_NODE_WITH_TENANTS)
    text = rendered.get("ConfigMap", rendered.name("nats"))["data"]["nats.conf"]
    expected = [f"ark-{c}" for c in CONFIG_TYPES]
    assert _users(text) == [*expected, "ark-operator", "tenant-team-a", "tenant-team-b"]
    secret = f"{rendered.release}-nats-auth"
    nats_env = {e["name"]: e for e in rendered.container("nats")["env"]}
    for index, user in enumerate(_users(text)):
        assert f"password: $ARK_NATS_PASSWORD_{index}\n" in text
        reference = nats_env[f"ARK_NATS_PASSWORD_{index}"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": secret, "key": user}
    for component in CONFIG_TYPES:
        connection = decode(rendered, component, tmp_path).bus.connection
        assert connection.auth.user == f"ark-{component}"
        assert connection.auth.password.env == "ARK_NATS_PASSWORD"
        assert connection.security_problems() == []
        env = {e["name"]: e for e in rendered.container(component)["env"]}
        reference = env["ARK_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": secret, "key": f"ark-{component}"}, component


def test_tls_comes_from_secrets_and_services_mount_only_the_ca(
    chart: Chart, tmp_path: Path
) -> None:
    values = {
        "nats": {
            "tls": {
                "enabled": True,
                "secretName": "nats-server-tls",
                "verifyClients": True,
                "clientSecretName": "ark-mesh-client-tls",
            }
        }
    }
    rendered = chart.render("scale-flexible", values)
    text = rendered.get("ConfigMap", rendered.name("nats"))["data"]["nats.conf"]
    assert "tls {" in text
    assert "verify: true" in text
    pod = rendered.get("StatefulSet", rendered.name("nats"))["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "nats-server-tls"
    broker = rendered.get("Deployment", rendered.name("broker"))["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"] for v in broker["volumes"] if "secret" in v}
    assert volumes["nats-tls"] == {
        "secretName": "nats-server-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }, "a service never mounts the server's key"
    assert volumes["nats-client-tls"] == {"secretName": "ark-mesh-client-tls"}
    tls = decode(rendered, "broker", tmp_path).bus.connection.tls
    assert tls is not None
    assert tls.ca_file == "/etc/ark-mesh/nats-tls/ca.crt"
    assert tls.cert_file == "/etc/ark-mesh/nats-client-tls/tls.crt"


def test_a_scale_preset_without_users_renders_only_when_insecure(
    chart: Chart, tmp_path: Path
) -> None:
    refused = chart.try_render("scale-flexible", {"nats": {"auth": {"enabled": False}}})
    assert refused.returncode != 0
    assert "nats.auth.enabled" in refused.output
    assert "nats.insecure" in refused.output
    rendered = chart.render(
        "scale-flexible", {"nats": {"auth": {"enabled": False}, "insecure": True}}
    )
    text = rendered.get("ConfigMap", rendered.name("nats"))["data"]["nats.conf"]
    assert "authorization" not in text
    connection = decode(rendered, "query-reconciler", tmp_path).bus.connection
    assert connection.insecure
    assert connection.auth.method is None
    assert "ARK_NATS_PASSWORD" not in {
        e["name"] for e in rendered.container("query-reconciler")["env"]
    }
    # The simple preset has no NATS and needs neither.
    assert chart.try_render("simple").returncode == 0


def _rendered_tenant_permissions(text: str, user: str) -> list[str]:
    block = text.split(f'user: "{user}"', 1)[1].split("subscribe:", 1)[0]
    return [line.strip().strip('"') for line in block.splitlines() if line.strip().startswith('"')]


async def test_the_rendered_users_isolate_tenants_on_a_real_server(
    chart: Chart, tmp_path: Path
) -> None:
    rendered = chart.render("scale-strict", SINGLE_NODE_WITH_TENANTS | _broker_tokens())
    text = rendered.get("ConfigMap", rendered.name("nats"))["data"]["nats.conf"]
    assert _rendered_tenant_permissions(text, "tenant-team-a") == list(
        tenant_permissions("team-a", replay=True).publish
    )
    assert _rendered_tenant_permissions(text, "tenant-team-b") == list(
        tenant_permissions("team-b").publish
    )
    assert _rendered_tenant_permissions(text, "ark-broker") == list(
        service_permissions("broker").publish
    )
    users = _users(text)
    passwords = {f"ARK_NATS_PASSWORD_{i}": f"pw{i}x{os.getpid()}" for i in range(len(users))}
    store = "store_dir: /data"
    conf = tmp_path / "nats.conf"
    conf.write_text(text.replace(store, f"store_dir: {tmp_path / 'store'}"))
    async with nats_server(conf, env={"POD_NAME": "ark-mesh-nats-0", **passwords}) as (url, _):
        password = passwords[f"ARK_NATS_PASSWORD_{users.index('tenant-team-a')}"]
        refused: list[str] = []
        heard = asyncio.Event()

        async def on_error(error: Exception) -> None:
            refused.append(str(error))
            heard.set()

        tenant: Any = await nats.connect(
            url,
            user="tenant-team-a",
            password=password,
            inbox_prefix=tenant_inbox_prefix("team-a"),
            error_cb=on_error,
        )
        try:
            own = await tenant.subscribe("ark.team-a.>")
            await tenant.flush()
            await tenant.subscribe("ark.team-b.>")
            await tenant.flush()
            async with asyncio.timeout(10):
                await heard.wait()
            assert any('subscription to "ark.team-b.>"' in error for error in refused), refused
            assert not any("team-a.>" in error for error in refused), refused
            await own.unsubscribe()
        finally:
            await tenant.close()
        with pytest.raises(nats.errors.Error):
            await nats.connect(url, user="tenant-team-a", password="wrong", allow_reconnect=False)


def _broker_tokens() -> dict[str, Any]:
    return {"broker": {"auth": {"tokens": [{"tenant": "team-a", "sha256": "a" * 64}]}}}
