"""The chart's admission webhooks: what the API server will call, and how it will trust it.

The webhook list must be the one the controller serves (routes, names and rules come from
``ark_mesh.controller.admission.registration``); the certificate comes from the controller's
self-signed bootstrap by default, or from cert-manager.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ark_mesh.controller.admission import webhook_configurations

from .conftest import Chart, Rendered
from .test_chart import decode

PRESETS = ("simple", "scale-flexible", "scale-strict")
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"


def configurations(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {
        obj["kind"]: obj
        for obj in rendered.kinds("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    }


def essentials(webhook: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between the chart and the controller (not how the server is reached)."""
    path = webhook["clientConfig"].get("service", webhook["clientConfig"]).get("path")
    if path is None:
        path = webhook["clientConfig"]["url"]
    return (
        webhook["name"],
        path,
        yaml.safe_dump(webhook["rules"]),
        webhook["sideEffects"],
        webhook["admissionReviewVersions"],
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_the_chart_registers_exactly_the_webhooks_the_controller_serves(
    chart: Chart, preset: str
) -> None:
    rendered = chart.render(preset)
    served = webhook_configurations(lambda path: {"path": path})
    registered = configurations(rendered)
    assert set(registered) == {c["kind"] for c in served}
    for expected in served:
        actual = registered[expected["kind"]]
        assert [essentials(w) for w in actual["webhooks"]] == [
            essentials(w) for w in expected["webhooks"]
        ]
        for webhook in actual["webhooks"]:
            service = webhook["clientConfig"]["service"]
            assert (service["name"], service["namespace"], service["port"]) == (
                rendered.name("webhook"),
                rendered.namespace,
                443,
            )
            assert webhook["failurePolicy"] == "Fail"
            # the chart's own Model/Agent are created before the controller can answer
            assert webhook["objectSelector"]["matchExpressions"][0]["values"] == ["ark-mesh"]


def test_the_service_reaches_the_controllers_webhook_port(chart: Chart) -> None:
    rendered = chart.render("scale-flexible")
    service = rendered.get("Service", rendered.name("webhook"))
    deployment = rendered.get("Deployment", rendered.name("controller"))
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    ports = {p["name"]: p["containerPort"] for p in rendered.container("controller")["ports"]}
    assert ports["webhook"] == 9443


def test_self_signed_bootstrap_is_the_default(chart: Chart, tmp_path: Path) -> None:
    rendered = chart.render("scale-strict")
    config = decode(rendered, "controller", tmp_path)
    webhook = config.webhook
    assert (webhook.enabled, webhook.port, webhook.cert_dir) == (True, 9443, CERT_DIR)
    bootstrap = webhook.self_signed
    assert bootstrap is not None
    service = rendered.name("webhook")
    assert (bootstrap.namespace, bootstrap.service, bootstrap.secret) == (
        rendered.namespace,
        service,
        f"{service}-tls",
    )
    registered = configurations(rendered)
    assert (
        bootstrap.mutating_configuration
        == (registered["MutatingWebhookConfiguration"]["metadata"]["name"])
    )
    assert (
        bootstrap.validating_configuration
        == (registered["ValidatingWebhookConfiguration"]["metadata"]["name"])
    )
    # the controller may create its Secret, read only that one, and update only its own two
    # webhook configurations
    role = rendered.get("Role", f"{service}-certificate")
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]} in role["rules"]
    assert {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": [f"{service}-tls"],
        "verbs": ["get"],
    } in role["rules"]
    cluster_role = rendered.get("ClusterRole", "ark-ark-mesh-admission")
    updates = [rule for rule in cluster_role["rules"] if "update" in rule["verbs"]]
    assert sorted(name for rule in updates for name in rule["resourceNames"]) == sorted(
        [bootstrap.mutating_configuration, bootstrap.validating_configuration]
    )
    assert not rendered.kinds("Certificate", "Issuer")
    assert not any(
        "caBundle" in w["clientConfig"] for c in registered.values() for w in c["webhooks"]
    )


def test_cert_manager_issues_the_certificate_and_injects_the_ca(
    chart: Chart, tmp_path: Path
) -> None:
    rendered = chart.render(
        "scale-flexible", {"controller": {"webhook": {"certManager": {"enabled": True}}}}
    )
    service = rendered.name("webhook")
    certificate = rendered.get("Certificate", service)
    assert certificate["spec"]["dnsNames"] == [
        f"{service}.ark.svc",
        f"{service}.ark.svc.cluster.local",
    ]
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": service}
    assert rendered.get("Issuer", service)["spec"] == {"selfSigned": {}}
    for configuration in configurations(rendered).values():
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": f"ark/{service}"
        }
    config = decode(rendered, "controller", tmp_path)
    assert config.webhook.self_signed is None
    pod = rendered.get("Deployment", rendered.name("controller"))["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["webhook-certificate"]["secret"] == {
        "secretName": certificate["spec"]["secretName"]
    }
    mounts = {m["name"]: m for m in rendered.container("controller")["volumeMounts"]}
    assert mounts["webhook-certificate"]["mountPath"] == config.webhook.cert_dir
    assert not rendered.has("Role", f"{service}-certificate")
    resources = {
        r
        for rule in rendered.get("ClusterRole", "ark-ark-mesh-admission")["rules"]
        for r in rule["resources"]
    }
    assert resources == {"arkconfigs"}  # cainjector, not the controller, writes the caBundle


def test_an_existing_issuer_can_be_used(chart: Chart) -> None:
    issuer = {"kind": "ClusterIssuer", "name": "company-ca"}
    rendered = chart.render(
        "simple",
        {"controller": {"webhook": {"certManager": {"enabled": True, "issuerRef": issuer}}}},
    )
    assert rendered.get("Certificate", rendered.name("webhook"))["spec"]["issuerRef"] == issuer
    assert not rendered.kinds("Issuer")


def test_a_watched_namespace_limits_the_webhooks_to_it(chart: Chart) -> None:
    rendered = chart.render("scale-flexible", {"watchNamespace": "team-a"})
    for configuration in configurations(rendered).values():
        for webhook in configuration["webhooks"]:
            assert webhook["namespaceSelector"] == {
                "matchLabels": {"kubernetes.io/metadata.name": "team-a"}
            }


def test_webhooks_can_be_switched_off(chart: Chart, tmp_path: Path) -> None:
    rendered = chart.render("simple", {"controller": {"webhook": {"enabled": False}}})
    assert not configurations(rendered)
    assert not rendered.kinds("Service")
    assert decode(rendered, "controller", tmp_path).webhook.enabled is False
    assert [p["name"] for p in rendered.container("controller")["ports"]] == ["health"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"failurePolicy": "Sometimes"}, "failurePolicy"),
        ({"timeoutSeconds": 60}, "timeoutSeconds"),
        ({"certManager": {"issuerRef": {"kind": "Vault"}}}, "kind"),
    ],
)
def test_invalid_webhook_values_fail_naming_the_field(
    chart: Chart, values: dict[str, Any], field: str
) -> None:
    result = chart.try_render(values={"controller": {"webhook": values}})
    assert result.returncode != 0
    assert "controller.webhook" in result.output, result.output
    assert field in result.output, result.output
