"""Who may publish and subscribe to what on the bus: the NATS authorization model (decision 55).

One NATS account, one user per service and one per tenant, each with allow-lists only (anything
not listed is refused by the server). The same table renders the local mesh's ``nats.conf``
(``ark-mesh dev --nats-auth``) and, through ``helm/ark-mesh/nats-permissions.json`` (written by
``make schemas``, kept equal by a test), the chart's.

**Services** are trusted with every tenant's data (they resolve it), so their users separate
*roles*, not tenants: only the broker and the controller publish work, only a reconciler pulls
its kind's work and publishes answers, status-sync reads status and writes nothing on ``ark.``.
Services that provision the topology may also create and update streams and durable consumers.

**Tenants** (custom consumers) get ``ark.<tenant>.>`` to subscribe, cancel subjects of their own
queries to publish, and of the JetStream API only request subjects whose *subject* names their
tenant's data, since a permission can only look at the subject, never at a request's body:

* ``$JS.API.DIRECT.GET.<stream>.ark.<tenant>.>`` — the last message of one of their subjects
  (streams with ``allow_direct``: ARK_CHUNKS, ARK_MEMORY, single-replica KV buckets);
* ``$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<tenant>.>`` for the buckets whose keys start
  with the tenant (ark-queries, ark-sessions);
* with ``replay``: ``$JS.API.CONSUMER.CREATE.<stream>.<name>.ark.<tenant>.>`` — the consumer
  create form of nats-server ≥ 2.9 that carries the filter in the subject; the server refuses a
  request whose body filters anything else ("did not match filtered subject"). The older forms
  (``CONSUMER.CREATE.<stream>``, ``CONSUMER.DURABLE.CREATE``, ``STREAM.MSG.GET``, the plain
  ``DIRECT.GET.<stream>``) carry the subject in the body and are never granted to a tenant.

What a tenant can still do with ``replay`` (why it is opt-in): a push consumer's deliver subject
is part of the body, and nats-server does not check it against the creator's permissions, so a
tenant can have the server re-deliver *its own* stored messages onto any subject, another
tenant's included. It cannot choose their content (a tenant cannot publish to a stream), and the
mesh refuses work and answers whose body names another tenant than their subject, but the copies
arrive. Consumer names share one namespace per stream, so a tenant can also squat a name. Only
separate accounts with their own streams (sourced per tenant) close this; decision 55 says why
the mesh does not do that yet.

Replies: each tenant's client uses the inbox prefix ``_INBOX_<tenant>`` (``inboxPrefix``) and
may subscribe only there, so it never sees a reply meant for a service or another tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ark_mesh.contracts import subjects

__all__ = [
    "OPERATOR_USER",
    "SERVICES",
    "TENANT_KV_BUCKETS",
    "TENANT_STREAMS",
    "NatsUser",
    "Permissions",
    "operator_permissions",
    "permission_table",
    "render_authorization",
    "service_permissions",
    "service_user",
    "tenant_inbox_prefix",
    "tenant_permissions",
    "tenant_user",
]

SERVICES: Final = (
    "controller",
    "query-reconciler",
    "status-sync",
    "broker",
    "responses-reconciler",
    "embeddings-reconciler",
)
TENANT_STREAMS: Final = (
    subjects.ARK_CHUNKS,
    subjects.ARK_EVENTS,
    subjects.ARK_STATUS,
    subjects.ARK_MEMORY,
)
"""Streams a tenant reads its own subjects of (never ARK_WORK: taking work is the reconcilers')."""
TENANT_KV_BUCKETS: Final = (subjects.QUERIES_BUCKET, subjects.SESSIONS_BUCKET)
"""Buckets whose keys start with the tenant (``<tenant>.<id>``), so a subject can scope them.
ark-cancel and ark-runs are the mesh's own bookkeeping; ark-responses is read through the
broker's API."""

TENANT_PLACEHOLDER: Final = "{tenant}"
OPERATOR_USER: Final = "ark-operator"
"""The user of people and tools (``ark-mesh tail``, ``query``, ``dlq``): reads every tenant,
cancels, re-publishes dead-lettered work."""


@dataclass(frozen=True)
class Permissions:
    """Allow-lists of one NATS user (nats.conf ``permissions``)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def with_tenant(self, tenant: str) -> Permissions:
        """The template filled in for ``tenant`` (the chart's table keeps ``{tenant}``)."""
        subjects.validate_token(tenant, "tenant")
        return Permissions(
            tuple(s.replace(TENANT_PLACEHOLDER, tenant) for s in self.publish),
            tuple(s.replace(TENANT_PLACEHOLDER, tenant) for s in self.subscribe),
        )


@dataclass(frozen=True)
class NatsUser:
    """One entry of nats.conf ``authorization.users``: ``user`` with ``password`` (a literal
    or, for the chart, a ``$VARIABLE`` the server reads from its environment), or ``nkey`` (a
    public key), and its permissions."""

    permissions: Permissions
    user: str | None = None
    password: str | None = None
    nkey: str | None = None
    comment: str = field(default="", compare=False)


_BUCKETS = (
    subjects.QUERIES_BUCKET,
    subjects.CANCEL_BUCKET,
    subjects.RUNS_BUCKET,
    subjects.RESPONSES_BUCKET,
    subjects.SESSIONS_BUCKET,
)
"""Every KV bucket of the mesh (the broker writes them all; the operator reads them all)."""


def service_user(service: str) -> str:
    """The NATS user name of ``service`` (``ark-broker``, …)."""
    return f"ark-{service}"


def tenant_user(tenant: str) -> str:
    """The NATS user name of a tenant's custom consumers (``tenant-<tenant>``)."""
    return f"tenant-{subjects.validate_token(tenant, 'tenant')}"


def tenant_inbox_prefix(tenant: str) -> str:
    """The inbox prefix a tenant's client must set (nats-py ``inbox_prefix``): its replies
    arrive there and nowhere else it may subscribe."""
    return f"_INBOX_{subjects.validate_token(tenant, 'tenant')}"


# -- building blocks -----------------------------------------------------------------------------

_API = "$JS.API"
_JS_BASICS: Final = (
    f"{_API}.INFO",
    f"{_API}.STREAM.INFO.*",
    f"{_API}.STREAM.NAMES",
    f"{_API}.CONSUMER.INFO.*.*",
)
_PROVISION: Final = (
    f"{_API}.STREAM.CREATE.*",
    f"{_API}.STREAM.UPDATE.*",
    f"{_API}.CONSUMER.CREATE.*.*",
    f"{_API}.CONSUMER.CREATE.*.*.>",
    f"{_API}.CONSUMER.DURABLE.CREATE.*.*",
)


def _read_stream(stream: str) -> tuple[str, ...]:
    """Replay and follow (ordered consumers), last-message and sequence reads of ``stream``."""
    return (
        f"{_API}.CONSUMER.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.DELETE.{stream}.*",
        f"{_API}.DIRECT.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"$JS.FC.{stream}.>",
    )


def _pull(stream: str, durable: str) -> tuple[str, ...]:
    """Pull from (and ack, nak, term, heartbeat) the durable ``durable`` of ``stream``
    (``*``: whichever work stream the topology binds it to, sharded or not)."""
    return (f"{_API}.CONSUMER.MSG.NEXT.{stream}.{durable}", f"$JS.ACK.{stream}.{durable}.>")


def _kv(bucket: str, *, write: bool) -> tuple[str, ...]:
    reads = _read_stream(f"KV_{bucket}")
    return (*reads, f"$KV.{bucket}.>") if write else reads


_DURABLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "broker": ((subjects.ARK_STATUS, "broker"), (subjects.ARK_EVENTS, "broker-sessions")),
    "status-sync": ((subjects.ARK_STATUS, "status-sync"),),
    # "*": whichever work stream the topology binds the kind's durable to (sharded or not).
    "query-reconciler": (("*", "query-reconciler"),),
    "responses-reconciler": (("*", "responses-reconciler"),),
    "embeddings-reconciler": (("*", "embeddings-reconciler"),),
}
"""The durable consumers each service pulls from (stream, durable)."""

_WORK = f"{subjects.ROOT}.*.work"
_QUERY = f"{subjects.ROOT}.*.query.*"
_DLQ = f"{subjects.ROOT}.*.dlq.*"
_MEMORY = f"{subjects.ROOT}.*.memory.*"


def service_permissions(service: str, *, provision: bool = True) -> Permissions:
    """What ``service`` may do; ``provision``: it also creates and updates the topology."""
    publish: list[str] = [*_JS_BASICS, *(_PROVISION if provision else ())]
    subscribe: list[str] = ["_INBOX.>"]
    for stream, durable in _DURABLES.get(service, ()):
        publish += _pull(stream, durable)
        # The worker hears of messages that ran out of deliveries from the server's advisory.
        subscribe.append(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}")
    if service == "controller":
        publish += [f"{_WORK}.query", f"{_QUERY}.cancel", f"{_QUERY}.chunk"]
        publish += [
            *_kv(subjects.CANCEL_BUCKET, write=True),
            *_kv(subjects.RUNS_BUCKET, write=True),
        ]
        publish += _read_stream(subjects.ARK_CHUNKS)
    elif service == "broker":
        publish += [f"{_WORK}.>", f"{_QUERY}.cancel", _MEMORY]
        for stream in (*TENANT_STREAMS, subjects.ARK_DLQ):
            publish += _read_stream(stream)
        for bucket in _BUCKETS:
            publish += _kv(bucket, write=True)
        subscribe.append(f"{subjects.ROOT}.*.query.*.>")
    elif service == "query-reconciler":
        publish += [f"{_QUERY}.chunk", f"{_QUERY}.event", f"{_QUERY}.status", _MEMORY, _DLQ]
        for stream in (subjects.ARK_CHUNKS, subjects.ARK_STATUS, subjects.ARK_MEMORY):
            publish += _read_stream(stream)
        publish += [
            *_kv(subjects.CANCEL_BUCKET, write=False),
            *_kv(subjects.RUNS_BUCKET, write=True),
        ]
        subscribe.append(f"{_QUERY}.cancel")
    elif service == "responses-reconciler":
        publish += [f"{_QUERY}.chunk", f"{_QUERY}.result", _DLQ]
        for stream in (subjects.ARK_CHUNKS, subjects.ARK_STATUS):
            publish += _read_stream(stream)
        publish += _kv(subjects.CANCEL_BUCKET, write=False)
        subscribe.append(f"{_QUERY}.cancel")
    elif service == "embeddings-reconciler":
        publish += [f"{_QUERY}.result", _DLQ]
        publish += _read_stream(subjects.ARK_STATUS)
    elif service == "status-sync":
        publish.append(_DLQ)
        publish += _read_stream(subjects.ARK_STATUS)
    else:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    return Permissions(_unique(publish), _unique(subscribe))


def operator_permissions() -> Permissions:
    """What :data:`OPERATOR_USER` may do: read every stream and bucket, cancel queries and put
    dead-lettered work back (``ark-mesh dlq replay``); never create or change the topology."""
    publish: list[str] = [*_JS_BASICS, f"{_WORK}.>", f"{_QUERY}.cancel"]
    for stream in (*TENANT_STREAMS, subjects.ARK_DLQ):
        publish += _read_stream(stream)
    for bucket in _BUCKETS:
        publish += _kv(bucket, write=False)
    return Permissions(_unique(publish), ("_INBOX.>", f"{subjects.ROOT}.>"))


def tenant_permissions(tenant: str = TENANT_PLACEHOLDER, *, replay: bool = False) -> Permissions:
    """What a tenant's own clients may do (see the module docstring); the default ``tenant``
    leaves the ``{tenant}`` placeholder in, for the chart's table."""
    if tenant != TENANT_PLACEHOLDER:
        subjects.validate_token(tenant, "tenant")
    own = f"{subjects.ROOT}.{tenant}"
    publish = [f"{own}.query.*.cancel"]
    for stream in TENANT_STREAMS:
        publish.append(f"{_API}.DIRECT.GET.{stream}.{own}.>")
    for bucket in TENANT_KV_BUCKETS:
        publish.append(f"{_API}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{tenant}.>")
    if replay:
        for stream in TENANT_STREAMS:
            publish += [f"{_API}.CONSUMER.CREATE.{stream}.*.{own}.>", f"$JS.FC.{stream}.>"]
        for bucket in TENANT_KV_BUCKETS:
            publish += [
                f"{_API}.CONSUMER.CREATE.KV_{bucket}.*.$KV.{bucket}.{tenant}.>",
                f"$JS.FC.KV_{bucket}.>",
            ]
    subscribe = [f"{own}.>", f"_INBOX_{tenant}.>"]
    return Permissions(_unique(publish), _unique(subscribe))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# -- nats.conf -----------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    # Quoted, so nats.conf never reads "$JS…" or "$KV…" as a variable reference.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(values: Sequence[str], indent: str) -> str:
    inner = "".join(f"\n{indent}  {_quoted(value)}" for value in values)
    return f"[{inner}\n{indent}]"


def render_authorization(users: Sequence[NatsUser]) -> str:
    """The ``authorization { users = [...] }`` block of nats.conf for ``users``.

    A ``password`` starting with ``$`` is written bare, so the server substitutes the
    environment variable of that name (how the chart keeps passwords in Secrets).
    """
    lines = ["authorization {", "  users = ["]
    for entry in users:
        if entry.comment:
            lines.append(f"    # {entry.comment}")
        lines.append("    {")
        if entry.nkey is not None:
            lines.append(f"      nkey: {_quoted(entry.nkey)}")
        if entry.user is not None:
            lines.append(f"      user: {_quoted(entry.user)}")
        if entry.password is not None:
            shown = entry.password if entry.password.startswith("$") else _quoted(entry.password)
            lines.append(f"      password: {shown}")
        p = entry.permissions
        lines.append("      permissions: {")
        lines.append(f"        publish: {{ allow: {_list(p.publish, '        ')} }}")
        lines.append(f"        subscribe: {{ allow: {_list(p.subscribe, '        ')} }}")
        lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


# -- the chart's table ---------------------------------------------------------------------------


def permission_table() -> dict[str, Any]:
    """Every permission set, for the chart (``helm/ark-mesh/nats-permissions.json``): per
    service with and without provisioning, the operator, and the tenant template (with
    ``{tenant}`` left in) without and with replay."""

    def entry(permissions: Permissions) -> dict[str, list[str]]:
        return {"publish": list(permissions.publish), "subscribe": list(permissions.subscribe)}

    return {
        "services": {
            service: {
                "provision": entry(service_permissions(service, provision=True)),
                "verify": entry(service_permissions(service, provision=False)),
            }
            for service in SERVICES
        },
        "operator": entry(operator_permissions()),
        "tenant": {
            "read": entry(tenant_permissions()),
            "replay": entry(tenant_permissions(replay=True)),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ark_mesh.bus.permissions FILE``: write :func:`permission_table` as JSON
    (which the chart reads with ``fromYaml``; ``make schemas`` calls this)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m ark_mesh.bus.permissions FILE", file=sys.stderr)
        return 2
    Path(args[0]).write_text(json.dumps(permission_table(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
