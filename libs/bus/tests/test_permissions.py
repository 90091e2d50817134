"""The NATS authorization model (decision 55) as data: what each user may do.

The end-to-end proof that a real server enforces it is ``tests/e2e/test_nats_auth.py`` (local
mesh) and ``tests/deploy/test_nats_auth.py`` (the chart's rendering); these pin the properties
the model rests on, so a careless edit of the table fails here first.
"""

from __future__ import annotations

import pytest

from ark_mesh.bus.permissions import (
    SERVICES,
    NatsUser,
    Permissions,
    operator_permissions,
    render_authorization,
    service_permissions,
    tenant_inbox_prefix,
    tenant_permissions,
)
from ark_mesh.contracts import SubjectError

BODY_ADDRESSED = (
    "$JS.API.CONSUMER.DURABLE.CREATE.",
    "$JS.API.STREAM.MSG.GET.",
    "$JS.API.STREAM.INFO.",
    "$JS.API.CONSUMER.MSG.NEXT.",
    "$JS.API.CONSUMER.DELETE.",
)
"""Prefixes of JetStream API requests whose subject does not say which data they reach."""


def _body_addressed(subject: str) -> bool:
    tokens = subject.split(".")
    if subject.startswith(("$JS.API.CONSUMER.CREATE.", "$JS.API.DIRECT.GET.")):
        return len(tokens) <= 5  # no consumer name and filter, no subject: the body says
    return subject.startswith(BODY_ADDRESSED)


@pytest.mark.parametrize("replay", [False, True])
def test_every_tenant_subject_names_the_tenant_and_no_request_is_addressed_by_its_body(
    replay: bool,
) -> None:
    permissions = tenant_permissions("team-a", replay=replay)
    inbox = f"{tenant_inbox_prefix('team-a')}.>"
    for subject in (*permissions.publish, *permissions.subscribe):
        if subject == inbox:
            continue
        if subject.startswith("$JS.FC."):
            # Flow-control answers of the tenant's ordered consumers: they carry no data and
            # only let a consumer go on delivering.
            assert replay
            continue
        tokens = subject.split(".")
        assert "team-a" in tokens, subject
        before = tokens[: tokens.index("team-a")]
        assert ">" not in before, f"{subject}: a wildcard before the tenant"
        # The one "*" before the tenant: the consumer's name in the filtered create subject.
        stars = [i for i, token in enumerate(before) if token == "*"]
        assert stars in ([], [5]), subject
        assert not stars or subject.startswith("$JS.API.CONSUMER.CREATE."), subject
    for subject in permissions.publish:
        assert not any(subject == p or subject.startswith(p + ".") for p in BODY_ADDRESSED), subject
        if subject.startswith("$JS.API.CONSUMER.CREATE."):
            # <stream>.<name>.<filter…>: the filter is the tenant's own subjects.
            assert replay
            assert subject.split(".", 6)[6].startswith(("ark.team-a.", "$KV.")), subject
    assert permissions.subscribe == ("ark.team-a.>", inbox)
    assert not any("work" in s for s in permissions.publish), "tenants never publish work"


def test_a_tenant_name_that_is_not_a_token_is_refused() -> None:
    with pytest.raises(SubjectError):
        tenant_permissions("team.a")
    with pytest.raises(SubjectError):
        Permissions(("ark.{tenant}.>",), ()).with_tenant("*")


def test_services_have_their_roles() -> None:
    def publishes(service: str, subject: str) -> bool:
        return subject in service_permissions(service).publish

    assert publishes("broker", "ark.*.work.>")
    assert publishes("controller", "ark.*.work.query")
    for service in ("query-reconciler", "status-sync", "responses-reconciler"):
        assert not any(".work." in s for s in service_permissions(service).publish), service
    assert not any(
        s.startswith("ark.") for s in service_permissions("status-sync").publish if "dlq" not in s
    )
    assert publishes("query-reconciler", "$JS.API.CONSUMER.MSG.NEXT.*.query-reconciler")
    assert not publishes("broker", "$JS.API.CONSUMER.MSG.NEXT.*.query-reconciler")
    verify = service_permissions("broker", provision=False).publish
    assert "$JS.API.STREAM.CREATE.*" not in verify
    assert "$JS.API.STREAM.CREATE.*" in service_permissions("broker").publish
    assert not any("CREATE" in s and "STREAM" in s for s in operator_permissions().publish)
    with pytest.raises(ValueError, match="unknown service"):
        service_permissions("nobody")
    assert len(SERVICES) == 6


def test_nats_conf_quotes_subjects_and_leaves_password_variables_bare() -> None:
    text = render_authorization(
        [
            NatsUser(Permissions(("$JS.API.INFO",), ("_INBOX.>",)), user="a", password="$PW_0"),
            NatsUser(Permissions(("x",), ("y",)), user="b", password='p"w'),
            NatsUser(Permissions(("x",), ("y",)), nkey="UABC"),
        ]
    )
    assert "password: $PW_0\n" in text
    assert 'password: "p\\"w"' in text
    assert '"$JS.API.INFO"' in text
    assert 'nkey: "UABC"' in text
