"""The whole mesh on one machine, every part a real process.

A nats-server with JetStream, the Kubernetes API emulator, the OpenAI-compatible fake model
(or a real endpoint), and the ark-mesh services started as Kubernetes would start them. The
end-to-end tests use it to kill and restart services mid-run; ``make run`` uses it to give a
newcomer the working system with nothing installed but this repository.

Presets (:mod:`ark_mesh.devmesh.presets`) mirror the Helm chart's: ``simple`` (controller only, in-controller, no NATS),
``scale-flexible`` (NATS and every service, default standalone, in-controller allowed) and
``scale-strict`` (standalone only). In every preset the controller serves Ark's admission
webhooks (a certificate for 127.0.0.1 made at start) and the emulator calls them, so invalid
objects are refused as on a cluster.

Parts start concurrently: the servers together, then every service at once (the controller's
webhooks are registered and the default objects applied as soon as it is ready, while the others
are still starting). ``on_ready`` hears of each part as it becomes ready, which is how
``ark-mesh dev`` prints one line per service.

``nats_nodes=3`` runs NATS as a JetStream cluster of that many nodes on loopback
(:class:`~ark_mesh.testing.nats_cluster.NatsCluster`) instead of one server: every service gets
all the client URLs, and every stream, KV bucket and durable consumer is provisioned with that
many replicas, as the chart's scale presets do. Chaos tests kill and restart its nodes.

``nats_auth=True`` runs NATS with the mesh's authorization model (decision 55): a user per
service and per tenant in :attr:`tenants`, each with only its permissions, passwords in files of
the run folder (:mod:`ark_mesh.devmesh.natsauth`). Without it every service is told
``bus.connection.insecure: true`` and warns so at start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Self

from ark_mesh.controller.admission import (
    CONFIGURATION_RESOURCES,
    ServingCertificate,
    self_signed,
    webhook_configurations,
)
from ark_mesh.kube import KubeClient
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import FakeModelProcess
from ark_mesh.testing.k8s.process import EmulatorProcess
from ark_mesh.testing.nats_cluster import NatsCluster
from ark_mesh.testing.nats_server import NatsServer, free_port
from ark_mesh.testing.processes import ServiceProcess

from .natsauth import MeshCredentials
from .presets import MODULES, PRESETS, Preset

__all__ = [
    "CRDS",
    "LocalMesh",
    "ReadyCallback",
    "register_webhooks",
    "register_webhooks_with",
    "replicated_topology",
]

CRDS = Path(str(resources.files("ark_mesh.devmesh") / "crds"))
"""The ark-mesh CRDs, shipped as package data (``make schemas`` writes them with the chart's)."""

ReadyCallback = Callable[[str, float], None]
"""Told ``(part, seconds since start)`` as each server and service becomes ready."""


async def register_webhooks(client: KubeClient, base_url: str, ca_pem: bytes) -> None:
    """Register the controller's admission webhooks, served at ``base_url``, in a cluster.

    What the chart's webhook configurations do in a real cluster, with a ``url`` instead of a
    Service (the emulator reaches webhooks by URL) and the CA the local mesh generated.
    """
    bundle = base64.b64encode(ca_pem).decode()
    await register_webhooks_with(
        client, lambda path: {"url": f"{base_url}{path}", "caBundle": bundle}
    )


async def register_webhooks_with(
    client: KubeClient, client_config: Callable[[str], Mapping[str, Any]]
) -> None:
    """Create both webhook configurations, each webhook's ``clientConfig`` from its path."""
    for configuration in webhook_configurations(client_config):
        await client.create_object(
            CONFIGURATION_RESOURCES[configuration["kind"]], None, configuration
        )


@dataclass
class LocalMesh:
    """``async with LocalMesh(preset="scale-flexible") as mesh:`` — see the module docstring.

    ``model_url``/``api_key`` point the ``default`` Model at a real OpenAI-compatible endpoint
    instead of the fake one. ``overrides`` merge into a service's generated config.
    ``streaming`` configures the namespace for streaming model calls the way Ark does (the
    ``ark-config-streaming`` ConfigMap); without it model calls are plain, as in Ark.
    """

    preset: Preset = "scale-flexible"
    workdir: Path | None = None
    namespace: str = "default"
    model_url: str | None = None
    api_key: str | None = None
    model_id: str = "fake-model"
    streaming: bool = False
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of every service process (e.g. ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    bus_settings: Mapping[str, Any] = field(default_factory=dict)
    """Merged into every service's ``bus`` block (they must agree: each one provisions)."""
    crd_dir: Path = CRDS
    admission: bool = True
    """Serve Ark's admission webhooks from the controller and register them (every preset)."""
    on_ready: ReadyCallback | None = None
    ready_within: float = 180.0
    """Seconds each service may take to answer ``/readyz``: they start together, so on a small
    machine each one's imports share the CPU with the others'."""
    nats_nodes: int = 1
    """1: one nats-server (:attr:`nats`). More: a JetStream cluster (:attr:`nats_cluster`) with
    every stream, bucket and consumer replicated on that many nodes (at most 5, JetStream's
    largest replica count)."""

    nats_auth: bool = False
    """Users, passwords and permissions on NATS (decision 55) instead of an open server."""
    tenants: tuple[str, ...] = ()
    """Tenants that get a NATS user of their own with ``nats_auth`` (:attr:`credentials`)."""

    nats: NatsServer | None = field(default=None, init=False)
    """The single nats-server (``nats_nodes == 1``); ``None`` for a cluster or without NATS."""
    nats_cluster: NatsCluster | None = field(default=None, init=False)
    kube: EmulatorProcess | None = field(default=None, init=False)
    fake_llm: FakeModelProcess | None = field(default=None, init=False)
    services: dict[str, ServiceProcess] = field(default_factory=dict, init=False)
    webhook_port: int = field(default=0, init=False)
    webhook_certificate: ServingCertificate | None = field(default=None, init=False)
    credentials: MeshCredentials | None = field(default=None, init=False)
    """The NATS users of the mesh with ``nats_auth`` (tenants' connect options for tests)."""
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)
    _started_at: float = field(default=0.0, init=False)

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def webhook_cert_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "webhook-certs"

    @property
    def uses_nats(self) -> bool:
        return self.preset != "simple"

    @property
    def nats_urls(self) -> list[str]:
        """Client URLs of NATS: the one server's, or every cluster node's (empty without NATS)."""
        if self.nats_cluster is not None:
            return self.nats_cluster.urls
        return [self.nats.url] if self.nats is not None else []

    async def start(self) -> Self:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ark-mesh-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._started_at = time.monotonic()
        try:
            await _all([self._start_nats(), self._start_kube(), self._start_model()])
            if self.admission:
                self.webhook_port = free_port()
                self.webhook_certificate = self_signed(["127.0.0.1"])
                self.webhook_certificate.write(self.webhook_cert_dir)
            others = [n for n in PRESETS[self.preset]["services"] if n != "controller"]
            # The controller first among equals: once it serves the admission webhooks they are
            # registered and the defaults applied through them, while the rest still start.
            await _all([self._start_controller(), *[self.start_service(n) for n in others]])
        except BaseException:
            await self.stop()
            raise
        return self

    def _ready(self, part: str) -> None:
        if self.on_ready is not None:
            self.on_ready(part, time.monotonic() - self._started_at)

    async def _start_nats(self) -> None:
        if not self.uses_nats:
            return
        assert self.workdir is not None
        if not 1 <= self.nats_nodes <= 5:
            raise ValueError(f"nats_nodes must be between 1 and 5, not {self.nats_nodes}")
        extra: tuple[str, ...] = ()
        if self.nats_auth:
            self.credentials = MeshCredentials(self.workdir / "nats-auth", tenants=self.tenants)
            extra = ("-c", str(self.credentials.write()))
        if self.nats_nodes > 1:
            if self.nats_auth:
                raise ValueError("nats_auth runs one nats-server; use nats_nodes=1")
            self.nats_cluster = NatsCluster(self.workdir / "nats-cluster", nodes=self.nats_nodes)
            self._stack.push_async_callback(self.nats_cluster.astop)
            await self.nats_cluster.astart()
            self._ready(f"nats-server x{self.nats_nodes}")
            return
        self.nats = NatsServer(self.workdir / "nats", extra_args=extra)
        self._stack.push_async_callback(self.nats.astop)
        await self.nats.astart()
        self._ready("nats-server")

    async def _start_kube(self) -> None:
        self.kube = EmulatorProcess(crd_paths=[self.crd_dir], kubeconfig_path=self.kubeconfig)
        await self._stack.enter_async_context(self.kube)
        self._ready("kubernetes-api")

    async def _start_model(self) -> None:
        if self.model_url is not None:
            return
        self.fake_llm = FakeModelProcess()
        await self._stack.enter_async_context(self.fake_llm)
        self._ready("fake-model")

    async def _start_controller(self) -> None:
        await self.start_service("controller")
        if self.webhook_certificate is not None:
            async with await self.client() as client:
                await register_webhooks(
                    client,
                    f"https://127.0.0.1:{self.webhook_port}",
                    self.webhook_certificate.ca_pem,
                )
        await self.apply_defaults()

    async def apply_defaults(self) -> None:
        """The ``default`` Model (fake or real endpoint), an ``assistant`` Agent and, with
        ``streaming``, the namespace's streaming ConfigMap."""
        base_url = self.model_url or (self.fake_llm.base_url if self.fake_llm else "")
        model = ark_objects.model(
            "default",
            self.namespace,
            base_url,
            model_id=self.model_id,
            api_key=self.api_key or "test-key",
        )
        async with await KubeClient.from_kubeconfig(str(self.kubeconfig)) as client:
            await client.create(model)
            await client.create(ark_objects.agent("assistant", self.namespace))
            if self.streaming:
                await client.create(ark_objects.streaming_config(self.namespace))

    def service_config(self, name: str) -> dict[str, Any]:
        """The config file a service gets: the same bus block for all (they all provision)."""
        preset = PRESETS[self.preset]
        kubeconfig = str(self.kubeconfig)
        config: dict[str, Any] = {}
        if self.nats_urls:
            connection: dict[str, Any] = {"servers": self.nats_urls}
            if self.credentials is not None:
                connection["auth"] = self.credentials.service_auth(name)
            else:
                connection["insecure"] = True
            bus: dict[str, Any] = {"connection": connection}
            if self.nats_cluster is not None:
                bus["topology"] = replicated_topology(self.nats_cluster.size)
            config["bus"] = _merge(bus, self.bus_settings)
        if name == "controller":
            config["kubernetes"] = {"kubeconfig": kubeconfig}
            config["reconciliation"] = {
                "defaultReconciliation": preset["default_reconciliation"],
                "allowedModes": preset["allowed_modes"],
            }
            if self.admission:
                config["webhook"] = {
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": self.webhook_port,
                    "certDir": str(self.webhook_cert_dir),
                }
        elif name == "query-reconciler":
            config["resources"] = {"source": "kubernetes", "kubeconfig": kubeconfig}
            config["memory"] = {"backend": "jetstream"}
        elif name == "status-sync":
            config["kubernetes"] = {"kubeconfig": kubeconfig}
        elif name == "broker":
            config["http"] = {"host": "127.0.0.1", "port": free_port()}
            config["kubernetes"] = {"kubeconfig": kubeconfig}
            config["auth"] = {"mode": "none", "defaultTenant": self.namespace}
        elif name == "responses-reconciler":
            config["resources"] = {"source": "kubernetes", "kubeconfig": kubeconfig}
        elif name == "embeddings-reconciler":
            # A resources section replaces the Struct's default whole: keep its Model-only preload.
            config["resources"] = {
                "source": "kubernetes",
                "kubeconfig": kubeconfig,
                "preload": ["Model"],
            }
        return _merge(config, self.overrides.get(name, {}))

    async def start_service(self, name: str) -> ServiceProcess:
        assert self.workdir is not None
        existing = self.services.get(name)
        if existing is not None:
            return await existing.start()
        process = ServiceProcess(
            name, MODULES[name], self.service_config(name), self.workdir, env=self.env
        )
        self.services[name] = process
        await process.start(ready_within=self.ready_within)
        self._ready(name)
        return process

    async def add_replica(self, name: str) -> ServiceProcess:
        """Start one more replica of service ``name`` (as a Deployment with more replicas runs
        it): its own process, health port and log, registered as ``<name>-<n>`` in
        :attr:`services`, with the same configuration otherwise."""
        assert self.workdir is not None
        if name not in MODULES:
            raise ValueError(f"unknown service {name!r}; known: {sorted(MODULES)}")
        number = 2
        while f"{name}-{number}" in self.services:
            number += 1
        replica = f"{name}-{number}"
        process = ServiceProcess(
            replica, MODULES[name], self.service_config(name), self.workdir, env=self.env
        )
        self.services[replica] = process
        await process.start(ready_within=self.ready_within)
        self._ready(replica)
        return process

    async def client(self) -> KubeClient:
        """A new KubeClient for the emulator (close it, or use ``async with``)."""
        return await KubeClient.from_kubeconfig(str(self.kubeconfig))

    async def stop(self) -> None:
        for process in reversed(list(self.services.values())):
            await process.stop()
        self.services.clear()
        await self._stack.aclose()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


STREAM_SETTINGS = ("work", "chunks", "events", "status", "memory", "dlq")
"""The ``bus.topology`` keys of the mesh's streams (their ``replicas`` follow the cluster)."""
BUCKET_SETTINGS = (
    "queriesBucket",
    "cancelBucket",
    "runsBucket",
    "responsesBucket",
    "sessionsBucket",
)
"""The ``bus.topology`` keys of the mesh's KV buckets."""


def replicated_topology(replicas: int) -> dict[str, Any]:
    """The ``bus.topology`` block that replicates every stream and KV bucket ``replicas`` times.

    Durable consumers follow their stream's replica count (JetStream's default when a consumer
    names none), so they are R``replicas`` too.
    """
    return {key: {"replicas": replicas} for key in (*STREAM_SETTINGS, *BUCKET_SETTINGS)}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def _all(starts: list[Awaitable[object]]) -> None:
    """Run ``starts`` concurrently and let every one finish (so each part that did start is
    known to :meth:`LocalMesh.stop`) before raising the first failure."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
