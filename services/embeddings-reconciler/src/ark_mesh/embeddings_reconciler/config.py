"""The embeddings-reconciler's configuration: one typed file (Helm renders it), env on top.

Loaded with :func:`ark_mesh.service.load_config`, so any field can be overridden with
``ARK_MESH__<SECTION>__<FIELD>`` (e.g. ``ARK_MESH__MAX_BATCH=64``). The ``resources`` and
``health`` sections are the shared Structs of :mod:`ark_mesh.service`: every reconciler reads
Models (and the Secrets their keys live in) from the same place, so one Helm value block
configures them all.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ark_mesh.bus import BusConfig, WorkerSettings
from ark_mesh.bus.large import DEFAULT_MAX_BYTES
from ark_mesh.contracts.config import ConfigSection
from ark_mesh.service import HealthConfig, ResourcesConfig

__all__ = ["SERVICE_NAME", "EmbeddingsReconcilerConfig"]

SERVICE_NAME = "embeddings-reconciler"


def _default_bus() -> BusConfig:
    return BusConfig(worker=WorkerSettings(service=SERVICE_NAME))


def _default_resources() -> ResourcesConfig:
    # Only Models are needed before the first request; Secrets are watched on first use.
    return ResourcesConfig(preload=("Model",))


class EmbeddingsReconcilerConfig(ConfigSection, frozen=True, kw_only=True):
    """Everything the service reads at start.

    ``bus`` is the bus's :class:`~ark_mesh.bus.BusConfig`. ``provision`` creates or updates the
    topology at start (turn it off when an operator owns the streams). ``tenant`` binds the
    replica to a dedicated tenant's work stream (``None``: the shared pool). ``max_batch`` caps
    the texts sent in one provider call (providers limit the array length: OpenAI at 2048,
    Azure deployments often far lower); larger requests are split, and the vectors are joined
    back in input order. ``timeout`` bounds one provider call; the SDK never retries on its own
    (``max_retries`` 0), a failed call is redelivered by the bus with backoff instead.
    ``max_result_bytes`` is the largest encoded result sent (in pieces when larger than one
    NATS message, :mod:`ark_mesh.bus.large`); a larger one is answered ``failed`` at once.
    """

    bus: BusConfig = msgspec.field(default_factory=_default_bus)
    provision: bool = True
    tenant: str | None = None
    resources: ResourcesConfig = msgspec.field(default_factory=_default_resources)
    max_batch: Annotated[int, msgspec.Meta(ge=1)] = 256
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    max_result_bytes: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_BYTES
    health: HealthConfig = HealthConfig()
    grace_period: float = 25.0
