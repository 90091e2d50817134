"""NATS users and credentials for the local mesh (``ark-mesh dev --nats-auth``, decision 55).

The local mesh runs the same authorization model as the chart: a user per service and per
tenant with the permissions of :mod:`ark_mesh.bus.permissions`. Passwords are random, one file
per user in ``<run folder>/nats-auth/`` (mode 0600); each service's config names its file
(``bus.connection.auth.password.file``), never the password. Only nats-server's own config
holds them, as it must to check them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ark_mesh.bus.permissions import (
    OPERATOR_USER,
    SERVICES,
    NatsUser,
    operator_permissions,
    render_authorization,
    service_permissions,
    service_user,
    tenant_inbox_prefix,
    tenant_permissions,
    tenant_user,
)

__all__ = ["MeshCredentials"]


@dataclass
class MeshCredentials:
    """The users of one local mesh: write them with :meth:`write`, then hand out
    :meth:`service_auth` blocks and :meth:`tenant_options`."""

    folder: Path
    tenants: tuple[str, ...] = ()
    tenant_replay: bool = True
    """Tenant users may create consumers filtered to their subjects (replay); see
    :func:`ark_mesh.bus.permissions.tenant_permissions` for what that allows."""
    passwords: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def config_path(self) -> Path:
        return self.folder / "authorization.conf"

    def password_file(self, user: str) -> Path:
        return self.folder / f"{user}.password"

    def write(self) -> Path:
        """Create every user's password file and nats-server's authorization config; returns
        the config's path (for ``nats-server -c``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        users: list[NatsUser] = []
        for service in SERVICES:
            user = service_user(service)
            users.append(
                NatsUser(
                    service_permissions(service, provision=True),
                    user=user,
                    password=self._password(user),
                    comment=f"service {service}",
                )
            )
        users.append(
            NatsUser(
                operator_permissions(),
                user=OPERATOR_USER,
                password=self._password(OPERATOR_USER),
                comment="people and tools: ark-mesh tail, query, dlq",
            )
        )
        for tenant in self.tenants:
            user = tenant_user(tenant)
            users.append(
                NatsUser(
                    tenant_permissions(tenant, replay=self.tenant_replay),
                    user=user,
                    password=self._password(user),
                    comment=f"tenant {tenant} (custom consumers)",
                )
            )
        self.config_path.write_text(render_authorization(users))
        self.config_path.chmod(0o600)
        return self.config_path

    def _password(self, user: str) -> str:
        password = self.passwords.get(user) or secrets.token_urlsafe(24)
        self.passwords[user] = password
        path = self.password_file(user)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password

    def service_auth(self, service: str) -> dict[str, Any]:
        """The ``bus.connection.auth`` block of ``service``'s config (camelCase wire names)."""
        user = service_user(service)
        return {"user": user, "password": {"file": str(self.password_file(user))}}

    def operator_urls(self, urls: list[str]) -> list[str]:
        """``urls`` with the operator's user and password in them, for ``ark-mesh``'s other
        commands (they take a NATS URL; nats-py reads credentials from it)."""
        password = self.passwords[OPERATOR_USER]
        return [url.replace("://", f"://{OPERATOR_USER}:{password}@", 1) for url in urls]

    def tenant_options(self, tenant: str) -> dict[str, Any]:
        """``nats.connect`` keyword arguments for a custom consumer of ``tenant``."""
        user = tenant_user(tenant)
        return {
            "user": user,
            "password": self.passwords[user],
            "inbox_prefix": tenant_inbox_prefix(tenant),
        }
