"""Ark's admission through the real kubectl: the emulator calls the controller's webhooks over TLS.

Each invalid manifest below has the defect of one of Ark's ``admission-failures`` cases and
must be refused with the text kubectl prints on a cluster running Ark (the webhook's name and
Ark's message, or the API server's schema error where Ark's CRD refuses it). Valid manifests
pass, and the defaults the mutating webhooks add are visible with ``kubectl get -o yaml``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from ark_mesh.controller.admission import (
    CONFIGURATION_RESOURCES,
    MUTATING_CONFIGURATION,
    VALIDATING_CONFIGURATION,
    self_signed,
)
from ark_mesh.controller.admission.bootstrap import SECRETS
from ark_mesh.controller.config import (
    ResourceControllersConfig,
    SelfSignedCertificates,
    WebhookConfig,
)
from ark_mesh.devmesh import register_webhooks, register_webhooks_with
from ark_mesh.kube import KubeClient
from ark_mesh.testing.k8s.emulator import KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError
from ark_mesh.testing.nats_server import free_port

from .conftest import ControllerFactory

HERE = Path(__file__).parent
CHART_CRDS = HERE.parents[2] / "helm" / "ark-mesh" / "crds"
NS = "default"
MUTATING = CONFIGURATION_RESOURCES["MutatingWebhookConfiguration"]
VALIDATING = CONFIGURATION_RESOURCES["ValidatingWebhookConfiguration"]


@pytest.fixture
def kube_crd_paths() -> list[Path]:
    """The chart's CRDs (ArkConfig, Evaluator and ExecutionEngine included)."""
    return [CHART_CRDS]


@dataclass
class Cluster:
    kubectl: Kubectl
    client: KubeClient

    async def apply(self, manifest: str) -> str:
        """``kubectl apply -f -``; stderr (warnings included) on success."""
        return (await self.kubectl.run("apply", "-f", "-", stdin=manifest)).stderr

    async def refusal(self, manifest: str) -> str:
        """The ``Error from server`` line kubectl prints when the apply is refused."""
        with pytest.raises(KubectlError) as refused:
            await self.kubectl.run("apply", "-f", "-", stdin=manifest)
        lines = [
            line
            for line in refused.value.result.stderr.splitlines()
            if line.startswith(("Error from server", "The "))
        ]
        assert lines, refused.value.result.stderr[-2000:]
        return lines[-1]

    async def get(self, kind: str, name: str, *extra: str) -> dict[str, Any]:
        out = (await self.kubectl.run("get", kind, name, "-o", "yaml", *extra)).stdout
        loaded: dict[str, Any] = yaml.safe_load(out)
        return loaded


@pytest.fixture
async def cluster(
    kube_emulator: KubeEmulator, start_controller: ControllerFactory, tmp_path: Path
) -> AsyncIterator[Cluster]:
    certificate = self_signed(["127.0.0.1"])
    certificate.write(tmp_path / "certs")
    port = free_port()
    # Admission alone: no resource controller writes status behind the tests' backs (the
    # default-memory test sets the Memory's resolved address itself).
    await start_controller(
        webhook=WebhookConfig(
            enabled=True, host="127.0.0.1", port=port, cert_dir=str(tmp_path / "certs")
        ),
        resource_controllers=ResourceControllersConfig(enabled=False),
    )
    assert kube_emulator.kubeconfig_path is not None
    kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kubectl-cache")
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as client:
        await register_webhooks(client, f"https://127.0.0.1:{port}", certificate.ca_pem)
        cluster = Cluster(kubectl, client)
        await cluster.apply(
            _doc(
                "Model",
                "default",
                {
                    "provider": "openai",
                    "model": {"value": "gpt-4.1-mini"},
                    "config": {
                        "openai": {
                            "baseUrl": {"value": "https://api.example.com/v1"},
                            "apiKey": {"value": "key"},
                        }
                    },
                },
            )
        )
        await cluster.apply(
            _doc("Agent", "assistant", {"prompt": "Help.", "modelRef": {"name": "default"}})
        )
        yield cluster


def _doc(kind: str, name: str, spec: Any, *, api_version: str = "ark.mckinsey.com/v1alpha1") -> str:
    return yaml.safe_dump(
        {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


AZURE = {
    "azure": {
        "baseUrl": {"value": "https://example.openai.azure.com/"},
        "apiKey": {"value": "fake-key"},
        "apiVersion": {"value": "2024-12-01-preview"},
    }
}
OBJECT_SCHEMA = {"type": "object", "properties": {"param": {"type": "string"}}}


def _denied(webhook: str, message: str) -> str:
    return (
        f'Error from server (Forbidden): error when creating "STDIN": admission webhook '
        f'"{webhook}" denied the request: {message}'
    )


def _invalid(kind: str, name: str, message: str) -> str:
    """Refused by the CRD schema, before any validating webhook (as on a cluster)."""
    return f'The {kind} "{name}" is invalid: {message}'


def _unknown_fields(kind: str, *fields: str) -> str:
    """kubectl's strict field validation refuses a field the CRD does not define at decoding,
    before admission — on a cluster as here."""
    listed = ", ".join(f'unknown field "{field}"' for field in fields)
    return (
        f'Error from server (BadRequest): error when creating "STDIN": {kind} in version '
        f'"v1alpha1" cannot be handled as a {kind}: strict decoding error: {listed}'
    )


def _chart_has(plural: str, field: str) -> bool:
    crd = yaml.safe_load((CHART_CRDS / f"ark.mckinsey.com_{plural}.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return field in spec.get("properties", {})


# (manifest kind, name, spec, the line kubectl prints); one per Ark admission-failures case
REFUSED: list[tuple[str, str, Any, str]] = [
    (
        "Model",
        "model-missing-type",
        {"model": {"value": "gpt-4.1-mini"}, "config": AZURE},
        _denied("vmodel-v1.kb.io", "provider is required"),
    ),
    (
        "Model",
        "model-missing-config",
        {"type": "azure", "model": {"value": "gpt-4.1-mini"}},
        _denied("vmodel-v1.kb.io", "azure configuration is required for azure model type"),
    ),
    (
        "Model",
        "model-invalid-type",
        {"type": "unsupported", "model": {"value": "gpt-4.1-mini"}, "config": AZURE},
        _denied(
            "vmodel-v1.kb.io",
            'spec.type: Unsupported value: "unsupported": supported values: "completions", '
            '"openai", "azure", "bedrock"',
        ),
    ),
    (
        "Agent",
        "agent-missing-prompt",
        {"modelRef": {"name": "default"}},
        _denied("vagent-v1.kb.io", "spec.prompt: Required value"),
    ),
    (
        "Agent",
        "agent-old-format",
        {"prompt": "Old shape.", "model": "test-model"},
        _unknown_fields("Agent", "spec.model"),
    ),
    (
        "Agent",
        "agent-empty-prompt",
        {"prompt": "", "modelRef": {"name": "default"}},
        _denied(
            "vagent-v1.kb.io",
            'spec.prompt: Invalid value: "": the prompt of an agent may not be empty',
        ),
    ),
    (
        "Agent",
        "agent-invalid-tool-type",
        {"prompt": "p", "tools": [{"type": "invalid-type", "name": "test-tool"}]},
        _invalid(
            "Agent",
            "agent-invalid-tool-type",
            'spec.tools[0].type: Unsupported value: "invalid-type": supported values: "agent", '
            '"built-in", "builtin", "custom", "http", "mcp", "team"',
        ),
    ),
    (
        "Agent",
        "agent-invalid-builtin-tool",
        {"prompt": "p", "tools": [{"type": "built-in", "name": "invalid-builtin"}]},
        _denied(
            "vagent-v1.kb.io",
            "tool[0]: unsupported built-in tool 'invalid-builtin': supported built-in tools are: "
            "noop, terminate",
        ),
    ),
    (
        "Agent",
        "agent-missing-tool-name",
        {"prompt": "p", "tools": [{"type": "custom"}]},
        _denied("vagent-v1.kb.io", "tool[0]: custom tools must specify a name"),
    ),
    (
        "Agent",
        "agent-builtin-missing-name",
        {"prompt": "p", "tools": [{"type": "built-in"}]},
        _denied("vagent-v1.kb.io", "tool[0]: built-in tools must specify a name"),
    ),
    (
        "Query",
        "query-missing-input",
        {"targets": [{"type": "agent", "name": "assistant"}]},
        _invalid("Query", "query-missing-input", "spec.input: Required value"),
    ),
    (
        "Query",
        "query-empty-input",
        {"input": "", "targets": [{"type": "agent", "name": "assistant"}]},
        _denied(
            "vquery-v1.kb.io",
            'spec.input: Invalid value: "": spec.input in body should be at least 1 chars long',
        ),
    ),
    (
        "Query",
        "query-invalid-target-type",
        {"input": "hi", "targets": [{"type": "invalid", "name": "test-target"}]},
        _invalid(
            "Query",
            "query-invalid-target-type",
            'spec.targets[0].type: Unsupported value: "invalid": supported values: "agent", '
            '"model", "team", "tool"',
        ),
    ),
    (
        "Query",
        "query-both-evaluators-and-selector",
        {
            "input": "hi",
            "targets": [{"type": "agent", "name": "nonexistent-agent"}],
            "evaluators": [{"name": "nonexistent-evaluator"}],
            "evaluatorSelector": {"matchLabels": {"type": "test"}},
        },
        (
            _denied("vquery-v1.kb.io", "cannot specify both evaluators and evaluatorSelector")
            if _chart_has("queries", "evaluators")
            else _unknown_fields("Query", "spec.evaluatorSelector", "spec.evaluators")
        ),
    ),
    (
        "Query",
        "query-no-targets-or-selector",
        {"input": "hi"},
        _denied("vquery-v1.kb.io", "target or selector must be specified"),
    ),
    (
        "Team",
        "team-missing-members",
        {"strategy": "sequential"},
        _invalid("Team", "team-missing-members", "spec.members: Required value"),
    ),
    (
        "Team",
        "team-old-format",
        {"strategy": "sequential", "targets": [{"type": "agent", "name": "assistant"}]},
        _unknown_fields("Team", "spec.targets"),
    ),
    (
        "Team",
        "team-invalid-strategy",
        {"strategy": "invalid", "members": [{"type": "agent", "name": "assistant"}]},
        _invalid(
            "Team",
            "team-invalid-strategy",
            'spec.strategy: Unsupported value: "invalid": supported values: "graph", '
            '"round-robin", "selector", "sequential"',
        ),
    ),
    (
        "Team",
        "team-self-reference",
        {"strategy": "sequential", "members": [{"type": "team", "name": "team-self-reference"}]},
        _denied(
            "vteam-v1.kb.io", "team member 0: team 'team-self-reference' cannot reference itself"
        ),
    ),
    (
        "Team",
        "team-invalid-member-type",
        {"strategy": "sequential", "members": [{"type": "model", "name": "default"}]},
        _invalid(
            "Team",
            "team-invalid-member-type",
            'spec.members[0].type: Unsupported value: "model": supported values: "agent", "team"',
        ),
    ),
    (
        "Team",
        "team-graph-no-config",
        {"strategy": "graph", "members": [{"type": "agent", "name": "assistant"}]},
        _denied("mteam-v1.kb.io", "graph strategy requires graph configuration"),
    ),
    (
        "Team",
        "team-graph-no-edges",
        {
            "strategy": "graph",
            "members": [{"type": "agent", "name": "assistant"}],
            "graph": {"edges": []},
        },
        _denied("mteam-v1.kb.io", "graph strategy requires at least one edge"),
    ),
    (
        "Team",
        "team-graph-invalid-edge",
        {
            "strategy": "graph",
            "members": [{"type": "agent", "name": "assistant"}],
            "graph": {"edges": [{"from": "assistant", "to": "nonexistent-agent"}]},
        },
        _denied(
            "mteam-v1.kb.io",
            "graph edge 0: 'to' member 'nonexistent-agent' not found in team members",
        ),
    ),
    (
        "Tool",
        "tool-missing-type",
        {"inputSchema": OBJECT_SCHEMA, "http": {"url": "https://example.com"}},
        _invalid("Tool", "tool-missing-type", "spec.type: Required value"),
    ),
    (
        "Tool",
        "tool-missing-schema",
        {"type": "http", "http": {"url": "https://example.com"}},
        _denied(
            "vtool-v1.kb.io",
            "spec.inputSchema: Required value: an http tool describes its arguments",
        ),
    ),
    (
        "Tool",
        "tool-invalid-schema",
        {"type": "http", "inputSchema": {"type": "invalid-type"}, "http": {"url": "https://x.io"}},
        _denied(
            "vtool-v1.kb.io",
            "invalid inputSchema: invalid schema type 'invalid-type': must be one of object, "
            "array, string, number, integer, boolean, null",
        ),
    ),
    (
        "Tool",
        "tool-fetcher-invalid-url",
        {"type": "http", "inputSchema": OBJECT_SCHEMA, "http": {"url": "not-a-valid-url"}},
        _invalid(
            "Tool",
            "tool-fetcher-invalid-url",
            'spec.http.url: Invalid value: "not-a-valid-url": spec.http.url in body should '
            "match '^https?://.*'",
        ),
    ),
    (
        "Tool",
        "tool-fetcher-invalid-method",
        {
            "type": "http",
            "inputSchema": OBJECT_SCHEMA,
            "http": {"url": "https://example.com", "method": "INVALID"},
        },
        _invalid(
            "Tool",
            "tool-fetcher-invalid-method",
            'spec.http.method: Unsupported value: "INVALID": supported values: "DELETE", "GET", '
            '"PATCH", "POST", "PUT"',
        ),
    ),
    (
        "Evaluator",
        "evaluator-missing-address",
        {"modelRef": {"name": "nonexistent-model"}},
        # Ark's Evaluator has no modelRef (the manifest is older than the kind's schema).
        _unknown_fields("Evaluator", "spec.modelRef"),
    ),
    (
        "Evaluator",
        "evaluator-invalid-model",
        {
            "address": {"value": "http://localhost:8080"},
            "parameters": [{"name": "model.name", "value": "nonexistent-model"}],
        },
        _denied(
            "vevaluator-v1alpha1.kb.io",
            "failed to validate model 'nonexistent-model': model 'nonexistent-model' does not "
            "exist in namespace 'default': models.ark.mckinsey.com \"nonexistent-model\" not found",
        ),
    ),
    (
        "MCPServer",
        "mcpserver-missing-address",
        {"headers": [{"name": "Authorization", "value": {"value": "Bearer token"}}]},
        _invalid("MCPServer", "mcpserver-missing-address", "spec.address: Required value"),
    ),
    (
        "MCPServer",
        "mcpserver-invalid-secret",
        {
            "address": {"value": "http://localhost:8080"},
            "headers": [
                {
                    "name": "Authorization",
                    "value": {
                        "valueFrom": {
                            "secretKeyRef": {"name": "nonexistent-secret", "key": "token"}
                        }
                    },
                }
            ],
        },
        _denied(
            "vmcpserver-v1.kb.io",
            "failed to validate header Authorization (headers[0]): secret 'nonexistent-secret' "
            "does not exist in namespace 'default': secrets \"nonexistent-secret\" not found",
        ),
    ),
]

REFUSED_PREALPHA: list[tuple[str, str, Any, str]] = [
    (
        "ExecutionEngine",
        "executionengine-missing-address",
        {"type": "autogen"},
        _denied(
            "vexecutionengine-v1prealpha1.kb.io",
            "failed to resolve Address: value source must have either value or valueFrom specified",
        ),
    ),
    (
        "ExecutionEngine",
        "a2a",
        {"type": "custom", "address": {"value": "http://example.com:8000"}},
        _denied(
            "vexecutionengine-v1prealpha1.kb.io",
            "execution engine name 'a2a' is reserved for A2A servers",
        ),
    ),
]


async def test_every_admission_failure_is_refused_with_arks_message(cluster: Cluster) -> None:
    cases = [(k, n, s, e, "ark.mckinsey.com/v1alpha1") for k, n, s, e in REFUSED] + [
        (k, n, s, e, "ark.mckinsey.com/v1prealpha1") for k, n, s, e in REFUSED_PREALPHA
    ]
    printed = await asyncio.gather(
        *(
            cluster.refusal(_doc(kind, name, spec, api_version=api))
            for kind, name, spec, _, api in cases
        )
    )
    mismatches = [
        f"{name}:\n  expected {expected}\n  got      {line}"
        for (_, name, _, expected, _), line in zip(cases, printed, strict=True)
        if line != expected
    ]
    assert not mismatches, "\n".join(mismatches)
    listed = await cluster.kubectl.json("get", "agents,models,queries,teams,tools,mcpservers")
    assert {item["metadata"]["name"] for item in listed["items"]} == {"default", "assistant"}


async def test_old_model_field_is_refused_before_pruning_could_drop_it(cluster: Cluster) -> None:
    with pytest.raises(KubectlError) as refused:
        await cluster.kubectl.run(
            "apply",
            "--validate=false",
            "-f",
            "-",
            stdin=_doc("Agent", "old-model", {"prompt": "p", "model": "test-model"}),
        )
    assert (
        _denied(
            "magent-v1.kb.io",
            "spec.model: Forbidden: 'model' is no longer supported; name the model with "
            "spec.modelRef.name (e.g. modelRef: {name: test-model})",
        )
        in refused.value.result.stderr
    )


async def test_valid_objects_pass_and_show_their_defaults(cluster: Cluster) -> None:
    await cluster.apply(_doc("Agent", "no-model", {"prompt": "You have no model."}))
    agent = await cluster.get("agent", "no-model")
    assert agent["spec"]["modelRef"] == {"name": "default"}

    await cluster.apply(
        _doc(
            "Query",
            "old-messages",
            {
                "type": "messages",
                "input": [
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "reply"},
                    {"role": "user", "content": "what is 2+2?"},
                ],
                "target": {"type": "agent", "name": "no-model"},
            },
        )
    )
    query = await cluster.get("query", "old-messages")
    assert query["spec"]["type"] == "user"
    assert query["spec"]["input"] == "what is 2+2?"
    assert query["spec"]["ttl"] == "720h0m0s"
    assert "ark.mckinsey.com/migration-warning-input-type" in query["metadata"]["annotations"]


async def test_deprecations_are_migrated_with_a_warning_kubectl_prints(cluster: Cluster) -> None:
    stderr = await cluster.apply(
        _doc(
            "Model",
            "old-azure",
            {"type": "azure", "model": {"value": "gpt-4.1-mini"}, "config": AZURE},
        )
    )
    assert "Warning: spec.type is deprecated for provider values - migrated 'azure' to " in stderr
    model = await cluster.get("model", "old-azure")
    assert (model["spec"]["provider"], model["spec"]["type"]) == ("azure", "completions")

    stderr = await cluster.apply(
        _doc(
            "Team",
            "old-round-robin",
            {
                "strategy": "round-robin",
                "maxTurns": 3,
                "members": [{"type": "agent", "name": "assistant"}],
            },
        )
    )
    assert "Warning: strategy 'round-robin' is deprecated - migrated to 'sequential' with" in stderr
    team = await cluster.get("team", "old-round-robin")
    assert (team["spec"]["strategy"], team["spec"]["loops"]) == ("sequential", True)
    annotations = team["metadata"]["annotations"]
    assert "ark.mckinsey.com/migration-warning-round-robin" in annotations

    await cluster.apply(
        _doc(
            "Team",
            "old-graph",
            {
                "strategy": "graph",
                "members": [{"type": "agent", "name": "assistant"}],
                "graph": {"edges": [{"from": "assistant", "to": "assistant"}]},
            },
        )
    )
    graph_team = await cluster.get("team", "old-graph")
    assert graph_team["spec"]["strategy"] == "sequential"
    assert "graph" not in graph_team["spec"]


async def test_ark_config_sets_ttl_and_a_ready_default_memory_on_create_only(
    cluster: Cluster,
) -> None:
    await cluster.apply(
        yaml.safe_dump(
            {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "ArkConfig",
                "metadata": {"name": "default"},
                "spec": {"queryTTL": "1h", "defaultMemory": {"name": "shared"}},
            }
        )
    )
    memory = _doc("Memory", "shared", {"address": {"value": "http://broker:8080"}})
    await cluster.apply(memory)
    target = {"type": "agent", "name": "assistant"}
    await cluster.apply(_doc("Query", "before-ready", {"input": "hi", "target": target}))
    before = await cluster.get("query", "before-ready")
    assert before["spec"]["ttl"] == "1h0m0s"
    assert "memory" not in before["spec"]  # the Memory has no resolved address yet

    await cluster.kubectl.run(
        "patch",
        "memory",
        "shared",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"lastResolvedAddress":"http://broker:8080"}}',
    )
    await cluster.apply(_doc("Query", "after-ready", {"input": "hi", "target": target}))
    after = await cluster.get("query", "after-ready")
    assert after["spec"]["memory"] == {"name": "shared"}
    explicit = {"input": "hi", "target": target, "memory": {"name": "mine"}, "ttl": "5m"}
    await cluster.apply(_doc("Query", "explicit", explicit))
    kept = await cluster.get("query", "explicit")
    assert (kept["spec"]["memory"], kept["spec"]["ttl"]) == ({"name": "mine"}, "5m")

    # an update never backfills the memory into a Query created before it was ready
    await cluster.kubectl.run("annotate", "query", "before-ready", "touched=yes", "--overwrite")
    assert "memory" not in (await cluster.get("query", "before-ready"))["spec"]


async def test_updates_are_admitted_too(cluster: Cluster) -> None:
    await cluster.apply(_doc("Agent", "editable", {"prompt": "Fine."}))
    with pytest.raises(KubectlError) as refused:
        await cluster.kubectl.run(
            "patch", "agent", "editable", "--type=merge", "-p", '{"spec":{"prompt":""}}'
        )
    assert (
        'admission webhook "vagent-v1.kb.io" denied the request: spec.prompt: Invalid value: ""'
        in refused.value.result.stderr
    )
    assert (await cluster.get("agent", "editable"))["spec"]["prompt"] == "Fine."


async def test_self_signed_bootstrap_shares_one_certificate_and_sets_the_ca_bundle(
    kube_emulator: KubeEmulator, start_controller: ControllerFactory, tmp_path: Path
) -> None:
    """What the chart's default does in a cluster: the first replica creates the certificate
    Secret, every replica serves it, and the caBundle of both configurations is its CA — also
    when Helm creates the configurations after the controller started."""
    assert kube_emulator.kubeconfig_path is not None
    async with await KubeClient.from_kubeconfig(str(kube_emulator.kubeconfig_path)) as client:
        bootstrap = SelfSignedCertificates(
            namespace=NS, service="ark-mesh-webhook", secret="ark-mesh-webhook-tls"
        )
        replicas = []
        for replica in ("a", "b"):
            replicas.append(
                await start_controller(
                    webhook=WebhookConfig(
                        enabled=True,
                        host="127.0.0.1",
                        port=free_port(),
                        cert_dir=str(tmp_path / replica),
                        self_signed=bootstrap,
                    )
                )
            )
        served = [(tmp_path / r / "tls.crt").read_bytes() for r in ("a", "b")]
        assert served[0] == served[1]
        assert all(r.admission is not None and r.admission.serving for r in replicas)

        service = {"service": {"name": "ark-mesh-webhook", "namespace": NS}}
        await register_webhooks_with(client, lambda path: {**service, "path": path})
        secret = await client.get_object(SECRETS, NS, "ark-mesh-webhook-tls")
        bundle = base64.b64encode(base64.b64decode(secret["data"]["ca.crt"])).decode()
        async with asyncio.timeout(10):
            while True:
                bundles = set()
                for resource, name in (
                    (MUTATING, MUTATING_CONFIGURATION),
                    (VALIDATING, VALIDATING_CONFIGURATION),
                ):
                    configuration = await client.get_object(resource, None, name)
                    bundles |= {
                        w["clientConfig"].get("caBundle") for w in configuration["webhooks"]
                    }
                if bundles == {bundle}:
                    break
                await asyncio.sleep(0.1)

        leaf = x509.load_pem_x509_certificate(served[0])
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [
            "ark-mesh-webhook.default.svc",
            "ark-mesh-webhook.default.svc.cluster.local",
        ]
