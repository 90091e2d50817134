"""Configuration sections every service shares, defined once so their wire keys mean one thing.

Each service's config Struct embeds these under the same keys (``health``, ``kubernetes``,
``resources``, ``instance``), so the Helm chart renders them with one shape and an operator
learns them once. The defaults are what a pod needs: probes on ``0.0.0.0:8080`` (the kubelet
calls the pod IP, not localhost), in-cluster credentials unless a kubeconfig is named.
"""

from __future__ import annotations

import os
import socket

from ark_mesh.contracts.config import ConfigSection
from ark_mesh.kube import KubeClient
from ark_mesh.resolver import OpenAIModelClient
from ark_mesh.resolver.openai_client import DEFAULT_MAX_CONNECTIONS

__all__ = ["HEALTH_PORT", "HealthConfig", "KubernetesConfig", "ModelsConfig", "instance_id"]

HEALTH_PORT = 8080
"""The one default port of ``/healthz`` and ``/readyz`` (the chart's ``healthPort`` values)."""


class HealthConfig(ConfigSection, frozen=True, kw_only=True):
    """Where the probe server listens."""

    # Probes come from the kubelet over the pod IP, not from localhost.
    host: str = "0.0.0.0"
    port: int = HEALTH_PORT


class KubernetesConfig(ConfigSection, frozen=True, kw_only=True):
    """How to reach the API server: ``kubeconfig`` (and optional ``context``), else the pod's
    in-cluster credentials. ``namespace`` limits what the service watches (least-privilege RBAC);
    unset means every namespace. Services that watch nothing ignore it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None

    async def connect(self) -> KubeClient:
        """A client for the configured cluster; the caller closes it."""
        if self.kubeconfig:
            return await KubeClient.from_kubeconfig(self.kubeconfig, context=self.context)
        return KubeClient.in_cluster()

    def describe(self) -> str:
        """Where :meth:`connect` goes, for log lines."""
        return f"cluster from {self.kubeconfig}" if self.kubeconfig else "in-cluster API server"


class ModelsConfig(ConfigSection, frozen=True, kw_only=True):
    """The model client. ``max_retries`` defaults to 0: a failed call fails the attempt and the
    whole query is redelivered with backoff instead (the SDK's own retry would hold the slot).
    ``max_connections`` caps the open connections to model providers of this process; keep it
    above the worker's slots, or queries wait for a connection (the SDK's default of 1,000 made
    5,000 slow queries run in steps of 1,000)."""

    max_retries: int = 0
    timeout: float = 600.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("models.maxConnections must be at least 1")

    def client(self) -> OpenAIModelClient:
        """The resolver's model client with these settings; the caller closes it (``aclose``)."""
        return OpenAIModelClient(
            max_retries=self.max_retries,
            timeout=self.timeout,
            max_connections=self.max_connections,
        )


def instance_id(service: str, configured: str | None = None) -> str:
    """The name of this replica: the configured ``instance``, else ``<service>-<host>-<pid>``.

    It is stamped where replicas must be told apart: ``reconcilerId`` of status updates, the
    reporting instance of Kubernetes Events, the holder of the leader lease.
    """
    return configured or f"{service}-{socket.gethostname()}-{os.getpid()}"
