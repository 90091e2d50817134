"""The client side of NATS security: turn ``bus.connection.auth``/``tls`` into nats-py options.

Secrets are read here, at connect time, from files or environment variables the configuration
*names* (mounted Kubernetes Secrets, ``secretKeyRef`` variables), never from the configuration
itself, which ends up in ConfigMaps and logs. A secret that cannot be read is a
:class:`~ark_mesh.bus.errors.BusAuthError` naming the setting, raised before any network call,
so a pod with a missing Secret says so instead of "connection refused".
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from ark_mesh.bus.config import ConnectionSettings, SecretSource, TlsSettings
from ark_mesh.bus.errors import BusAuthError

__all__ = ["connect_options", "describe_identity", "is_auth_failure", "read_secret"]


def read_secret(source: SecretSource, setting: str) -> str:
    """The secret ``source`` points at (one trailing newline dropped, as ``echo`` and most
    Secret generators add one); :class:`BusAuthError` naming ``setting`` when absent."""
    if source.file is not None:
        try:
            value = Path(source.file).read_text()
        except OSError as error:
            raise BusAuthError(
                f"{setting}.file: cannot read {source.file}: {error.strerror or error}"
            ) from error
        value = value[:-1] if value.endswith("\n") else value
    elif source.env is not None:
        if source.env not in os.environ:
            raise BusAuthError(f"{setting}.env: environment variable {source.env} is not set")
        value = os.environ[source.env]
    else:
        raise BusAuthError(f"{setting}: set file or env")
    if not value:
        raise BusAuthError(f"{setting}: the secret is empty")
    return value


def _readable(path: str, setting: str) -> str:
    if not os.access(path, os.R_OK):
        raise BusAuthError(f"{setting}: cannot read {path}")
    return path


def _tls_context(tls: TlsSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=_readable(tls.ca_file, "bus.connection.tls.caFile") if tls.ca_file else None,
        )
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(
                _readable(tls.cert_file, "bus.connection.tls.certFile"),
                _readable(tls.key_file, "bus.connection.tls.keyFile"),
            )
    except ssl.SSLError as error:
        raise BusAuthError(f"bus.connection.tls: unusable certificate or key: {error}") from error
    return context


def connect_options(settings: ConnectionSettings) -> dict[str, Any]:
    """The keyword arguments of ``nats.connect`` that carry identity and TLS."""
    auth = settings.auth
    problems = [*auth.problems(), *(settings.tls.problems() if settings.tls else [])]
    if problems:
        raise BusAuthError("; ".join(problems))
    options: dict[str, Any] = {"inbox_prefix": settings.inbox_prefix}
    method = auth.method
    if method == "password":
        assert auth.user is not None
        assert auth.password is not None
        options["user"] = auth.user
        options["password"] = read_secret(auth.password, "bus.connection.auth.password")
    elif method == "token":
        assert auth.token is not None
        options["token"] = read_secret(auth.token, "bus.connection.auth.token")
    elif method == "nkey":
        assert auth.nkey_seed_file is not None
        # nats-py re-reads the seed file at every (re)connect: a rotated Secret takes effect.
        options["nkeys_seed"] = _readable(auth.nkey_seed_file, "bus.connection.auth.nkeySeedFile")
    elif method == "creds":
        assert auth.creds_file is not None
        options["user_credentials"] = _readable(auth.creds_file, "bus.connection.auth.credsFile")
    if settings.tls is not None:
        options["tls"] = _tls_context(settings.tls)
        if settings.tls.server_name:
            options["tls_hostname"] = settings.tls.server_name
    return options


def describe_identity(settings: ConnectionSettings) -> str:
    """Who this client says it is, for log lines and errors (never the secret)."""
    auth = settings.auth
    method = auth.method
    if method == "password":
        return f"user {auth.user!r}"
    if method == "nkey":
        return f"the nkey seed in {auth.nkey_seed_file}"
    if method == "creds":
        return f"the credentials in {auth.creds_file}"
    if method == "token":
        return "a token"
    return "no credentials"


def is_auth_failure(error: BaseException) -> bool:
    """Whether the server refused the client's identity (as opposed to not answering)."""
    text = str(error).lower()
    return (
        type(error).__name__ == "AuthorizationError"
        or "authorization violation" in text
        or "authentication" in text
        or "user authentication expired" in text
    )
