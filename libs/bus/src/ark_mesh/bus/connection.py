"""One NATS connection per process, with JetStream, reconnect backoff and a health view.

Why a wrapper rather than a bare ``nats.connect``:

* a server that is not there yet (pods start in any order) must not crash the service on the
  first try, but must not hang it forever either: the initial connect retries with exponential
  backoff and then raises :class:`~ark_mesh.bus.errors.BusUnavailableError` naming the URLs;
* after a connection loss nats-py reconnects by itself and replays subscriptions, but with a
  fixed wait; we plug in a backoff through its ``reconnect_to_server_handler`` hook;
* readiness probes need a cheap, honest answer (:attr:`Bus.health`), and components that keep
  server-side state (pull requests) need to hear about reconnects (:meth:`Bus.on_reconnect`);
* shutdown must flush acks and publishes before the socket closes (:meth:`Bus.close` drains);
* every component built on one connection (publisher, workers, readers, cancel channel) must
  seal and open tenant bodies with the same keys: the bus carries the
  :class:`~ark_mesh.bus.encryption.PayloadCipher` (:attr:`Bus.cipher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.client import Server as NatsServerEntry
from nats.js import JetStreamContext, JetStreamManager
from nats.js.kv import KeyValue

from ark_mesh.bus.config import ConnectionSettings, EncryptionSettings
from ark_mesh.bus.credentials import connect_options, describe_identity, is_auth_failure
from ark_mesh.bus.encryption import PayloadCipher
from ark_mesh.bus.errors import (
    BusAuthError,
    BusClosedError,
    BusUnavailableError,
    ServerVersionError,
)
from ark_mesh.telemetry import get_logger

__all__ = [
    "Bus",
    "ConnectionHealth",
    "ConnectionState",
    "backoff_delay",
    "parse_server_version",
]

_log = get_logger(__name__)

ReconnectListener = Callable[[], Awaitable[None] | None]


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DRAINING = "draining"
    CLOSED = "closed"


@dataclass(frozen=True)
class ConnectionHealth:
    """A snapshot for readiness probes and status pages."""

    state: ConnectionState
    server: str | None
    reconnects: int
    last_error: str | None
    since: float
    """``time.monotonic()`` of the last state change."""

    @property
    def ready(self) -> bool:
        return self.state is ConnectionState.CONNECTED


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``maximum``.

    Jitter keeps a fleet of replicas that lost the same server from reconnecting in lockstep.
    """
    if attempt <= 0:
        return 0.0
    ceiling = min(maximum, initial * (2 ** (attempt - 1)))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class Bus:
    """A connected NATS client plus its JetStream context; create with :meth:`connect`."""

    def __init__(
        self, nc: Client, settings: ConnectionSettings, *, cipher: PayloadCipher | None = None
    ) -> None:
        self.nc = nc
        self.settings = settings
        self.cipher = cipher if cipher is not None else PayloadCipher()
        """Seals and opens tenant bodies for everything built on this bus (no keys: no-op)."""
        self.js: JetStreamContext = nc.jetstream(timeout=settings.request_timeout)
        self.jsm: JetStreamManager = nc.jsm(timeout=settings.request_timeout)
        self._state = ConnectionState.CONNECTED
        self._since = time.monotonic()
        self._last_error: str | None = None
        self._reconnects = 0
        self._listeners: list[ReconnectListener] = []
        self._kv: dict[str, KeyValue] = {}
        self._connected = asyncio.Event()
        self._connected.set()

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        settings: ConnectionSettings | None = None,
        *,
        encryption: EncryptionSettings | PayloadCipher | None = None,
        **overrides: Any,
    ) -> Bus:
        """Connect, retrying the first connection with backoff; raise ``BusUnavailableError``.

        ``overrides`` replace fields of ``settings`` (e.g. ``servers=(url,)`` in tests).
        ``encryption`` (usually ``BusConfig.encryption``) turns on per-tenant payload
        encryption; its keys are loaded before connecting, so a bad key raises
        :class:`~ark_mesh.bus.errors.EncryptionConfigError` without touching the network.
        Credentials and TLS (``settings.auth``/``tls``) are read the same way; a server that
        refuses them raises :class:`~ark_mesh.bus.errors.BusAuthError` at once (the same
        credentials would be refused again), naming the identity presented.
        """
        cipher = (
            PayloadCipher.from_settings(encryption)
            if isinstance(encryption, EncryptionSettings)
            else encryption
        )
        base = settings or ConnectionSettings()
        if overrides:
            base = _replace(base, **overrides)
        identity = connect_options(base)
        holder: list[Bus] = []
        refused: list[BaseException] = []

        async def on_disconnected() -> None:
            # nats-py reports the end of a drain as a disconnect too; that is not an outage.
            if holder and not holder[0].closed:
                holder[0]._set_state(ConnectionState.RECONNECTING)

        async def on_reconnected() -> None:
            if holder:
                await holder[0]._after_reconnect()

        async def on_error(error: Exception) -> None:
            if holder:
                holder[0]._last_error = f"{type(error).__name__}: {error}"
            elif is_auth_failure(error) or isinstance(error, ssl.SSLError):
                refused.append(error)
            if "permissions violation" in str(error).lower():
                # The server refused one publish or subscription of this identity: a missing
                # permission (decision 55) must be visible, not a silent stall.
                _log.error(
                    "nats permission denied",
                    identity=describe_identity(base),
                    error=str(error),
                )
                return
            _log.debug("nats client error", error=str(error), error_type=type(error).__name__)

        async def on_closed() -> None:
            if holder:
                holder[0]._set_state(ConnectionState.CLOSED)

        def pick_server(
            servers: list[NatsServerEntry], _: dict[str, Any]
        ) -> tuple[NatsServerEntry | None, float]:
            chosen = min(servers, key=lambda server: server.reconnects)
            return chosen, backoff_delay(chosen.reconnects, base.backoff_initial, base.backoff_max)

        last_error: BaseException | None = None
        attempts = max(1, base.connect_attempts)
        for attempt in range(1, attempts + 1):
            # nats-py can hang after a failed TLS handshake instead of trying the next server
            # (2.16 on a certificate it does not trust): bound one attempt by what trying every
            # server twice may take.
            attempt_bound = base.connect_timeout * (2 * len(base.servers) + 1) + 1
            try:
                nc = await asyncio.wait_for(
                    nats.connect(
                        servers=list(base.servers),
                        name=base.name,
                        connect_timeout=base.connect_timeout,
                        # nats-py's *initial* connect retries each server up to
                        # max_reconnect_attempts times (forever when unlimited), so it gets one
                        # quick retry here and this loop owns the backoff; the real limit is set
                        # once connected (nats-py reads its options on every reconnect).
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0.05,
                        allow_reconnect=True,
                        ping_interval=base.ping_interval,
                        max_outstanding_pings=base.max_outstanding_pings,
                        pending_size=base.reconnect_buffer_bytes,
                        drain_timeout=base.drain_timeout,
                        disconnected_cb=on_disconnected,
                        reconnected_cb=on_reconnected,
                        error_cb=on_error,
                        closed_cb=on_closed,
                        reconnect_to_server_handler=pick_server,
                        # Subjects come from the contracts' builders, which validate every token;
                        # nats-py re-checking each character of every subject and reply costs
                        # more than the rest of a publish.
                        skip_subject_validation=True,
                        **identity,
                    ),
                    attempt_bound,
                )
            except (OSError, TimeoutError, nats.errors.Error) as error:
                last_error = error
                auth_error = next(iter(refused), error if is_auth_failure(error) else None)
                if isinstance(auth_error, ssl.SSLError):
                    _log.error(
                        "tls to nats failed",
                        servers=list(base.servers),
                        error=str(auth_error),
                    )
                    raise BusAuthError(
                        f"TLS to NATS at {', '.join(base.servers)} failed: {auth_error}; check "
                        "bus.connection.tls (caFile: the CA that signed the server's "
                        "certificate, serverName: a name in it)"
                    ) from error
                if auth_error is not None:
                    _log.error(
                        "nats refused the credentials",
                        identity=describe_identity(base),
                        servers=list(base.servers),
                        error=str(auth_error) or type(auth_error).__name__,
                    )
                    raise BusAuthError(
                        f"NATS at {', '.join(base.servers)} refused {describe_identity(base)}: "
                        f"{auth_error or type(auth_error).__name__}; check bus.connection.auth "
                        "and the Secret it names"
                    ) from error
                if attempt < attempts:
                    delay = backoff_delay(attempt, base.backoff_initial, base.backoff_max)
                    _log.warning(
                        "nats not reachable yet, retrying",
                        servers=list(base.servers),
                        attempt=attempt,
                        retry_in=round(delay, 3),
                        error=str(error) or type(error).__name__,
                    )
                    await asyncio.sleep(delay)
                continue
            try:
                _check_server_version(nc, base.min_server_version)
            except ServerVersionError:
                await nc.close()
                raise
            nc.options["max_reconnect_attempts"] = base.max_reconnect_attempts
            bus = cls(nc, base, cipher=cipher)
            holder.append(bus)
            return bus
        raise BusUnavailableError(tuple(base.servers), last_error, attempts)

    # -- health and events ----------------------------------------------------------------------

    @property
    def health(self) -> ConnectionHealth:
        server = None
        url = self.nc.connected_url
        if url is not None and self._state is ConnectionState.CONNECTED:
            server = f"{url.scheme}://{url.hostname}:{url.port}"
        return ConnectionHealth(
            state=self._state,
            server=server,
            reconnects=self._reconnects,
            last_error=self._last_error,
            since=self._since,
        )

    @property
    def ready(self) -> bool:
        return self._state is ConnectionState.CONNECTED

    @property
    def closed(self) -> bool:
        return self._state in (ConnectionState.CLOSED, ConnectionState.DRAINING)

    def on_reconnect(self, listener: ReconnectListener) -> Callable[[], None]:
        """Call ``listener`` after every reconnect; returns a function that unregisters it."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until the connection is up (returns at once when it is); ``TimeoutError``
        after ``within`` seconds."""
        if self.closed:
            raise BusClosedError("bus is closed")
        await asyncio.wait_for(self._connected.wait(), within)

    def ensure_open(self) -> None:
        if self.closed:
            raise BusClosedError(f"bus connection is {self._state.value}")

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        previous = self._state
        self._state = state
        self._since = time.monotonic()
        if state is ConnectionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        level = "info" if state is ConnectionState.CONNECTED else "warning"
        if state in (ConnectionState.CLOSED, ConnectionState.DRAINING):
            level = "info"
        getattr(_log, level)("nats connection state", state=state.value, previous=previous.value)

    async def _after_reconnect(self) -> None:
        self._reconnects += 1
        self._set_state(ConnectionState.CONNECTED)
        for listener in list(self._listeners):
            try:
                result = listener()
                if result is not None:
                    await result
            except Exception:
                _log.exception("reconnect listener failed")

    # -- helpers --------------------------------------------------------------------------------

    async def key_value(self, bucket: str) -> KeyValue:
        """The KV bucket handle (cached; the bucket must have been provisioned)."""
        handle = self._kv.get(bucket)
        if handle is None:
            handle = await self.js.key_value(bucket)
            self._kv[bucket] = handle
        return handle

    # -- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Drain (flush publishes and acks, let subscriptions finish) and close; idempotent."""
        if self._state is ConnectionState.CLOSED or self.nc.is_closed:
            self._set_state(ConnectionState.CLOSED)
            return
        self._set_state(ConnectionState.DRAINING)
        try:
            if self.nc.is_connected:
                await self.nc.drain()
        except (nats.errors.Error, TimeoutError, OSError) as error:
            _log.warning("nats drain failed, closing anyway", error=str(error))
        finally:
            if not self.nc.is_closed:
                await self.nc.close()
            self._set_state(ConnectionState.CLOSED)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def parse_server_version(version: str) -> tuple[int, int, int]:
    """``"2.10.27"`` (or ``"2.11.0-RC.1"``, ``"v2.9"``) as a comparable ``(2, 10, 27)``;
    ``ValueError`` when it is not a version at all."""
    core = version.strip().lstrip("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if not parts or not all(part.isdigit() for part in parts) or len(parts) > 3:
        raise ValueError(f"not a nats-server version: {version!r}")
    numbers = [int(part) for part in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def _check_server_version(nc: Client, floor: str) -> None:
    """Refuse a server older than ``floor`` (``ServerVersionError``); log the version.

    An old nats-server does not refuse settings it does not know, it ignores them, so running
    on one would quietly weaken guarantees; the version in its INFO is the only honest test.
    """
    info = nc._server_info  # no public accessor for the INFO document in nats-py
    version = str(info.get("version") or "")
    url = nc.connected_url
    server = f"{url.scheme}://{url.hostname}:{url.port}" if url is not None else None
    minimum = parse_server_version(floor)  # a malformed setting is a ValueError naming it
    try:
        too_old = parse_server_version(version) < minimum
    except ValueError:
        too_old = True
    if too_old:
        raise ServerVersionError(version, floor, server)
    _log.info(
        "nats connected",
        server=server,
        server_version=version,
        server_name=info.get("server_name"),
        cluster=info.get("cluster"),
        jetstream=bool(info.get("jetstream")),
    )


def _replace(settings: ConnectionSettings, **changes: Any) -> ConnectionSettings:
    return msgspec.structs.replace(settings, **changes)
