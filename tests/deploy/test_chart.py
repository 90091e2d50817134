"""The Helm chart, rendered by the real helm 3.6 and checked the way a cluster would check it.

Per preset: ``helm lint``; every object valid for Kubernetes (``kubernetes-validate --strict``,
custom resources against our own CRD schemas); the right set of objects; the config files the
services would read decode with the services' own Structs and pass their validation; values
that no preset can honour fail the render with a message naming the value.
"""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import yaml

from ark_mesh.broker.config import BrokerConfig
from ark_mesh.bus import BusConfig, Topology
from ark_mesh.controller.config import ControllerConfig
from ark_mesh.devmesh import MODULES
from ark_mesh.devmesh import PRESETS as LOCAL_MESH_PRESETS
from ark_mesh.embeddings_reconciler.config import EmbeddingsReconcilerConfig
from ark_mesh.query_reconciler.config import QueryReconcilerConfig
from ark_mesh.responses_reconciler.config import ResponsesReconcilerConfig
from ark_mesh.service import load_config
from ark_mesh.status_sync.config import StatusSyncConfig
from ark_mesh.testing.k8s.openapi import prune, validate

from .conftest import (
    BROKER_TOKENS,
    CHART,
    KUBERNETES_VERSION,
    PRESETS,
    REPO,
    Chart,
    Helm,
    Rendered,
)

CONFIG_TYPES: dict[str, type[msgspec.Struct]] = {
    "controller": ControllerConfig,
    "query-reconciler": QueryReconcilerConfig,
    "status-sync": StatusSyncConfig,
    "broker": BrokerConfig,
    "responses-reconciler": ResponsesReconcilerConfig,
    "embeddings-reconciler": EmbeddingsReconcilerConfig,
}
SCALE_PRESETS = ("scale-flexible", "scale-strict")
CONFIG_PATH = "/etc/ark-mesh/config.yaml"
DEV_VALUES = REPO / "tilt" / "values-dev.yaml"

# Renders beyond the three presets that must also be valid Kubernetes.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "simple": ("simple", {}),
    "scale-flexible": ("scale-flexible", {}),
    "scale-strict": ("scale-strict", {}),
    "one-namespace": ("scale-flexible", {"watchNamespace": "team-a"}),
    "external-nats": ("scale-strict", {"nats": {"url": "nats://nats.messaging:4222"}}),
    "ha-controller": ("scale-strict", {"controller": {"replicas": 3}}),
    "autoscaled": (
        "scale-flexible",
        {
            "queryReconciler": {"autoscaling": {"enabled": True, "maxReplicas": 20}},
            "broker": {"autoscaling": {"enabled": True}},
            "networkPolicy": {
                "brokerFrom": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}],
                "natsClients": [{"namespaceSelector": {"matchLabels": {"nats-client": "yes"}}}],
            },
        },
    ),
    "broker-mirrors": (
        "scale-flexible",
        {
            "watchNamespace": "team-a",
            "broker": {
                "queryMirrors": True,
                "auth": {"mode": "token", "tokens": BROKER_TOKENS},
                "service": {"port": 8000, "annotations": {"example.com/expose": "true"}},
                "extraEnv": [{"name": "BROKER_ONLY", "value": "1"}],
            },
        },
    ),
    "broker-ark-api": (
        "scale-flexible",
        {"broker": {"arkApi": {"enabled": True}, "queryMirrors": True}},
    ),
    "everything-set": (
        "scale-flexible",
        {
            "telemetry": {"otlpEndpoint": "http://collector:4318", "resourceAttributes": "a=b"},
            "extraEnv": [{"name": "GLOBAL", "value": "1"}],
            "extraVolumes": [{"name": "tenant-keys", "secret": {"secretName": "keys"}}],
            "extraVolumeMounts": [{"name": "tenant-keys", "mountPath": "/keys", "readOnly": True}],
            "queryReconciler": {"extraEnv": [{"name": "OPENAI_API_KEY", "value": "x"}]},
            "responsesReconciler": {"extraEnv": [{"name": "OPENAI_API_KEY", "value": "x"}]},
            "embeddingsReconciler": {"maxBatch": 64, "timeout": 30, "replicas": 2},
            "imagePullSecrets": [{"name": "regcred"}],
            "nodeSelector": {"pool": "ark"},
            "tolerations": [{"key": "ark", "operator": "Exists", "effect": "NoSchedule"}],
            "nats": {"persistence": {"storageClassName": "fast"}},
            "fakeModel": {"enabled": True},
        },
    ),
    # Every kind of bus key (camelCase in values and in the files), incl. lists of maps.
    "bus-fields": (
        "scale-strict",
        {
            "queryReconciler": {"tenant": "acme"},
            "bus": {
                "connection": {"maxReconnectAttempts": -1, "maxOutstandingPings": 3},
                "topology": {
                    "work": {"maxMsgSize": 1048576, "maxMsgs": -1, "allowMsgTtl": None},
                    "workConsumers": [
                        {"kind": "query", "durable": "query-reconciler", "maxAckPending": 500}
                    ],
                    "consumers": [
                        {
                            "stream": "ARK_STATUS",
                            "durable": "status-sync",
                            "filterSubject": "ark.*.query.*.status",
                            "ackWait": 20,
                        }
                    ],
                    "dedicatedTenants": ["acme"],
                    "sharedTenants": ["default", "team-a"],
                },
                "worker": {"refillFraction": 0.5, "heartbeatInterval": 10, "deadLetterKind": None},
            },
        },
    ),
}


def unknown_keys(data: Any, struct: Any, path: str = "") -> list[str]:
    """Keys of ``data`` that ``struct`` does not declare, recursively.

    The services refuse a config file with an unknown key when they start; this finds every such
    key of a render at once, with its path, without starting anything.
    """
    if not isinstance(data, dict):
        return []
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
    found = []
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            found.append(where)
            continue
        if typing.get_origin(fields[key]) is dict and isinstance(value, dict):
            # A mapping keyed by names the user chose (tenants): check each value, not the keys.
            (_, value_type) = typing.get_args(fields[key])
            for name, item in value.items():
                for option in _struct_options(value_type):
                    found += unknown_keys(item, option, f"{where}.{name}")
            continue
        for option in _struct_options(fields[key]):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    found += unknown_keys(item, option, f"{where}[{index}]")
            else:
                found += unknown_keys(value, option, where)
    return found


def _struct_options(annotation: Any) -> list[type[msgspec.Struct]]:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return [annotation]
    return [o for arg in typing.get_args(annotation) for o in _struct_options(arg)]


def decode(rendered: Rendered, component: str, tmp_path: Path) -> Any:
    """Load a rendered config file exactly as the service does (file + no env overrides)."""
    path = tmp_path / f"{component}.yaml"
    path.write_text(rendered.config(component))
    return load_config(CONFIG_TYPES[component], path, environ={})


# -- lint and Kubernetes validity -----------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_helm_lint_passes(helm: Helm, preset: str) -> None:
    tokens = [
        f"broker.auth.tokens[{index}].{key}={value}"
        for index, token in enumerate(BROKER_TOKENS)
        for key, value in token.items()
    ]
    result = helm.run(
        "lint", "--strict", str(CHART), "--set", ",".join([f"preset={preset}", *tokens])
    )
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


def test_helm_lint_passes_with_dev_values(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--values", str(DEV_VALUES))
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects_are_valid_kubernetes(
    chart: Chart,
    kubernetes_validate: ModuleType,
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
    variant: str,
) -> None:
    preset, values = VARIANTS[variant]
    rendered = chart.render(preset, values, include_crds=True)
    problems = []
    for obj in rendered.objects:
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        schema = crd_schemas.get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            # Our own kinds: the CRD schema, as the API server applies it (no field pruned).
            problems += [f"{what}: {error}" for error in validate(schema, obj)]
            if prune(schema, obj) != obj:
                problems.append(f"{what}: has fields the CRD does not declare (would be pruned)")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            location = ".".join(str(p) for p in exc.path)
            problems.append(f"{what}: {location}: {exc.message}")
    assert not problems, "\n".join(problems)
    assert rendered.kinds("CustomResourceDefinition"), "CRDs are installed with the chart"


def test_custom_resource_validation_catches_a_wrong_field(
    crd_schemas: dict[tuple[str, str], dict[str, Any]], kubernetes_validate: ModuleType
) -> None:
    """The two validators above can fail: a bad Model and a bad Deployment are rejected."""
    model = crd_schemas[("ark.mckinsey.com/v1alpha1", "Model")]
    bad_model: dict[str, Any] = {"apiVersion": "ark.mckinsey.com/v1alpha1", "kind": "Model"}
    bad_model |= {"metadata": {"name": "m"}, "spec": {"model": {"value": 3}}}
    assert validate(model, bad_model)
    bad_deployment: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment"}
    bad_deployment["metadata"] = {"name": "d"}
    bad_deployment["spec"] = {"replicas": 1, "selector": {}, "template": {}, "replicaz": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad_deployment, KUBERNETES_VERSION, strict=True)


# -- which objects each preset deploys ------------------------------------------------------------


def test_simple_preset_is_the_controller_alone_without_nats(chart: Chart) -> None:
    rendered = chart.render("simple")
    assert [w["metadata"]["name"] for w in rendered.workloads()] == ["ark-mesh-controller"]
    assert rendered.components() == {"controller"}
    assert not [o for o in rendered.objects if "nats" in yaml.safe_dump(o).lower()]
    assert not rendered.kinds("StatefulSet", "PersistentVolumeClaim")
    # the one Service is the controller's admission webhook's
    assert [s["metadata"]["name"] for s in rendered.kinds("Service")] == ["ark-mesh-webhook"]


@pytest.mark.parametrize("preset", SCALE_PRESETS)
def test_scale_presets_deploy_every_service_and_nats(chart: Chart, preset: str) -> None:
    rendered = chart.render(preset)
    deployments = {d["metadata"]["name"] for d in rendered.kinds("Deployment")}
    assert deployments == {rendered.name(c) for c in CONFIG_TYPES}
    nats = rendered.get("StatefulSet", rendered.name("nats"))
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["podManagementPolicy"] == "Parallel"
    claim = nats["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    mounts = {m["name"]: m["mountPath"] for m in rendered.container("nats")["volumeMounts"]}
    assert mounts["data"] == "/data", "the JetStream store_dir lives on the claim"
    assert "nats.conf" in rendered.get("ConfigMap", rendered.name("nats"))["data"]
    service = rendered.get("Service", rendered.name("nats"))
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["client"] == 4222
    assert rendered.components() == {*CONFIG_TYPES, "nats"}
    assert {s["metadata"]["name"] for s in rendered.kinds("Service")} == {
        rendered.name("nats"),
        f"{rendered.name('nats')}-headless",
        rendered.name("broker"),
        rendered.name("webhook"),
    }


@pytest.mark.parametrize("preset", SCALE_PRESETS)
def test_external_nats_deploys_no_nats_objects(chart: Chart, preset: str, tmp_path: Path) -> None:
    url = "nats://nats.messaging.svc:4222"
    rendered = chart.render(preset, {"nats": {"url": url}})
    assert not rendered.kinds("StatefulSet")
    assert "nats" not in rendered.components()
    for component in CONFIG_TYPES:
        bus = decode(rendered, component, tmp_path).bus
        assert bus.connection.servers == (url,)
        # An external server's size is unknown: R1 unless bus.topology says otherwise.
        assert bus.topology.work.replicas == 1


def test_external_nats_cluster_is_a_list_of_urls(chart: Chart, tmp_path: Path) -> None:
    urls = [f"nats://nats-{i}.nats.messaging.svc:4222" for i in range(3)]
    values = {"nats": {"url": urls}, "bus": {"topology": {"work": {"replicas": 3}}}}
    rendered = chart.render("scale-flexible", values)
    assert not rendered.kinds("StatefulSet")
    for component in CONFIG_TYPES:
        bus = decode(rendered, component, tmp_path).bus
        assert bus.connection.servers == tuple(urls)
        assert bus.topology.work.replicas == 3
        assert bus.topology.chunks.replicas == 1


@pytest.mark.parametrize("preset", SCALE_PRESETS)
def test_the_chart_nats_is_a_three_node_cluster_and_everything_is_r3(
    chart: Chart, preset: str, tmp_path: Path
) -> None:
    rendered = chart.render(preset)
    name = rendered.name("nats")
    conf = rendered.get("ConfigMap", name)["data"]["nats.conf"]
    assert "cluster {" in conf
    for i in range(3):
        assert f"nats://{name}-{i}.{name}-headless.ark.svc:6222" in conf
    headless = rendered.get("Service", f"{name}-headless")
    assert {p["name"]: p["port"] for p in headless["spec"]["ports"]}["cluster"] == 6222
    ports = {p["name"]: p["containerPort"] for p in rendered.container("nats")["ports"]}
    assert ports["cluster"] == 6222
    budget = rendered.get("PodDisruptionBudget", name)
    assert budget["spec"]["maxUnavailable"] == 1
    servers = tuple(f"nats://{name}-{i}.{name}-headless.ark.svc:4222" for i in range(3))
    for component in CONFIG_TYPES:
        topology = decode(rendered, component, tmp_path).bus
        assert topology.connection.servers == servers
        settings = topology.topology
        for stream in (settings.work, settings.chunks, settings.events, settings.status):
            assert stream.replicas == 3
        for bucket in (settings.queries_bucket, settings.runs_bucket, settings.sessions_bucket):
            assert bucket.replicas == 3
        # Durable consumers name no replica count: JetStream gives them their stream's.
        assert all(c.replicas is None for c in settings.work_consumers)


def test_the_chart_nats_may_be_a_single_node(chart: Chart, tmp_path: Path) -> None:
    rendered = chart.render("scale-flexible", {"nats": {"replicas": 1}})
    name = rendered.name("nats")
    assert rendered.get("StatefulSet", name)["spec"]["replicas"] == 1
    assert "cluster {" not in rendered.get("ConfigMap", name)["data"]["nats.conf"]
    assert not rendered.has("PodDisruptionBudget", name)
    bus = decode(rendered, "broker", tmp_path).bus
    assert bus.connection.servers == (f"nats://{name}.ark.svc:4222",)
    assert bus.topology.work.replicas == 1
    explicit = chart.render("scale-flexible", {"bus": {"topology": {"dlq": {"replicas": 1}}}})
    assert decode(explicit, "broker", tmp_path).bus.topology.dlq.replicas == 1
    assert decode(explicit, "broker", tmp_path).bus.topology.work.replicas == 3


def test_presets_mirror_the_local_mesh(chart: Chart, tmp_path: Path) -> None:
    """``make run`` (LocalMesh) and the chart must mean the same thing by a preset's name."""
    for preset, expected in LOCAL_MESH_PRESETS.items():
        rendered = chart.render(preset)
        services = {d["metadata"]["name"] for d in rendered.kinds("Deployment")}
        assert services == {rendered.name(s) for s in expected["services"]}, preset
        modes = decode(rendered, "controller", tmp_path).reconciliation
        assert modes.default_reconciliation == expected["default_reconciliation"], preset
        assert list(modes.allowed_modes) == expected["allowed_modes"], preset
        for service in expected["services"]:
            command = rendered.container(service)["command"]
            assert command == ["python", "-m", MODULES[service], "--config", CONFIG_PATH]
    memory = decode(chart.render("scale-flexible"), "query-reconciler", tmp_path).memory
    assert memory.backend == "jetstream", "LocalMesh's query-reconciler uses JetStream memory"


# -- the services' config files ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_files_decode_with_the_services_structs(
    chart: Chart, variant: str, tmp_path: Path
) -> None:
    preset, values = VARIANTS[variant]
    rendered = chart.render(preset, values)
    components = [c for c in CONFIG_TYPES if rendered.has("ConfigMap", rendered.name(c))]
    assert "controller" in components
    for component in components:
        raw = yaml.safe_load(rendered.config(component))
        assert not unknown_keys(raw, CONFIG_TYPES[component]), (
            f"{component}: keys the service would ignore: {unknown_keys(raw, CONFIG_TYPES[component])}"
        )
        config = decode(rendered, component, tmp_path)
        if config.bus is not None:
            Topology(config.bus.topology)  # checks the topology's own rules
        container = rendered.container(component)
        assert container["ports"][0]["containerPort"] == config.health.port
        assert config.health.host == "0.0.0.0", "probes come from the kubelet, not localhost"
        mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["config"]
        assert f"{mount}/config.yaml" == CONFIG_PATH
        assert container["command"][-2:] == ["--config", CONFIG_PATH]
    ControllerConfig.validate(decode(rendered, "controller", tmp_path))
    if "broker" in components:
        BrokerConfig.validate(decode(rendered, "broker", tmp_path))


def test_unknown_key_detection_can_fail() -> None:
    assert unknown_keys({"bus": {"worker": {"slotz": 1}}}, StatusSyncConfig) == ["bus.worker.slotz"]
    assert unknown_keys({"bus": {"topology": {"consumers": [{"duarble": "x"}]}}}, StatusSyncConfig)


def test_simple_controller_has_no_bus(chart: Chart, tmp_path: Path) -> None:
    config = decode(chart.render("simple"), "controller", tmp_path)
    assert config.bus is None
    assert config.reconciliation.allowed_modes == ("inController",)


@pytest.mark.parametrize("preset", SCALE_PRESETS)
def test_bus_block_is_identical_in_every_service(chart: Chart, preset: str, tmp_path: Path) -> None:
    values = {"bus": {"worker": {"slots": 3}, "topology": {"chunks": {"maxAge": 600}}}}
    rendered = chart.render(preset, values, namespace="agents")
    blocks = {c: yaml.safe_load(rendered.config(c))["bus"] for c in CONFIG_TYPES}
    assert len(blocks) == 6
    # Identical but for each service's own NATS user (decision 55).
    users = {c: block["connection"].pop("auth")["user"] for c, block in blocks.items()}
    assert users == {c: f"ark-{c}" for c in CONFIG_TYPES}
    assert all(block == blocks["controller"] for block in blocks.values()), blocks.keys()
    bus = decode(rendered, "status-sync", tmp_path).bus
    assert bus.worker.slots == 3
    assert bus.topology.chunks.max_age == 600
    assert bus.worker.service is None, "each service fills in its own name"
    service = rendered.get("Service", f"{rendered.name('nats')}-headless")
    port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["client"]
    nodes = rendered.get("StatefulSet", rendered.name("nats"))["spec"]["replicas"]
    expected = tuple(
        f"nats://{rendered.name('nats')}-{i}.{service['metadata']['name']}.agents.svc:{port}"
        for i in range(nodes)
    )
    assert bus.connection.servers == expected


def test_preset_defaults_can_be_overridden(chart: Chart, tmp_path: Path) -> None:
    values = {
        "reconciliation": {"defaultReconciliation": "inController"},
        "statusSync": {"enabled": False},
        "watchNamespace": "team-a",
    }
    rendered = chart.render("scale-flexible", values)
    controller = decode(rendered, "controller", tmp_path)
    assert controller.reconciliation.default_reconciliation == "inController"
    assert controller.reconciliation.allowed_modes == ("inController", "standalone")
    assert controller.kubernetes.namespace == "team-a"
    assert decode(rendered, "query-reconciler", tmp_path).resources.namespace == "team-a"
    assert decode(rendered, "responses-reconciler", tmp_path).resources.namespace == "team-a"
    assert decode(rendered, "embeddings-reconciler", tmp_path).resources.namespace == "team-a"
    assert not rendered.has("Deployment", rendered.name("status-sync"))


def test_leader_election_follows_controller_replicas(chart: Chart, tmp_path: Path) -> None:
    single = chart.render("scale-flexible")
    assert decode(single, "controller", tmp_path).leader_election.enabled is False
    assert not [r for r in single.kinds("Role") if "leader" in r["metadata"]["name"]]

    rendered = chart.render("scale-flexible", {"controller": {"replicas": 3}}, namespace="ops")
    election = decode(rendered, "controller", tmp_path).leader_election
    assert election.enabled is True
    assert election.lease_namespace == "ops"
    assert election.lease_name == rendered.name("controller")
    assert rendered.get("Deployment", rendered.name("controller"))["spec"]["replicas"] == 3


# -- the broker ------------------------------------------------------------------------------------


def test_broker_api_is_reachable_through_its_service(chart: Chart, tmp_path: Path) -> None:
    rendered = chart.render("scale-flexible", {"broker": {"port": 9000, "service": {"port": 80}}})
    config = decode(rendered, "broker", tmp_path)
    assert (config.http.host, config.http.port) == ("0.0.0.0", 9000)
    ports = {p["name"]: p for p in rendered.container("broker")["ports"]}
    assert ports["http"]["containerPort"] == config.http.port
    assert ports["health"]["containerPort"] == config.health.port != config.http.port
    service = rendered.get("Service", rendered.name("broker"))
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = rendered.get("Deployment", rendered.name("broker"))["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod_labels["metadata"]["labels"].items()
    assert config.durable == "broker", "its own status consumer, not status-sync's"


def test_broker_auth_follows_the_preset(chart: Chart, tmp_path: Path) -> None:
    flexible = decode(chart.render("scale-flexible"), "broker", tmp_path)
    assert flexible.auth.mode == "none"
    assert flexible.auth.tokens == ()
    assert flexible.kubernetes is None, "mirrors are opt-in (they need RBAC)"

    strict = decode(chart.render("scale-strict"), "broker", tmp_path).validate()
    assert strict.auth.mode == "token", (
        "scale-strict: the broker API requires authenticated tenants"
    )
    assert [(t.tenant, t.sha256) for t in strict.auth.tokens] == [
        (t["tenant"], t["sha256"]) for t in BROKER_TOKENS
    ]
    config_text = chart.render("scale-strict").config("broker")
    assert "token-of-team-a" not in config_text, "only hashes are rendered"


def test_broker_values_reach_its_config(chart: Chart, tmp_path: Path) -> None:
    values = {
        "broker": {
            "auth": {"mode": "none", "defaultTenant": "team-b"},
            "limits": {
                "maxInFlightPerTenant": 7,
                "retryAfterSeconds": 2,
                "maxBodyBytes": 2048,
                "completionWaitSeconds": 30,
            },
            "streaming": {"heartbeatSeconds": 5, "watchMaxSeconds": 600},
            "queryMirrors": True,
            "gracePeriod": 40,
            "provision": False,
        }
    }
    rendered = chart.render("scale-strict", values)
    config = decode(rendered, "broker", tmp_path).validate()
    assert (config.auth.mode, config.auth.default_tenant) == ("none", "team-b")
    assert config.limits.max_in_flight_per_tenant == 7
    assert config.limits.retry_after_seconds == 2
    assert config.limits.max_body_bytes == 2048
    assert config.limits.completion_wait_seconds == 30
    assert config.streaming.heartbeat_seconds == 5
    assert config.streaming.watch_max_seconds == 600
    default = decode(chart.render("scale-strict"), "broker", tmp_path)
    assert default.streaming.watch_max_seconds is None, "watches follow until the client leaves"
    assert config.kubernetes is not None, "queryMirrors renders a kubernetes section"
    assert config.kubernetes.kubeconfig is None, "in-cluster credentials"
    assert config.grace_period == 40
    assert config.provision is False
    pod = rendered.get("Deployment", rendered.name("broker"))["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > config.grace_period


def test_broker_can_be_exposed_as_ark_api(chart: Chart, tmp_path: Path) -> None:
    """Ark's CLI port-forwards service/ark-api: that Service reaches the broker's pods, and the
    broker gets what ark-api's routes need (Query resources, a cache of the targets)."""
    off = chart.render("scale-flexible")
    assert not off.has("Service", "ark-api")
    rendered = chart.render("scale-flexible", {"broker": {"arkApi": {"enabled": True}}})
    service = rendered.get("Service", "ark-api")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = rendered.get("Deployment", rendered.name("broker"))["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod_labels["metadata"]["labels"].items()
    config = decode(rendered, "broker", tmp_path).validate()
    assert config.kubernetes is not None, "direct queries write Query resources"
    assert config.resources is not None
    assert (config.resources.source, config.resources.preload) == (
        "kubernetes",
        ("Agent", "Model", "Team", "Tool"),
    )
    renamed = chart.render(
        "scale-flexible", {"broker": {"arkApi": {"enabled": True, "serviceName": "ark-api-2"}}}
    )
    assert renamed.has("Service", "ark-api-2")
    assert (
        config.reconciliation.default_reconciliation,
        config.reconciliation.allowed_modes,
    ) == ("broker", ("broker", "direct"))
    direct_only = chart.render(
        "scale-flexible",
        {
            "broker": {
                "arkApi": {"enabled": True},
                "reconciliation": {"defaultReconciliation": "direct", "allowedModes": ["direct"]},
            }
        },
    )
    modes = decode(direct_only, "broker", tmp_path).validate().reconciliation
    assert (modes.default_reconciliation, modes.allowed_modes) == ("direct", ("direct",))


def test_broker_can_be_switched_off(chart: Chart) -> None:
    rendered = chart.render("scale-flexible", {"broker": {"enabled": False}})
    assert "broker" not in rendered.components()
    assert not rendered.has("Service", rendered.name("broker"))
    assert rendered.has("Deployment", rendered.name("status-sync"))
    # Without a broker nothing insists on tokens, even in scale-strict.
    strict = chart.render("scale-strict", {"broker": {"enabled": False, "auth": {"tokens": []}}})
    assert "broker" not in strict.components()


# -- the responses- and embeddings-reconcilers -------------------------------------------------------


def test_responses_reconciler_values_reach_its_config(chart: Chart, tmp_path: Path) -> None:
    values = {
        "watchNamespace": "team-a",
        "responsesReconciler": {
            "tenant": "acme",
            "provision": False,
            "resourceCache": {"preload": ["Agent", "Model"], "syncTimeout": 12},
            "models": {"maxRetries": 2, "timeout": 90, "maxConnections": 64},
            "gracePeriod": 40,
            "healthPort": 8090,
        },
        "bus": {"topology": {"dedicatedTenants": ["acme"], "sharedTenants": ["default"]}},
    }
    rendered = chart.render("scale-strict", values)
    config = decode(rendered, "responses-reconciler", tmp_path)
    assert (config.tenant, config.provision) == ("acme", False)
    assert config.resources.source == "kubernetes"
    assert config.resources.kubeconfig is None, "in-cluster credentials"
    assert config.resources.namespace == "team-a"
    assert config.resources.preload == ("Agent", "Model")
    assert config.resources.sync_timeout == 12
    assert (config.models.max_retries, config.models.timeout) == (2, 90)
    assert config.models.max_connections == 64
    assert config.models.client().max_connections == 64
    assert config.grace_period == 40
    assert config.health.port == 8090
    pod = rendered.get("Deployment", rendered.name("responses-reconciler"))["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.grace_period


def test_embeddings_reconciler_values_reach_its_config(chart: Chart, tmp_path: Path) -> None:
    default = decode(chart.render("scale-flexible"), "embeddings-reconciler", tmp_path)
    assert default.resources.preload == ("Model",), "only Models before the first request"
    assert (default.max_batch, default.timeout) == (256, 120)
    assert default.tenant is None

    values = {
        "watchNamespace": "team-a",
        "embeddingsReconciler": {
            "maxBatch": 64,
            "timeout": 30,
            "resourceCache": {"preload": ["Model", "Secret"], "syncTimeout": 5},
            "gracePeriod": 10,
            "provision": False,
        },
    }
    config = decode(chart.render("scale-flexible", values), "embeddings-reconciler", tmp_path)
    assert (config.max_batch, config.timeout) == (64, 30)
    assert config.resources.namespace == "team-a"
    assert config.resources.preload == ("Model", "Secret")
    assert config.resources.sync_timeout == 5
    assert (config.grace_period, config.provision) == (10, False)


@pytest.mark.parametrize("component", ["responses-reconciler", "embeddings-reconciler"])
def test_work_reconcilers_can_be_switched_off(chart: Chart, component: str) -> None:
    key = {"responses-reconciler": "responsesReconciler"}.get(component, "embeddingsReconciler")
    rendered = chart.render("scale-flexible", {key: {"enabled": False}})
    assert component not in rendered.components()
    assert rendered.has("Deployment", rendered.name("query-reconciler"))


# -- pods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["simple", "scale-strict", "everything-set"])
def test_every_container_runs_locked_down(chart: Chart, variant: str) -> None:
    preset, values = VARIANTS[variant]
    for workload in chart.render(preset, values).workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            what = f"{workload['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, what
            assert security["allowPrivilegeEscalation"] is False, what
            assert security["capabilities"]["drop"] == ["ALL"], what
            assert container.get("resources", {}).get("requests"), what


@pytest.mark.parametrize("component", list(CONFIG_TYPES))
def test_probes_use_the_health_port(chart: Chart, component: str) -> None:
    container = chart.render("scale-flexible").container(component)
    health = {"name": "health", "containerPort": container["ports"][0]["containerPort"]}
    assert container["ports"][0] == {**health, "protocol": "TCP"}
    # Only the broker (its HTTP API) and the controller (admission webhooks) serve more.
    extra = {"broker": ["http"], "controller": ["webhook"]}
    assert [p["name"] for p in container["ports"][1:]] == extra.get(component, [])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["startupProbe"]["httpGet"]["port"] == "health"


@pytest.mark.parametrize("component", list(CONFIG_TYPES))
def test_config_change_rolls_the_pods(chart: Chart, component: str) -> None:
    before = chart.render("scale-flexible")
    after = chart.render("scale-flexible", {"bus": {"worker": {"slots": 32}}})

    def checksum(rendered: Rendered) -> str:
        deployment = rendered.get("Deployment", rendered.name(component))
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert value == hashlib.sha256(rendered.config(component).encode()).hexdigest()
        return value

    assert checksum(before) != checksum(after)


def test_image_and_extra_env_and_telemetry(chart: Chart) -> None:
    values = {
        "image": {
            "repository": "registry.example/ark-mesh",
            "tag": "1.2.3",
            "pullPolicy": "Always",
        },
        "logging": {"format": "console", "level": "debug"},
        "telemetry": {"otlpEndpoint": "http://collector:4318", "resourceAttributes": "team=a"},
        "extraEnv": [{"name": "EVERYWHERE", "value": "1"}],
        "queryReconciler": {
            "extraEnv": [
                {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "v"}}}
            ]
        },
    }
    rendered = chart.render("scale-flexible", values)
    for component in CONFIG_TYPES:
        container = rendered.container(component)
        assert container["image"] == "registry.example/ark-mesh:1.2.3"
        assert container["imagePullPolicy"] == "Always"
        env = {e["name"]: e for e in container["env"]}
        assert env["ARK_LOG_FORMAT"]["value"] == "console"
        assert env["ARK_LOG_LEVEL"]["value"] == "debug"
        assert env["OTEL_SERVICE_NAME"]["value"] == f"ark-mesh-{component}"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector:4318"
        assert env["OTEL_RESOURCE_ATTRIBUTES"]["value"].endswith(",team=a")
        assert env["EVERYWHERE"]["value"] == "1"
        assert ("OPENAI_API_KEY" in env) == (component == "query-reconciler")

    default = chart.render("simple").container("controller")
    assert default["image"] == "ark-mesh:0.1.0", "the tag defaults to the chart's appVersion"
    assert {e["name"]: e.get("value") for e in default["env"]}["ARK_LOG_FORMAT"] == "json"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in {e["name"] for e in default["env"]}


@pytest.mark.parametrize("preset", ["scale-flexible", "scale-strict"])
def test_every_multi_replica_service_has_a_disruption_budget_and_spreads(
    chart: Chart, preset: str
) -> None:
    rendered = chart.render(preset, {"responsesReconciler": {"replicas": 3}})
    budgets = {o["metadata"]["name"]: o for o in rendered.kinds("PodDisruptionBudget")}
    for deployment in rendered.kinds("Deployment"):
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]
        selector = spec["selector"]["matchLabels"]
        if spec["replicas"] > 1:
            assert budgets[name]["spec"] == {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector},
            }
            spread = spec["template"]["spec"]["topologySpreadConstraints"]
            assert [c["topologyKey"] for c in spread] == [
                "kubernetes.io/hostname",
                "topology.kubernetes.io/zone",
            ]
            assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
        else:
            assert name not in budgets, "a single replica with a budget of 1 blocks every drain"
            assert "topologySpreadConstraints" not in spec["template"]["spec"]
    assert rendered.name("responses-reconciler") in budgets
    assert rendered.name("query-reconciler") in budgets  # 2 replicas by default
    nats = rendered.get("StatefulSet", rendered.name("nats"))["spec"]["selector"]
    assert budgets[rendered.name("nats")]["spec"] == {"maxUnavailable": 1, "selector": nats}
    off = chart.render(preset, {"podDisruptionBudget": {"enabled": False}})
    assert not off.kinds("PodDisruptionBudget")


def test_autoscaling_renders_an_hpa_and_a_budget(chart: Chart) -> None:
    preset, values = VARIANTS["autoscaled"]
    rendered = chart.render(preset, values)
    hpas = {o["metadata"]["name"]: o["spec"] for o in rendered.kinds("HorizontalPodAutoscaler")}
    assert set(hpas) == {rendered.name("query-reconciler"), rendered.name("broker")}
    reconciler = hpas[rendered.name("query-reconciler")]
    assert reconciler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.name("query-reconciler"),
    }
    assert (reconciler["minReplicas"], reconciler["maxReplicas"]) == (2, 20)
    assert reconciler["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert not chart.render("scale-flexible").kinds("HorizontalPodAutoscaler")


def test_network_policies_admit_only_each_services_own_ports(chart: Chart) -> None:
    preset, values = VARIANTS["autoscaled"]
    rendered = chart.render(preset, values)
    policies = {o["metadata"]["name"]: o["spec"] for o in rendered.kinds("NetworkPolicy")}
    for deployment in rendered.kinds("Deployment"):
        name = deployment["metadata"]["name"]
        if name == rendered.name("fake-model"):
            continue
        policy = policies[name]
        assert policy["podSelector"] == deployment["spec"]["selector"]
        assert policy["policyTypes"] == ["Ingress"], "egress stays open (providers, tools)"
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        admitted = [port["port"] for rule in policy["ingress"] for port in rule["ports"]]
        assert admitted == [port["name"] for port in container["ports"]]
    broker = policies[rendered.name("broker")]
    http = next(rule for rule in broker["ingress"] if rule["ports"][0]["port"] == "http")
    assert http["from"] == values["networkPolicy"]["brokerFrom"]
    nats = policies[rendered.name("nats")]
    peers = nats["ingress"][0]["from"]
    assert peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "ark-mesh"
    assert peers[1:] == values["networkPolicy"]["natsClients"]
    assert not chart.render(preset, {"networkPolicy": {"enabled": False}}).kinds("NetworkPolicy")


def test_metrics_are_announced_for_scraping_and_can_be_switched_off(chart: Chart) -> None:
    rendered = chart.render("scale-flexible")
    for component in CONFIG_TYPES:
        deployment = rendered.get("Deployment", rendered.name(component))
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = rendered.container(component)["ports"][0]["containerPort"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        env = {e["name"]: e.get("value") for e in rendered.container(component)["env"]}
        assert env["OTEL_METRICS_EXPORTER"] == "otlp,prometheus"
    assert not rendered.kinds("PodMonitor")

    monitored = chart.render(
        "scale-flexible",
        {"metrics": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}},
    )
    monitors = {o["metadata"]["name"]: o for o in monitored.kinds("PodMonitor")}
    assert set(monitors) == {monitored.name(c) for c in CONFIG_TYPES}
    monitor = monitors[monitored.name("broker")]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "health", "path": "/metrics", "interval": "30s"}
    ]

    off = chart.render("scale-flexible", {"metrics": {"enabled": False}})
    for component in CONFIG_TYPES:
        deployment = off.get("Deployment", off.name(component))
        assert (
            "prometheus.io/scrape" not in deployment["spec"]["template"]["metadata"]["annotations"]
        )
        env = {e["name"]: e.get("value") for e in off.container(component)["env"]}
        assert env["OTEL_METRICS_EXPORTER"] == "otlp"


def test_fake_model_resources_point_at_its_service(chart: Chart) -> None:
    rendered = chart.render(files=[DEV_VALUES], namespace="dev")
    service = rendered.get("Service", rendered.name("fake-model"))
    port = service["spec"]["ports"][0]["port"]
    model = rendered.get("Model", "default")
    base_url = model["spec"]["config"]["openai"]["baseUrl"]["value"]
    assert base_url == f"http://{service['metadata']['name']}.dev.svc:{port}/v1"
    assert rendered.get("Agent", "assistant")["spec"]["modelRef"]["name"] == "default"
    command = rendered.container("fake-model")["command"]
    assert command[-6:] == [
        "-m",
        "ark_mesh.testing.fake_llm",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
    ]


# -- values the chart refuses ---------------------------------------------------------------------

INVALID: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown preset": ({"preset": "huge"}, ("preset", "simple", "scale-strict")),
    "negative replicas": ({"controller": {"replicas": -1}}, ("controller.replicas",)),
    "negative reconciler replicas": (
        {"preset": "scale-flexible", "queryReconciler": {"replicas": -1}},
        ("queryReconciler.replicas",),
    ),
    "misspelt bus field": ({"bus": {"worker": {"slotz": 3}}}, ("bus.worker", "slotz")),
    "unknown mode": ({"reconciliation": {"allowedModes": ["sideways"]}}, ("allowedModes",)),
    "simple with standalone allowed": (
        {"preset": "simple", "reconciliation": {"allowedModes": ["inController", "standalone"]}},
        ("reconciliation.allowedModes", "preset simple"),
    ),
    "simple with a query-reconciler": (
        {"preset": "simple", "queryReconciler": {"enabled": True}},
        ("queryReconciler.enabled",),
    ),
    "simple with a responses-reconciler": (
        {"preset": "simple", "responsesReconciler": {"enabled": True}},
        ("responsesReconciler.enabled", "preset simple", "NATS"),
    ),
    "simple with an embeddings-reconciler": (
        {"preset": "simple", "embeddingsReconciler": {"enabled": True}},
        ("embeddingsReconciler.enabled", "preset simple", "NATS"),
    ),
    "embeddings batch of zero": (
        {"preset": "scale-flexible", "embeddingsReconciler": {"maxBatch": 0}},
        ("embeddingsReconciler.maxBatch",),
    ),
    "embeddings preload of agents": (
        {
            "preset": "scale-flexible",
            "embeddingsReconciler": {"resourceCache": {"preload": ["Agent"]}},
        },
        ("embeddingsReconciler.resourceCache.preload",),
    ),
    "simple with nats": ({"preset": "simple", "nats": {"deploy": True}}, ("nats",)),
    "simple with a broker": (
        {"preset": "simple", "broker": {"enabled": True}},
        ("broker.enabled", "preset simple", "NATS"),
    ),
    "strict broker without tokens": (
        {"preset": "scale-strict"},
        ("broker.auth.tokens", "scale-strict", "sha256"),
    ),
    "token auth without tokens": (
        {"preset": "scale-flexible", "broker": {"auth": {"mode": "token"}}},
        ("broker.auth.tokens", "broker.auth.mode is token"),
    ),
    "broker token that is not a hash": (
        {
            "preset": "scale-strict",
            "broker": {"auth": {"tokens": [{"tenant": "team-a", "sha256": "secret"}]}},
        },
        ("broker.auth.tokens.0.sha256",),
    ),
    "broker tenant with a dot": (
        {
            "preset": "scale-flexible",
            "broker": {"auth": {"tokens": [{**BROKER_TOKENS[0], "tenant": "team.a"}]}},
        },
        ("broker.auth.tokens.0.tenant",),
    ),
    "misspelt broker field": (
        {"preset": "scale-flexible", "broker": {"limits": {"maxInFlight": 3}}},
        ("broker.limits", "maxInFlight"),
    ),
    "strict with inController": (
        {"preset": "scale-strict", "reconciliation": {"allowedModes": ["inController"]}},
        ("reconciliation.allowedModes", "scale-strict"),
    ),
    "default outside allowed": (
        {
            "preset": "scale-flexible",
            "reconciliation": {
                "defaultReconciliation": "inController",
                "allowedModes": ["standalone"],
            },
        },
        ("reconciliation.defaultReconciliation",),
    ),
    "scale without any nats": (
        {"preset": "scale-flexible", "nats": {"deploy": False}},
        ("nats.url", "nats.deploy"),
    ),
    "external and deployed nats": (
        {"preset": "scale-flexible", "nats": {"url": "nats://x:4222", "deploy": True}},
        ("nats.url", "nats.deploy"),
    ),
    "even nats replicas": (
        {"preset": "scale-flexible", "nats": {"replicas": 2}},
        ("nats.replicas",),
    ),
    "empty nats url list": (
        {"preset": "scale-flexible", "nats": {"url": []}},
        ("nats.url",),
    ),
    "a nats url list with a bad url": (
        {"preset": "scale-flexible", "nats": {"url": ["nats://a:4222", "http://b"]}},
        ("nats.url",),
    ),
    "replicas without leader election": (
        {"controller": {"replicas": 2, "leaderElection": {"enabled": False}}},
        ("controller.leaderElection.enabled",),
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_values_fail_naming_the_field(chart: Chart, case: str) -> None:
    values, expected = INVALID[case]
    result = chart.try_render(values=values)
    assert result.returncode != 0, f"{case}: rendered although it must not"
    for text in expected:
        assert text in result.output, f"{case}: {text!r} missing from:\n{result.output}"


def test_schema_covers_exactly_the_bus_settings() -> None:
    """Bus values pass through to BusConfig key by key; the schema must know every field (so a
    misspelling is refused) and no other (msgspec would silently ignore it)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["definitions"][ref.rsplit("/", 1)[1]] if ref else node

    def keys(node: dict[str, Any], struct: Any, path: str) -> set[str]:
        node = resolve(node)
        found: set[str] = set()
        values = node.get("additionalProperties")  # a map's values (e.g. encryption.tenants)
        properties = (
            node.get("properties")
            or resolve(node.get("items", {})).get("properties", {})
            or (resolve(values).get("properties", {}) if isinstance(values, dict) else {})
        )
        fields = {_camel(f.name): f.type for f in msgspec.structs.fields(struct)}
        for name, child in properties.items():
            found.add(f"{path}.{name}")
            options = _struct_options(fields.get(name))
            if options:
                found |= keys(child, options[0], f"{path}.{name}")
        return found

    def struct_keys(struct: Any, path: str) -> set[str]:
        found: set[str] = set()
        for f in msgspec.structs.fields(struct):
            found.add(f"{path}.{_camel(f.name)}")
            for option in _struct_options(f.type):
                found |= struct_keys(option, f"{path}.{_camel(f.name)}")
        return found

    chart_keys = keys(schema["properties"]["bus"], BusConfig, "bus")
    # Not values: servers come from nats.url / nats.deploy, each service names itself, and
    # its NATS identity and TLS come from nats.auth / nats.tls / nats.insecure (decision 55).
    set_by_chart = {"bus.connection.servers", "bus.worker.service"}
    from_nats_values = ("bus.connection.auth", "bus.connection.tls", "bus.connection.insecure")
    expected = {
        key
        for key in struct_keys(BusConfig, "bus") - set_by_chart
        if not key.startswith(from_nats_values)
    }
    assert chart_keys == expected


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_user_chosen_keys_pass_through_unchanged(chart: Chart, tmp_path: Path) -> None:
    """Tenant names are map keys the user chooses: hyphens, dots and mixed case reach every
    service's config exactly as written (a rewritten key would leave that tenant's data in
    clear, since the bus looks keys up by the subject's tenant token), and so do annotation
    keys and label values on the pods."""
    tenants = {
        "team-a": {"keys": [{"id": "k1", "file": "/keys/team-a/k1"}]},
        "Team_B": {"keys": [{"id": "k1", "env": "TEAM_B_KEY"}, {"id": "k2", "env": "B2"}]},
        "ops-east": {
            "keys": [{"id": "2026-11", "file": "/keys/ops/2026-11"}],
            "primary": "2026-11",
        },
    }
    values = {
        "bus": {"encryption": {"tenants": tenants, "requiredTenants": ["team-a", "Team_B"]}},
        "extraVolumes": [{"name": "tenant-keys", "secret": {"secretName": "ark-mesh-keys"}}],
        "extraVolumeMounts": [{"name": "tenant-keys", "mountPath": "/keys", "readOnly": True}],
        "podAnnotations": {"example.com/owner.team": "Platform-East"},
        "podLabels": {"app.example.com/tier": "Back-End"},
        "broker": {"auth": {"tokens": [{"tenant": "team-a", "sha256": "a" * 64}]}},
    }
    rendered = chart.render("scale-strict", values)
    for component in CONFIG_TYPES:
        encryption = decode(rendered, component, tmp_path).bus.encryption
        assert set(encryption.tenants) == set(tenants), component
        assert encryption.required_tenants == ("team-a", "Team_B")
        assert [k.file for k in encryption.tenants["team-a"].keys] == ["/keys/team-a/k1"]
        assert [k.env for k in encryption.tenants["Team_B"].keys] == ["TEAM_B_KEY", "B2"]
        assert encryption.tenants["ops-east"].primary == "2026-11"
        template = rendered.get("Deployment", rendered.name(component))["spec"]["template"]
        assert template["metadata"]["annotations"]["example.com/owner.team"] == "Platform-East"
        assert template["metadata"]["labels"]["app.example.com/tier"] == "Back-End"
        # The key files come from a Secret mounted with extraVolumes (the schema allows it).
        assert {"name": "tenant-keys", "secret": {"secretName": "ark-mesh-keys"}} in template[
            "spec"
        ]["volumes"]
        mounts = template["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "tenant-keys", "mountPath": "/keys", "readOnly": True} in mounts
    broker = decode(rendered, "broker", tmp_path)
    assert [token.tenant for token in broker.auth.tokens] == ["team-a"]
