"""Which kinds the controller admits, and the webhook configurations that send them to it.

One table serves the HTTP routes of :mod:`~ark_mesh.controller.admission.server`, the
configurations the local mesh registers in the emulator and the ones the self-signed
bootstrap patches; the chart's templates list the same paths and names (a chart test checks
they agree). Paths and webhook names are Ark's (kubebuilder's ``/mutate-<group>-<version>-<kind>``
and ``m<kind>-v1.kb.io``), so a denial names the same webhook as on a cluster running Ark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ark_mesh.kube import ApiResource

__all__ = [
    "ADMITTED_KINDS",
    "CONFIGURATION_RESOURCES",
    "GROUP",
    "MUTATING_CONFIGURATION",
    "VALIDATING_CONFIGURATION",
    "AdmittedKind",
    "webhook_configurations",
]

GROUP: Final = "ark.mckinsey.com"
MUTATING_CONFIGURATION: Final = "ark-mesh-mutating-webhook-configuration"
CONFIGURATION_RESOURCES: Final = {
    kind: ApiResource("admissionregistration.k8s.io", "v1", plural, kind, namespaced=False)
    for kind, plural in (
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"),
    )
}
VALIDATING_CONFIGURATION: Final = "ark-mesh-validating-webhook-configuration"


@dataclass(frozen=True, slots=True)
class AdmittedKind:
    kind: str
    plural: str
    version: str
    mutating: bool = False
    validating_name: str | None = None  # Ark's name when it breaks the usual pattern

    @property
    def key(self) -> str:
        return self.kind.lower()

    def path(self, *, mutating: bool) -> str:
        verb = "mutate" if mutating else "validate"
        return f"/{verb}-{GROUP.replace('.', '-')}-{self.version}-{self.key}"

    def webhook_name(self, *, mutating: bool) -> str:
        if not mutating and self.validating_name:
            return self.validating_name
        suffix = "v1" if self.version == "v1alpha1" else self.version
        return f"{'m' if mutating else 'v'}{self.key}-{suffix}.kb.io"


ADMITTED_KINDS: Final = (
    AdmittedKind("Query", "queries", "v1alpha1", mutating=True),
    AdmittedKind("Agent", "agents", "v1alpha1", mutating=True),
    AdmittedKind("Model", "models", "v1alpha1", mutating=True),
    AdmittedKind("Team", "teams", "v1alpha1", mutating=True),
    AdmittedKind("Tool", "tools", "v1alpha1"),
    AdmittedKind("MCPServer", "mcpservers", "v1alpha1"),
    AdmittedKind("Memory", "memories", "v1alpha1"),
    AdmittedKind(
        "Evaluator", "evaluators", "v1alpha1", validating_name="vevaluator-v1alpha1.kb.io"
    ),
    AdmittedKind("ExecutionEngine", "executionengines", "v1prealpha1"),
    AdmittedKind("A2AServer", "a2aservers", "v1prealpha1"),
)


def webhook_configurations(
    client_config: Callable[[str], Mapping[str, Any]],
    *,
    failure_policy: str = "Fail",
    timeout_seconds: int = 10,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Mutating- and ValidatingWebhookConfiguration objects, one webhook per kind.

    ``client_config(path)`` gives each webhook's ``clientConfig`` (a ``url`` for the local
    mesh, a ``service`` reference in a cluster), including its ``caBundle``. Only CREATE and
    UPDATE of the main resource are sent: status writes never reach the webhook.
    """

    def webhook(admitted: AdmittedKind, *, mutating: bool) -> dict[str, Any]:
        return {
            "name": admitted.webhook_name(mutating=mutating),
            "admissionReviewVersions": ["v1"],
            "clientConfig": dict(client_config(admitted.path(mutating=mutating))),
            "failurePolicy": failure_policy,
            "sideEffects": "None",
            "timeoutSeconds": timeout_seconds,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": [admitted.version],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": [admitted.plural],
                }
            ],
        }

    def configuration(kind: str, name: str, *, mutating: bool) -> dict[str, Any]:
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name},
            "webhooks": [
                webhook(admitted, mutating=mutating)
                for admitted in ADMITTED_KINDS
                if admitted.mutating or not mutating
            ],
        }

    return (
        configuration("MutatingWebhookConfiguration", MUTATING_CONFIGURATION, mutating=True),
        configuration("ValidatingWebhookConfiguration", VALIDATING_CONFIGURATION, mutating=False),
    )
