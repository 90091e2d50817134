"""Least-privilege RBAC: what each service account may do, decided the way the API server
decides it (Roles bound in a namespace, ClusterRoles bound there or cluster-wide)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from ark_mesh.kube import ApiResource
from ark_mesh.resolver import RESOLVER_KINDS

from .conftest import Chart, Rendered

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")
RELEASE_NAMESPACE = "ark"
OTHER_NAMESPACE = "somewhere-else"


@dataclass(frozen=True)
class Access:
    """``can(account, verb, group, resource, namespace)`` over the rendered RBAC objects."""

    rendered: Rendered

    def _rules(self, kind: str, name: str, namespace: str | None) -> list[dict[str, Any]]:
        for obj in self.rendered.kinds(kind):
            meta = obj["metadata"]
            if meta["name"] == name and (kind == "ClusterRole" or meta["namespace"] == namespace):
                rules: list[dict[str, Any]] = obj.get("rules") or []
                return rules
        raise AssertionError(f"binding refers to a missing {kind} {name}")

    def rules_of(self, account: str, namespace: str) -> list[dict[str, Any]]:
        """Every rule that applies to ``account`` (in the release namespace) in ``namespace``."""
        rules: list[dict[str, Any]] = []
        for binding in self.rendered.kinds("RoleBinding", "ClusterRoleBinding"):
            if not _binds(binding, account, self.rendered.namespace):
                continue
            if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
                continue
            ref = binding["roleRef"]
            bound_in = binding["metadata"].get("namespace")
            rules += self._rules(ref["kind"], ref["name"], bound_in)
        return rules

    def can(self, account: str, verb: str, group: str, resource: str, namespace: str) -> bool:
        return any(
            _matches(rule.get("apiGroups", []), group)
            and _matches(rule.get("resources", []), resource)
            and _matches(rule.get("verbs", []), verb)
            for rule in self.rules_of(account, namespace)
        )

    def all_rules(self, account: str, namespaces: Iterable[str]) -> list[dict[str, Any]]:
        return [rule for ns in namespaces for rule in self.rules_of(account, ns)]


def _binds(binding: dict[str, Any], account: str, namespace: str) -> bool:
    return any(
        s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == namespace
        for s in binding.get("subjects", [])
    )


def _matches(allowed: list[str], value: str) -> bool:
    return "*" in allowed or value in allowed


def resolver_reads() -> list[tuple[str, str]]:
    """(group, plural) of everything the resolver reads; Queries reach it inside the request."""
    resources = [ApiResource.of(kind) for name, kind in RESOLVER_KINDS.items() if name != "Query"]
    return [(r.group, r.plural) for r in resources]


def access(chart: Chart, preset: str, **values: Any) -> Access:
    return Access(chart.render(preset, values, namespace=RELEASE_NAMESPACE))


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_status_sync_writes_query_status_only(chart: Chart, preset: str) -> None:
    rbac = access(chart, preset)
    account = rbac.rendered.name("status-sync")
    ark = "ark.mckinsey.com"
    assert rbac.can(account, "patch", ark, "queries/status", "team-a")
    assert rbac.can(account, "get", ark, "queries", "team-a")
    for verb in WRITE_VERBS:
        assert not rbac.can(account, verb, ark, "queries", "team-a"), verb
    assert not rbac.can(account, "list", "", "secrets", "team-a")
    assert rbac.can(account, "create", "events.k8s.io", "events", "team-a")
    assert rbac.can(account, "create", "", "events", "team-a")


def test_status_sync_without_events_cannot_create_them(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible", statusSync={"events": False})
    account = rbac.rendered.name("status-sync")
    assert not rbac.can(account, "create", "events.k8s.io", "events", "team-a")
    assert not rbac.can(account, "create", "", "events", "team-a")


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_query_reconciler_reads_what_the_resolver_reads_and_writes_nothing(
    chart: Chart, preset: str
) -> None:
    rbac = access(chart, preset)
    account = rbac.rendered.name("query-reconciler")
    for group, plural in resolver_reads():
        for verb in READ_VERBS:
            assert rbac.can(account, verb, group, plural, "team-a"), f"{verb} {plural}"
    for rule in rbac.all_rules(account, ["team-a", RELEASE_NAMESPACE]):
        assert set(rule["verbs"]) <= set(READ_VERBS), rule
    assert not rbac.can(account, "get", "ark.mckinsey.com", "queries", "team-a")


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_responses_reconciler_reads_what_the_resolver_reads_and_writes_nothing(
    chart: Chart, preset: str
) -> None:
    """Agent and team targets run through the resolver, so it reads all the resolver reads."""
    rbac = access(chart, preset)
    account = rbac.rendered.name("responses-reconciler")
    for group, plural in resolver_reads():
        for verb in READ_VERBS:
            assert rbac.can(account, verb, group, plural, "team-a"), f"{verb} {plural}"
    for rule in rbac.all_rules(account, ["team-a", RELEASE_NAMESPACE]):
        assert set(rule["verbs"]) <= set(READ_VERBS), rule
    assert not rbac.can(account, "get", "ark.mckinsey.com", "queries", "team-a")


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_embeddings_reconciler_reads_models_and_their_secrets_only(
    chart: Chart, preset: str
) -> None:
    rbac = access(chart, preset)
    account = rbac.rendered.name("embeddings-reconciler")
    ark = "ark.mckinsey.com"
    for group, plural in [(ark, "models"), ("", "secrets"), ("", "configmaps")]:
        for verb in READ_VERBS:
            assert rbac.can(account, verb, group, plural, "team-a"), f"{verb} {plural}"
    for group, plural in resolver_reads():
        if plural not in ("models", "secrets", "configmaps"):
            assert not rbac.can(account, "get", group, plural, "team-a"), plural
    assert not rbac.can(account, "list", ark, "agents", "team-a")
    assert not rbac.can(account, "get", ark, "queries", "team-a")
    for rule in rbac.all_rules(account, ["team-a", RELEASE_NAMESPACE]):
        assert set(rule["verbs"]) <= set(READ_VERBS), rule


def test_controller_permissions_in_flexible_preset(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible")
    account = rbac.rendered.name("controller")
    ark = "ark.mckinsey.com"
    for verb in ("get", "list", "watch", "patch", "delete"):
        assert rbac.can(account, verb, ark, "queries", "team-a"), verb
    assert not rbac.can(account, "create", ark, "queries", "team-a")
    assert not rbac.can(account, "update", ark, "queries", "team-a")
    assert rbac.can(account, "patch", ark, "queries/status", "team-a")
    assert rbac.can(account, "create", "events.k8s.io", "events", "team-a")
    assert rbac.can(account, "create", "", "events", "team-a")
    # inController is allowed, so it resolves in-process and reads what the resolver reads.
    for group, plural in resolver_reads():
        assert rbac.can(account, "watch", group, plural, "team-a"), plural
    assert not rbac.can(account, "get", "coordination.k8s.io", "leases", RELEASE_NAMESPACE)


def test_strict_controller_without_resource_controllers_cannot_read_secrets(chart: Chart) -> None:
    """scale-strict never resolves in the controller: without the resource controllers (which
    probe Models with their keys) it cannot list or watch what the resolver reads and cannot read
    Secrets or ConfigMaps at all; admission may only check that the Agents, Models… an object
    names exist (``get``, one object at a time)."""
    rbac = access(chart, "scale-strict", controller={"resourceControllers": {"enabled": False}})
    account = rbac.rendered.name("controller")
    for group, plural in resolver_reads():
        for verb in ("list", "watch"):
            assert not rbac.can(account, verb, group, plural, "team-a"), plural
        if group == "":
            assert not rbac.can(account, "get", group, plural, "team-a"), plural
    assert rbac.can(account, "get", "ark.mckinsey.com", "agents", "team-a")
    assert rbac.can(account, "watch", "ark.mckinsey.com", "queries", "team-a")
    assert not rbac.can(account, "patch", "ark.mckinsey.com", "models/status", "team-a")
    assert not rbac.can(account, "create", "ark.mckinsey.com", "tools", "team-a")


@pytest.mark.parametrize("preset", ["simple", "scale-flexible", "scale-strict"])
def test_resource_controllers_read_write_status_and_keep_discovered_children(
    chart: Chart, preset: str
) -> None:
    rbac = access(chart, preset)
    account = rbac.rendered.name("controller")
    ark = "ark.mckinsey.com"
    for group, plural in [*resolver_reads(), (ark, "executionengines")]:
        for verb in READ_VERBS:
            assert rbac.can(account, verb, group, plural, "team-a"), f"{verb} {plural}"
    for plural in (
        "models",
        "agents",
        "teams",
        "tools",
        "memories",
        "executionengines",
        "mcpservers",
        "a2aservers",
    ):
        assert rbac.can(account, "patch", ark, f"{plural}/status", "team-a"), plural
    # MCP discovery keeps Tools, A2A discovery Agents; nothing else is created or deleted.
    for plural in ("tools", "agents"):
        for verb in ("create", "update", "delete"):
            assert rbac.can(account, verb, ark, plural, "team-a"), f"{verb} {plural}"
    for plural in ("models", "teams", "memories", "mcpservers", "a2aservers"):
        assert not rbac.can(account, "create", ark, plural, "team-a"), plural
        assert not rbac.can(account, "patch", ark, plural, "team-a"), plural
    assert not rbac.can(account, "patch", "", "secrets", "team-a")


def test_simple_controller_resolves_in_process(chart: Chart) -> None:
    rbac = access(chart, "simple")
    account = rbac.rendered.name("controller")
    for group, plural in resolver_reads():
        assert rbac.can(account, "list", group, plural, "team-a"), plural
    accounts = {a["metadata"]["name"] for a in rbac.rendered.kinds("ServiceAccount")}
    assert accounts == {account}


def test_leases_only_with_leader_election_and_only_in_the_release_namespace(
    chart: Chart,
) -> None:
    rbac = access(chart, "scale-flexible", controller={"replicas": 2})
    account = rbac.rendered.name("controller")
    for verb in ("get", "create", "update"):
        assert rbac.can(account, verb, "coordination.k8s.io", "leases", RELEASE_NAMESPACE), verb
    assert not rbac.can(account, "get", "coordination.k8s.io", "leases", OTHER_NAMESPACE)
    assert not rbac.can(account, "delete", "coordination.k8s.io", "leases", RELEASE_NAMESPACE)


def test_watch_namespace_grants_roles_in_that_namespace_only(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible", watchNamespace="team-a")
    # the one cluster-wide grant: admission's ArkConfig/default and its webhook configurations
    cluster_roles = rbac.rendered.kinds("ClusterRole")
    assert [role["metadata"]["name"] for role in cluster_roles] == ["ark-ark-mesh-admission"]
    assert {r for rule in cluster_roles[0]["rules"] for r in rule["resources"]} == {
        "arkconfigs",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    }
    ark = "ark.mckinsey.com"
    controller = rbac.rendered.name("controller")
    status_sync = rbac.rendered.name("status-sync")
    reconciler = rbac.rendered.name("query-reconciler")
    assert rbac.can(controller, "watch", ark, "queries", "team-a")
    assert not rbac.can(controller, "watch", ark, "queries", OTHER_NAMESPACE)
    assert rbac.can(status_sync, "patch", ark, "queries/status", "team-a")
    assert not rbac.can(status_sync, "patch", ark, "queries/status", OTHER_NAMESPACE)
    assert rbac.can(reconciler, "get", "", "secrets", "team-a")
    assert not rbac.can(reconciler, "get", "", "secrets", OTHER_NAMESPACE)
    for component in ("responses-reconciler", "embeddings-reconciler"):
        account = rbac.rendered.name(component)
        assert rbac.can(account, "watch", ark, "models", "team-a"), component
        assert not rbac.can(account, "watch", ark, "models", OTHER_NAMESPACE), component


def test_cluster_wide_grants_apply_in_every_namespace(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible")
    controller = rbac.rendered.name("controller")
    for namespace in ("team-a", OTHER_NAMESPACE, RELEASE_NAMESPACE):
        assert rbac.can(controller, "watch", "ark.mckinsey.com", "queries", namespace)
    names = {r["metadata"]["name"] for r in rbac.rendered.kinds("ClusterRole")}
    assert all(name.startswith(f"{RELEASE_NAMESPACE}-") for name in names), (
        "cluster-scoped names carry the release namespace so two releases never collide"
    )


@pytest.mark.parametrize("preset", ["simple", "scale-flexible", "scale-strict"])
def test_every_pod_runs_as_its_own_bound_service_account(chart: Chart, preset: str) -> None:
    # With query mirrors on, the broker is the one service that needs any Kubernetes access.
    rendered = chart.render(preset, broker_mirrors(preset), namespace=RELEASE_NAMESPACE)
    accounts = {a["metadata"]["name"] for a in rendered.kinds("ServiceAccount")}
    bound = {
        s["name"]
        for b in rendered.kinds("RoleBinding", "ClusterRoleBinding")
        for s in b["subjects"]
    }
    used = set()
    for deployment in rendered.kinds("Deployment"):
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        assert account == deployment["metadata"]["name"], "one account per service"
        used.add(account)
    assert used == accounts == bound


def broker_mirrors(preset: str) -> dict[str, Any]:
    return {} if preset == "simple" else {"broker": {"queryMirrors": True}}


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_broker_without_mirrors_has_no_kubernetes_access(chart: Chart, preset: str) -> None:
    rbac = access(chart, preset)
    account = rbac.rendered.name("broker")
    assert account in {a["metadata"]["name"] for a in rbac.rendered.kinds("ServiceAccount")}
    assert not rbac.all_rules(account, ["team-a", RELEASE_NAMESPACE, OTHER_NAMESPACE])


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_broker_with_mirrors_creates_and_reads_queries_only(chart: Chart, preset: str) -> None:
    rbac = access(chart, preset, broker={"queryMirrors": True})
    account = rbac.rendered.name("broker")
    ark = "ark.mckinsey.com"
    assert rbac.can(account, "create", ark, "queries", "team-a")
    assert rbac.can(account, "get", ark, "queries", "team-a")
    for verb in ("update", "patch", "delete", "deletecollection", "list", "watch"):
        assert not rbac.can(account, verb, ark, "queries", "team-a"), verb
    assert not rbac.can(account, "patch", ark, "queries/status", "team-a")
    assert not rbac.can(account, "update", ark, "queries/status", "team-a")
    assert not rbac.can(account, "get", "", "secrets", "team-a")
    assert not rbac.can(account, "get", ark, "agents", "team-a")
    rules = rbac.all_rules(account, ["team-a"])
    assert rules == [{"apiGroups": [ark], "resources": ["queries"], "verbs": ["get", "create"]}]


def test_broker_mirrors_in_the_watched_namespace_only(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible", watchNamespace="team-a", broker={"queryMirrors": True})
    account = rbac.rendered.name("broker")
    assert rbac.can(account, "create", "ark.mckinsey.com", "queries", "team-a")
    assert not rbac.can(account, "create", "ark.mckinsey.com", "queries", OTHER_NAMESPACE)


def test_broker_as_ark_api_writes_queries_and_reads_targets_only(chart: Chart) -> None:
    rbac = access(chart, "scale-flexible", broker={"arkApi": {"enabled": True}})
    account = rbac.rendered.name("broker")
    ark = "ark.mckinsey.com"
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert rbac.can(account, verb, ark, "queries", "team-a"), verb
    for resource in ("agents", "models", "teams", "tools"):
        assert rbac.can(account, "list", ark, resource, "team-a"), resource
        assert rbac.can(account, "watch", ark, resource, "team-a"), resource
        assert not rbac.can(account, "create", ark, resource, "team-a"), resource
    # Tool approvals: a decision is a patch of the A2ATask's spec, never of its status.
    for verb in ("get", "list", "patch"):
        assert rbac.can(account, verb, ark, "a2atasks", "team-a"), verb
    assert not rbac.can(account, "patch", ark, "a2atasks/status", "team-a")
    assert not rbac.can(account, "patch", ark, "queries/status", "team-a")
    assert not rbac.can(account, "get", "", "secrets", "team-a")
    assert not rbac.can(account, "get", ark, "memories", "team-a")


def test_the_access_model_can_say_no(chart: Chart) -> None:
    """A binding to a missing role is an error, and nothing is granted by default."""
    rbac = access(chart, "simple")
    assert not rbac.can("nobody", "get", "", "pods", RELEASE_NAMESPACE)
    broken = Rendered(
        [
            {
                "kind": "RoleBinding",
                "metadata": {"name": "b", "namespace": "x"},
                "roleRef": {"kind": "Role", "name": "missing"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ark"}],
            }
        ],
        namespace="ark",
        release="ark-mesh",
    )
    with pytest.raises(AssertionError, match="missing Role"):
        Access(broken).can("sa", "get", "", "pods", "x")


@pytest.mark.parametrize("preset", ["simple", "scale-flexible", "scale-strict"])
def test_approval_tasks_are_opened_decided_and_followed(chart: Chart, preset: str) -> None:
    """A paused query's A2ATask: opened by whoever writes the Query's status (the controller
    in-process, status-sync for standalone runs), decided, expired and followed by the
    controller even with the resource controllers off; status-sync can never delete one."""
    ark = "ark.mckinsey.com"
    for values in ({}, {"controller": {"resourceControllers": {"enabled": False}}}):
        rbac = access(chart, preset, **values)
        controller = rbac.rendered.name("controller")
        for verb in ("get", "list", "watch", "create", "delete"):
            assert rbac.can(controller, verb, ark, "a2atasks", "team-a"), verb
        assert rbac.can(controller, "patch", ark, "a2atasks/status", "team-a")
    if preset == "simple":
        return
    rbac = access(chart, preset)
    sync = rbac.rendered.name("status-sync")
    assert rbac.can(sync, "create", ark, "a2atasks", "team-a")
    assert rbac.can(sync, "patch", ark, "a2atasks/status", "team-a")
    for verb in ("delete", "update", "patch", "list"):
        assert not rbac.can(sync, verb, ark, "a2atasks", "team-a"), verb
