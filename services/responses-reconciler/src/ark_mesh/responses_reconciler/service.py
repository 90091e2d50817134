"""The responses-reconciler service: :class:`ResponsesWork` on the shared work skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side (connect, provision, bind the
shared durable ``responses`` consumer, drain on SIGTERM); this adds the resource source (cluster
cache or manifests, as every reconciler; readiness ``resources``), the model client
and the HTTP session the resolver uses.
"""

from __future__ import annotations

import contextlib

import aiohttp

from ark_mesh.bus import Bus, CancelChannel, Publisher, StreamReader
from ark_mesh.contracts import ResponsesRequest
from ark_mesh.responses_reconciler.config import SERVICE_NAME, ResponsesReconcilerConfig
from ark_mesh.responses_reconciler.handler import ResponsesWork
from ark_mesh.service import (
    ReconcilerService,
    WorkHandlers,
    WorkIdentity,
)

__all__ = ["ResponsesReconcilerService"]


class ResponsesReconcilerService(ReconcilerService[ResponsesRequest, ResponsesReconcilerConfig]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    kind = "responses"
    message_type = ResponsesRequest

    work: ResponsesWork | None = None

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[ResponsesRequest]:
        config = self.config
        models = config.models.client()
        stack.push_async_callback(models.aclose)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        self.work = work = ResponsesWork(
            publisher,
            self.store,
            models=models,
            http=http,
            reconciler_id=config.identity(),
            cancels=CancelChannel(bus),
            reader=StreamReader(bus),
        )
        # No ``recover``: a body the worker could not decode names no request id to answer on.
        return WorkHandlers(work.handle, identify=_identify, end=work.end_dead_letter)


def _identify(request: ResponsesRequest) -> WorkIdentity:
    return WorkIdentity(request.tenant, request.request_id, "request id")
