"""Who is calling: the tenant of a request.

With ``auth.mode: token`` the tenant is the owner of the bearer token. Tokens are kept as
SHA-256 hashes (a leaked config file leaks no token) and every configured hash is compared in
constant time, so response timing says nothing about how much of a guess was right. With
``auth.mode: none`` the caller names the tenant (``?namespace=``), which is only fit for a
trusted network; scale-strict installs use tokens.

The tenant is the second token of every subject (``ark.<tenant>.…``) and the Kubernetes
namespace of the query, so it must be valid as both.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from ark_mesh.broker.config import AuthConfig
from ark_mesh.broker.errors import BadRequestError, UnauthorizedError

__all__ = ["TenantResolver", "hash_token"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``, as ``auth.tokens[].sha256`` stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


class TenantResolver:
    """Maps request headers and query parameters to a tenant, or raises an API error."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._hashes = [(bytes.fromhex(t.sha256), t.tenant) for t in config.tokens]

    def tenant(self, headers: Mapping[str, str], params: Mapping[str, str]) -> str:
        if self.config.mode == "token":
            return self._from_token(headers.get("Authorization", ""))
        namespace = params.get("namespace") or self.config.default_tenant
        if not _DNS_LABEL.match(namespace):
            raise BadRequestError(
                f"namespace {namespace!r} must be a DNS-1123 label (lowercase letters, digits "
                "and '-', at most 63 characters)",
                field="namespace",
                status=400,
            )
        return namespace

    def _from_token(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError(
                "missing bearer token: send 'Authorization: Bearer <token>'", field="Authorization"
            )
        # Header values arrive decoded as UTF-8 with surrogate escapes: bytes that are not UTF-8
        # (a Latin-1 token) must hash like any other unknown token, not raise.
        digest = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for expected, tenant in self._hashes:
            # No early exit: every hash is compared, whatever matched.
            if hmac.compare_digest(digest, expected):
                found = tenant
        if found is None:
            raise UnauthorizedError("unknown bearer token", field="Authorization")
        return found
