"""The responses-reconciler service: :class:`ResponsesWork` on the shared work skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side (connect, provision, bind the
shared durable ``responses`` consumer, drain on SIGTERM); this adds the resource source (cluster
cache or manifests, as every reconciler; readiness ``resources``), the model client
and the HTTP session the resolver uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import aiohttp

from ark_mesh.bus import Bus, Publisher
from ark_mesh.contracts import ResponsesRequest
from ark_mesh.resolver import OpenAIModelClient
from ark_mesh.responses_reconciler.config import SERVICE_NAME, ResponsesReconcilerConfig
from ark_mesh.responses_reconciler.handler import ResponsesWork
from ark_mesh.service import (
    ReadinessCheck,
    ResourceSource,
    WorkHandlers,
    WorkIdentity,
    WorkQueueService,
    open_resources,
)
from ark_mesh.telemetry import MessagingTelemetry

__all__ = ["ResponsesReconcilerService"]


class ResponsesReconcilerService(WorkQueueService[ResponsesRequest]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    kind = "responses"
    message_type = ResponsesRequest

    def __init__(
        self, config: ResponsesReconcilerConfig, *, telemetry: MessagingTelemetry | None = None
    ) -> None:
        super().__init__(
            config.bus, provision=config.provision, tenant=config.tenant, telemetry=telemetry
        )
        self.config = config
        self.resources: ResourceSource | None = None
        self.work: ResponsesWork | None = None

    def checks(self) -> Mapping[str, ReadinessCheck]:
        return {"resources": lambda: self.resources is not None and self.resources.ready()}

    def describe(self) -> Mapping[str, Any]:
        return {"resources": self.resources.description if self.resources else None}

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[ResponsesRequest]:
        config = self.config
        self.resources = resources = await open_resources(config.resources)
        stack.push_async_callback(resources.close)
        models = OpenAIModelClient(
            max_retries=config.models.max_retries, timeout=config.models.timeout
        )
        stack.push_async_callback(models.aclose)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        self.work = work = ResponsesWork(
            publisher,
            resources.store,
            models=models,
            http=http,
            reconciler_id=config.identity(),
        )
        # No ``recover``: a body the worker could not decode names no request id to answer on.
        return WorkHandlers(work.handle, identify=_identify, end=work.end_dead_letter)


def _identify(request: ResponsesRequest) -> WorkIdentity:
    return WorkIdentity(request.tenant, request.request_id, "request id")
