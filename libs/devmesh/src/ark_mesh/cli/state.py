"""Where the running mesh is: the state file ``ark-mesh dev`` writes and the other commands read.

Flags and environment variables win (``--broker-url``/``ARK_MESH_BROKER_URL``, ``--nats-url``/
``ARK_MESH_NATS_URL``, ``--kubeconfig``; ``$KUBECONFIG`` only when no dev mesh runs); whatever
is not given comes from the state file of the ``ark-mesh dev`` that is running, so after ``make run`` every command just
works. The state lives under ``$ARK_MESH_HOME`` (default ``$XDG_STATE_HOME/ark-mesh``, else
``~/.local/state/ark-mesh``), next to the run folders that keep each run's logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from .errors import CliError, Exit

__all__ = [
    "DevState",
    "Endpoints",
    "home",
    "nats_servers",
    "read_state",
    "remove_state",
    "write_state",
]


class DevState(msgspec.Struct, frozen=True, kw_only=True):
    """What a running ``ark-mesh dev`` tells the other commands."""

    pid: int
    preset: str
    namespace: str
    workdir: str
    kubeconfig: str
    nats_url: str | None = None
    broker_url: str | None = None


class Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    """The mesh a command talks to, after flags, environment and state file are combined."""

    namespace: str
    broker_url: str | None = None
    nats_url: str | None = None
    kubeconfig: str | None = None
    token: str | None = None


def home() -> Path:
    explicit = os.environ.get("ARK_MESH_HOME")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ark-mesh"


def _state_path() -> Path:
    return home() / "dev.json"


def write_state(state: DevState) -> Path:
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state)))
    tmp.replace(path)
    return path


def remove_state(pid: int) -> None:
    """Remove the state file if it is still ours (a newer ``dev`` may have replaced it)."""
    state = read_state()
    if state is not None and state.pid == pid:
        _state_path().unlink(missing_ok=True)


def read_state() -> DevState | None:
    """The running ``ark-mesh dev``'s state, or ``None`` (no file, or its process is gone)."""
    path = _state_path()
    try:
        state = msgspec.json.decode(path.read_bytes(), type=DevState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return state


def endpoints(
    *,
    namespace: str | None,
    broker_url: str | None,
    nats_url: str | None,
    kubeconfig: str | None,
    token: str | None = None,
) -> Endpoints:
    state = read_state()
    env = os.environ
    return Endpoints(
        namespace=namespace
        or env.get("ARK_MESH_NAMESPACE")
        or (state.namespace if state else "default"),
        broker_url=broker_url
        or env.get("ARK_MESH_BROKER_URL")
        or (state.broker_url if state else None),
        nats_url=nats_url or env.get("ARK_MESH_NATS_URL") or (state.nats_url if state else None),
        # The running dev mesh before $KUBECONFIG: a shell pointed at a real cluster must not
        # receive the queries meant for the local mesh.
        kubeconfig=kubeconfig or (state.kubeconfig if state else None) or env.get("KUBECONFIG"),
        token=token or env.get("ARK_MESH_TOKEN"),
    )


def no_mesh(what: str) -> CliError:
    """The error when neither a flag, the environment nor a running ``ark-mesh dev`` names ``what``."""
    hint = {
        "broker": "--broker-url or ARK_MESH_BROKER_URL",
        "nats": "--nats-url or ARK_MESH_NATS_URL",
        "kubernetes": "--kubeconfig or KUBECONFIG",
    }[what]
    return CliError(
        f"no {what} to talk to: no `ark-mesh dev` is running (state file {_state_path()}) "
        f"and {hint} is not set",
        Exit.UNREACHABLE,
    )


def nats_servers(nats_url: str) -> tuple[str, ...]:
    """The server list in a NATS URL setting: one URL, or several separated by commas (a
    cluster, as ``ark-mesh dev --nats-cluster`` records it and as NATS's own tools accept)."""
    return tuple(url.strip() for url in nats_url.split(",") if url.strip())
