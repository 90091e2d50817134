"""The controller's configuration (one file from Helm values, plus ``ARK_MESH__…`` overrides).

``bus`` absent means the **simple** preset: the controller never connects to NATS and resolves
every query in-process, exactly like Ark today. The presets of the Helm chart only set these
fields; nothing in the code knows preset names.
"""

from __future__ import annotations

from ark_mesh.bus import BusConfig
from ark_mesh.contracts.ark import ReconciliationMode
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.controller.admission.registration import (
    MUTATING_CONFIGURATION,
    VALIDATING_CONFIGURATION,
)
from ark_mesh.service import ConfigError, HealthConfig, KubernetesConfig

__all__ = [
    "ControllerConfig",
    "LeaderElectionSettings",
    "ReconciliationConfig",
    "ResourceControllersConfig",
    "SchedulerConfig",
    "SelfSignedCertificates",
    "WebhookConfig",
]


class ReconciliationConfig(ConfigSection, frozen=True, kw_only=True):
    """``default_reconciliation`` for Direct queries and the modes a query may ask for.

    These are the system configuration's ``defaultReconciliation`` and ``allowedModes``
    (Helm values ``reconciliation.*``); config files use snake_case like every other service.
    """

    default_reconciliation: ReconciliationMode = "inController"
    allowed_modes: tuple[ReconciliationMode, ...] = ("inController",)


class SchedulerConfig(ConfigSection, frozen=True, kw_only=True):
    """``max_concurrent_queries`` caps in-controller resolutions (0 = unbounded, Ark's default);
    ``max_concurrent_reconciles`` is how many Query keys reconcile at once (Ark #2609)."""

    max_concurrent_queries: int = 0
    max_concurrent_reconciles: int = 10


class ResourceControllersConfig(ConfigSection, frozen=True, kw_only=True):
    """Ark's resource controllers: the status of Models, Agents, Teams, Tools, Memories, MCP and
    A2A servers. ``workers`` objects are reconciled at once; at most ``probe_concurrency`` model
    probes and MCP/A2A discoveries are in flight, each cut off after ``probe_timeout`` seconds."""

    enabled: bool = True
    workers: int = 4
    probe_concurrency: int = 4
    probe_timeout: float = 30.0


class LeaderElectionSettings(ConfigSection, frozen=True, kw_only=True):
    """The lease replicas compete for; the holder is named by ``ControllerConfig.instance``."""

    enabled: bool = False
    lease_name: str = "ark-mesh-controller"
    lease_namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class SelfSignedCertificates(ConfigSection, frozen=True, kw_only=True):
    """The bootstrap used when cert-manager is not: the controller keeps a CA and a serving
    certificate for ``<service>.<namespace>.svc`` in ``secret`` (created on first start) and
    injects the CA into the ``caBundle`` of the two webhook configurations."""

    namespace: str
    service: str
    secret: str
    mutating_configuration: str = MUTATING_CONFIGURATION
    validating_configuration: str = VALIDATING_CONFIGURATION


class WebhookConfig(ConfigSection, frozen=True, kw_only=True):
    """Ark's admission webhooks (validation and defaulting), served over HTTPS.

    ``cert_dir`` holds ``tls.crt``/``tls.key`` (a cert-manager Secret mount, or what the
    ``self_signed`` bootstrap writes there); ``certificate_wait`` is how long start waits for
    a mounted certificate to appear.
    """

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = 9443
    cert_dir: str = "/tmp/k8s-webhook-server/serving-certs"
    certificate_wait: float = 60.0
    self_signed: SelfSignedCertificates | None = None


class ControllerConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the controller reads at start.

    ``kubernetes.namespace`` unset watches every namespace. ``instance`` names this replica: the
    holder of the leader lease and the reporting instance of its Events (default: service, host
    name and process id).
    """

    reconciliation: ReconciliationConfig = ReconciliationConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    resource_controllers: ResourceControllersConfig = ResourceControllersConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    health: HealthConfig = HealthConfig()
    instance: str | None = None
    bus: BusConfig | None = None
    webhook: WebhookConfig = WebhookConfig()
    default_query_ttl: str = "720h"
    """Ark's webhook fallback for ``spec.ttl``, counted from completion."""

    def validate(self) -> None:
        """Refuse configurations that could only fail later, naming the field."""
        modes = self.reconciliation
        if modes.default_reconciliation not in modes.allowed_modes:
            raise ConfigError(
                f"reconciliation.default_reconciliation {modes.default_reconciliation!r} is not "
                f"in reconciliation.allowed_modes {list(modes.allowed_modes)}"
            )
        if "standalone" in modes.allowed_modes and self.bus is None:
            raise ConfigError(
                "reconciliation.allowed_modes includes 'standalone' but no 'bus' section is "
                "configured (the simple preset allows only 'inController')"
            )
