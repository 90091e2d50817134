"""What the real kubectl (and kubernetes-asyncio) do against the emulator, command by command.

Each case is something kubectl or Ark's chainsaw tests do that once failed or printed the wrong
thing: ``kubectl create <kind>`` sends protobuf, RBAC and other core kinds must be stored,
events must read like a real server's, printer columns use JSONPath filters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError
from ark_mesh.testing.k8s.protobuf import PROTOBUF

# kubectl commands whose object client-go sends as protobuf (there is no JSON fallback)
PROTOBUF_WRITES: list[tuple[str, ...]] = [
    ("create", "namespace", "team-a"),
    ("create", "configmap", "settings", "-n", "team-a", "--from-literal=a=1", "--from-literal=b="),
    ("create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=token=s3cr3t"),
    ("create", "serviceaccount", "runner", "-n", "team-a"),
    ("create", "role", "reader", "-n", "team-a", "--verb=get,list", "--resource=configmaps,secrets"),
    ("create", "rolebinding", "reader", "-n", "team-a", "--role=reader",
     "--serviceaccount=team-a:runner"),
    ("create", "clusterrole", "ns-reader", "--verb=get,watch", "--resource=namespaces"),
    ("create", "clusterrolebinding", "ns-reader", "--clusterrole=ns-reader", "--user=bob",
     "--group=ops"),
    ("create", "service", "clusterip", "web", "-n", "team-a", "--tcp=80:8080", "--tcp=443:8443"),
    ("create", "deployment", "web", "-n", "team-a", "--image=nginx", "--replicas=0", "--port=80"),
]  # fmt: skip


@pytest.fixture
def kubectl(kube_emulator: KubeEmulator, tmp_path: Path) -> Kubectl:
    return Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")


@pytest.fixture
async def asyncio_api(kube_emulator: KubeEmulator) -> AsyncIterator[k8s_client.ApiClient]:
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(kube_emulator.kubeconfig_path), client_configuration=configuration
    )
    async with k8s_client.ApiClient(configuration) as api:
        yield api


def _contained(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from what ``expected`` (kubectl's own object) says."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        return [
            problem
            for key, value in expected.items()
            if value not in (None, {}, [])
            for problem in _contained(value, actual.get(key), f"{path}.{key}")
        ]
    return [] if expected == actual else [f"{path}: expected {expected!r}, stored {actual!r}"]


async def test_kubectl_create_subcommands_write_protobuf_that_is_stored_faithfully(
    kube_emulator: KubeEmulator, kubectl: Kubectl
) -> None:
    for command in PROTOBUF_WRITES:
        # what kubectl itself builds, without sending it
        intended = await kubectl.json(*command, "--dry-run=client")
        await kubectl.run(*command)
        kind = intended["kind"]
        plural = {
            "ServiceAccount": "serviceaccounts",
            "ClusterRoleBinding": "clusterrolebindings",
            "ClusterRole": "clusterroles",
            "RoleBinding": "rolebindings",
        }.get(kind, kind.lower() + "s")
        group = intended["apiVersion"].rpartition("/")[0]
        resource = f"{plural}.{group}" if group else plural
        namespace = intended["metadata"].get("namespace")
        stored = await kubectl.json(
            "get", resource, intended["metadata"]["name"], *(["-n", namespace] if namespace else [])
        )
        intended["metadata"].pop("creationTimestamp", None)
        assert _contained(intended, stored) == [], command
    creates = kube_emulator.log.select(verb="create")
    assert len(creates) == len(PROTOBUF_WRITES)
    assert {r.content_type for r in creates} == {PROTOBUF}
    assert {r.status for r in creates} == {201}
    secret = await kubectl.json("get", "secret", "creds", "-n", "team-a")
    assert secret["type"] == "Opaque"
    binding = await kubectl.json("get", "clusterrolebinding", "ns-reader")
    assert [s["kind"] for s in binding["subjects"]] == ["User", "Group"]
    settings = await kubectl.json("get", "configmap", "settings", "-n", "team-a")
    assert settings["data"] == {"a": "1", "b": ""}  # an empty map value survives
    deployment = await kubectl.json("get", "deployment", "web", "-n", "team-a")
    assert deployment["metadata"]["generation"] == 1
    assert deployment["spec"]["replicas"] == 0  # a pointer's zero is kept, as Go's JSON writes it


async def test_kubectl_edits_and_deletes_core_kinds(kubectl: Kubectl) -> None:
    await kubectl.run("create", "namespace", "team-b")
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "team-b"},
            "data": {"k": "v"},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "bot", "namespace": "team-b"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "r", "namespace": "team-b"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "r", "namespace": "team-b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team-b"}],
        },
    ]
    document = {"apiVersion": "v1", "kind": "List", "items": manifests}
    await kubectl.run("apply", "-f", "-", stdin=json.dumps(document))
    manifests[2]["rules"][0]["verbs"] = ["get", "list"]
    await kubectl.run("apply", "-f", "-", stdin=json.dumps(document))  # a patch this time
    role = await kubectl.json("get", "role", "r", "-n", "team-b")
    assert role["rules"][0]["verbs"] == ["get", "list"]

    await kubectl.run("label", "configmap", "cfg", "-n", "team-b", "tier=gold")
    await kubectl.run("annotate", "serviceaccount", "bot", "-n", "team-b", "owner=ops")
    await kubectl.run("patch", "configmap", "cfg", "-n", "team-b", "-p", '{"data":{"x":"y"}}')
    await kubectl.run(
        "patch", "rolebinding", "r", "-n", "team-b", "--type=json", "-p",
        '[{"op":"replace","path":"/subjects/0/name","value":"robot"}]',
    )  # fmt: skip
    cfg = await kubectl.json("get", "configmap", "cfg", "-n", "team-b")
    assert cfg["metadata"]["labels"] == {"tier": "gold"}
    assert cfg["data"] == {"k": "v", "x": "y"}
    bot = await kubectl.json("get", "sa", "bot", "-n", "team-b")
    assert bot["metadata"]["annotations"]["owner"] == "ops"
    binding = await kubectl.json("get", "rolebinding", "r", "-n", "team-b")
    assert binding["subjects"][0]["name"] == "robot"

    await kubectl.run("delete", "rolebinding", "r", "-n", "team-b")
    await kubectl.run("delete", "-f", "-", "--ignore-not-found", stdin=json.dumps(document))
    listed = await kubectl.json(
        "get", "configmaps,serviceaccounts,roles,rolebindings", "-n", "team-b"
    )
    # what is left is the account every namespace gets, as on a cluster
    assert [(i["kind"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("ServiceAccount", "default")
    ]
    await kubectl.run("delete", "namespace", "team-b")
    with pytest.raises(KubectlError) as gone:
        await kubectl.run("get", "namespace", "team-b")
    assert gone.value.code == 404


async def test_rbac_crds_posted_by_a_runner_never_shadow_the_built_in_kinds(
    kube_emulator: KubeEmulator, kubectl: Kubectl
) -> None:
    await kubectl.run("create", "role", "before", "--verb=get", "--resource=configmaps")

    def rbac_crd(kind: str, plural: str) -> dict[str, Any]:
        # what the conformance runner posts: a storage-only CRD named like the built-in kind
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.rbac.authorization.k8s.io"},
            "spec": {
                "group": "rbac.authorization.k8s.io",
                "scope": "Cluster" if kind.startswith("Cluster") else "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }

    url = f"{kube_emulator.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    kinds = [("Role", "roles"), ("RoleBinding", "rolebindings"), ("ClusterRole", "clusterroles")]
    async with aiohttp.ClientSession() as http:
        for attempt in (201, 409):
            for kind, plural in kinds:
                async with http.post(url, json=rbac_crd(kind, plural)) as response:
                    assert response.status == attempt, await response.text()

    await kubectl.run("create", "role", "after", "--verb=list", "--resource=secrets")
    roles = await kubectl.json("get", "roles")
    assert sorted(r["metadata"]["name"] for r in roles["items"]) == ["after", "before"]
    # still the built-in Role: its list items carry no apiVersion/kind, unlike a CR list
    raw = json.loads(
        await kubectl.raw("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles")
    )
    assert all("kind" not in item for item in raw["items"])
    discovery = json.loads(await kubectl.raw("/apis/rbac.authorization.k8s.io/v1"))
    names = [r["name"] for r in discovery["resources"]]
    assert sorted(names) == sorted(set(names))

    await kubectl.run("delete", "crd", "roles.rbac.authorization.k8s.io")
    roles = await kubectl.json("get", "roles")
    assert sorted(r["metadata"]["name"] for r in roles["items"]) == ["after", "before"]


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _event_fixtures(kubectl: Kubectl) -> None:
    """Three events about Team t1 and one about t2, through both APIs and both shapes."""
    now = datetime.now(UTC)
    new_style = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "reportingController": "ark/controller",
        "reportingInstance": "pod-0",
        "type": "Normal",
        "regarding": {"apiVersion": "ark.mckinsey.com/v1alpha1", "kind": "Team",
                      "namespace": "default", "name": "t1"},
    }  # fmt: skip
    events: list[dict[str, Any]] = [
        {
            **new_style,
            "metadata": {"name": "t1.created"},
            "eventTime": _micro(now - timedelta(minutes=30)),
            "action": "Reconcile",
            "reason": "TeamCreated",
            "note": "team created",
        },
        {
            **new_style,
            "metadata": {"name": "t1.probed"},
            "eventTime": _micro(now - timedelta(minutes=20)),
            "series": {"count": 4, "lastObservedTime": _micro(now - timedelta(minutes=1))},
            "action": "Probe",
            "reason": "MembersReady",
            "note": "all members exist",
        },
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "t1.legacy"},
            "involvedObject": {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "Team",
                "namespace": "default",
                "name": "t1",
            },
            "source": {"component": "old-controller"},
            "firstTimestamp": (now - timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 7,
            "type": "Warning",
            "reason": "MemberMissing",
            "message": "agent a2 not found",
        },
        {
            **new_style,
            "metadata": {"name": "t2.created"},
            "regarding": {**new_style["regarding"], "name": "t2"},
            "eventTime": _micro(now - timedelta(minutes=5)),
            "action": "Reconcile",
            "reason": "TeamCreated",
            "note": "team created",
        },
    ]
    await kubectl.run(
        "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": events})
    )


async def test_kubectl_reads_events_of_both_apis_like_a_real_server(kubectl: Kubectl) -> None:
    await _event_fixtures(kubectl)

    table = (await kubectl.run("get", "events", "--sort-by=.lastTimestamp")).stdout.splitlines()
    assert table[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert len(table) == 5
    wide = (await kubectl.run("get", "events", "-o", "wide")).stdout.splitlines()
    assert wide[0].split()[-3:] == ["SEEN", "COUNT", "NAME"]
    counts = {row.split()[-1]: row.split()[-2] for row in wide[1:]}
    assert counts == {"t1.created": "1", "t1.probed": "4", "t1.legacy": "7", "t2.created": "1"}
    legacy_row = next(row for row in wide if row.endswith("t1.legacy"))
    assert legacy_row.split()[0] == "10m"  # last seen from lastTimestamp
    probed_row = next(row for row in wide if row.endswith("t1.probed"))
    assert probed_row.split()[0] == "60s"  # last seen from the series

    selected = await kubectl.json(
        "get", "events", "--field-selector", "involvedObject.name=t1,involvedObject.kind=Team"
    )
    assert sorted(e["metadata"]["name"] for e in selected["items"]) == [
        "t1.created",
        "t1.legacy",
        "t1.probed",
    ]
    by_reason = await kubectl.json(
        "get", "events", "--field-selector", "involvedObject.name=t1,reason=TeamCreated,type=Normal"
    )
    assert [e["metadata"]["name"] for e in by_reason["items"]] == ["t1.created"]
    created = by_reason["items"][0]
    assert created["message"] == "team created"
    assert created["reportingComponent"] == "ark/controller"
    assert created["lastTimestamp"] is None  # as on a cluster: events.k8s.io never sets it
    by_source = await kubectl.json("get", "events", "--field-selector", "source=old-controller")
    assert [e["metadata"]["name"] for e in by_source["items"]] == ["t1.legacy"]

    new_api = await kubectl.json(
        "get", "events.v1.events.k8s.io", "--field-selector", "regarding.name=t1,type=Warning"
    )
    [legacy] = new_api["items"]
    assert legacy["deprecatedCount"] == 7
    assert legacy["deprecatedSource"] == {"component": "old-controller"}
    assert legacy["note"] == "agent a2 not found"
    with pytest.raises(KubectlError) as unsupported:
        await kubectl.run(
            "get", "events.v1.events.k8s.io", "--field-selector", "involvedObject.name=t1"
        )
    assert unsupported.value.code == 400

    for_t1 = (await kubectl.run("events", "--for", "team/t1")).stdout.splitlines()
    assert len(for_t1) == 4
    assert "(x7 over 50m)" in next(row for row in for_t1 if "MemberMissing" in row)
    assert "(x4 over 20m)" in next(row for row in for_t1 if "MembersReady" in row)

    # a legacy event can still be updated through the new API (create-only rules do not apply)
    series = {"series": {"count": 2, "lastObservedTime": _micro(datetime.now(UTC))}}
    await kubectl.run(
        "patch", "events.v1.events.k8s.io", "t1.legacy", "--type=merge", "-p", json.dumps(series)
    )
    with pytest.raises(KubectlError) as bad_series:
        await kubectl.run(
            "patch", "events.v1.events.k8s.io", "t2.created", "--type=merge",
            "-p", json.dumps({"series": {"count": 1}}),
        )  # fmt: skip
    assert "series.count: Invalid value" in bad_series.value.message
    assert "series.lastObservedTime: Required value" in bad_series.value.message


async def test_events_v1_refuses_what_the_real_api_refuses(kubectl: Kubectl) -> None:
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "bad"},
        "eventTime": _micro(datetime.now(UTC)),
        "reportingController": "ark/controller",
        "reportingInstance": "pod-0",
        "action": "Reconcile",
        "reason": "TeamCreated",
        "type": "Normal",
        "regarding": {"kind": "Team", "namespace": "default", "name": "t1"},
        "deprecatedCount": 3,
        "series": {"count": 1, "lastObservedTime": _micro(datetime.now(UTC))},
    }
    with pytest.raises(KubectlError) as refused:
        await kubectl.run("create", "-f", "-", stdin=json.dumps(event))
    assert refused.value.code == 422
    assert "deprecatedCount: Invalid value" in refused.value.message
    assert "needs to be unset" in refused.value.message
    assert "series.count" in refused.value.message
    # the same through core/v1 with eventTime is a "new" event: reporting fields are required
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "half"},
        "eventTime": _micro(datetime.now(UTC)),
        "reason": "X",
        "involvedObject": {"kind": "Team", "namespace": "default", "name": "t1"},
    }
    with pytest.raises(KubectlError) as half:
        await kubectl.run("create", "-f", "-", stdin=json.dumps(core))
    assert half.value.code == 422
    assert "reportingComponent: Required value" in half.value.message


async def test_kubernetes_asyncio_reads_events_through_both_apis(
    kubectl: Kubectl, asyncio_api: k8s_client.ApiClient
) -> None:
    await _event_fixtures(kubectl)
    core = await k8s_client.CoreV1Api(asyncio_api).list_namespaced_event(
        "default", field_selector="involvedObject.name=t1"
    )
    by_name = {e.metadata.name: e for e in core.items}
    assert sorted(by_name) == ["t1.created", "t1.legacy", "t1.probed"]
    assert by_name["t1.legacy"].count == 7
    assert by_name["t1.probed"].series.count == 4
    assert by_name["t1.created"].last_timestamp is None
    events_v1 = await k8s_client.EventsV1Api(asyncio_api).list_namespaced_event(
        "default", field_selector="regarding.name=t2"
    )
    [t2] = events_v1.items
    assert (t2.reason, t2.note, t2.regarding.kind) == ("TeamCreated", "team created", "Team")


async def test_printer_columns_and_jsonpath_read_conditions(kubectl: Kubectl) -> None:
    model = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m1"},
        "spec": {"type": "openai", "model": {"value": "gpt-4o"},
                 "config": {"openai": {"baseUrl": {"value": "http://x"}}}},
    }  # fmt: skip
    await kubectl.run("apply", "-f", "-", stdin=json.dumps(model))
    conditions = [
        {"type": "Other", "status": "False", "reason": "R", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "ModelAvailable", "status": "True", "reason": "Probed", "message": "ok",
         "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ]  # fmt: skip
    await kubectl.run(
        "patch", "model", "m1", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"conditions": conditions}}),
    )  # fmt: skip
    table = (await kubectl.run("get", "models")).stdout.splitlines()
    header = table[0].split()
    assert header[0] == "NAME"
    assert table[1].split()[header.index("AVAILABLE")] == "True"
    available = await kubectl.run(
        "get",
        "model",
        "m1",
        "-o",
        'jsonpath={.status.conditions[?(@.type=="ModelAvailable")].status}',
    )
    assert available.stdout == "True"
    waited = await kubectl.run(
        "wait", "--for=condition=ModelAvailable", "model/m1", "--timeout=10s"
    )
    assert "condition met" in waited.stdout
    described = (await kubectl.run("describe", "model", "m1")).stdout
    assert "ModelAvailable" in described


async def test_kubectl_apply_updates_lists_of_built_in_kinds_by_their_merge_keys(
    kubectl: Kubectl,
) -> None:
    deployment = await kubectl.json(
        "create", "deployment", "web", "--image=nginx", "--port=80", "--dry-run=client"
    )
    containers = deployment["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "side", "image": "busybox", "env": [{"name": "A", "value": "1"}]})
    service = await kubectl.json(
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
        "--tcp=81:8081",
        "--dry-run=client",
    )
    for document in (deployment, service):
        await kubectl.run("apply", "-f", "-", stdin=json.dumps(document))

    # kubectl's three-way strategic merge patches: $setElementOrder, $patch: delete, ...
    containers[0]["image"] = "nginx:2"
    containers[0]["ports"][0]["containerPort"] = 8080
    containers[1]["env"] = [{"name": "B", "value": "2"}]
    service["spec"]["ports"] = service["spec"]["ports"][1:]
    for document in (deployment, service):
        await kubectl.run("apply", "-f", "-", stdin=json.dumps(document))
    stored = await kubectl.json("get", "deployment", "web")
    assert stored["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:2", "ports": [{"containerPort": 8080}], "resources": {}},
        {"name": "side", "image": "busybox", "env": [{"name": "B", "value": "2"}]},
    ]
    assert stored["metadata"]["generation"] == 2
    ports = (await kubectl.json("get", "service", "web"))["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in ports] == [(81, 8081)]

    del containers[1]
    await kubectl.run("apply", "-f", "-", stdin=json.dumps(deployment))
    stored = await kubectl.json("get", "deployment", "web")
    assert [c["name"] for c in stored["spec"]["template"]["spec"]["containers"]] == ["nginx"]
