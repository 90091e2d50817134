"""The query-reconciler service: :class:`QueryWork` on the shared work skeleton.

:class:`~ark_mesh.service.WorkQueueService` does the bus side (connect, provision, bind the
shared durable ``query`` consumer, drain on SIGTERM: running queries finish within the grace
period, the rest go back to other replicas); this adds the resource source (cluster cache
synced, or manifests loaded; readiness ``resources``), the model client and the HTTP session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import aiohttp

from ark_mesh.bus import Bus, Publisher
from ark_mesh.contracts import QueryRequest
from ark_mesh.query_reconciler.config import SERVICE_NAME, QueryReconcilerConfig
from ark_mesh.query_reconciler.handler import QueryWork
from ark_mesh.query_reconciler.recovery import recover_request
from ark_mesh.service import (
    ReconcilerService,
    WorkHandlers,
    WorkIdentity,
)

__all__ = ["QueryReconcilerService"]


class QueryReconcilerService(ReconcilerService[QueryRequest, QueryReconcilerConfig]):
    """Implements :class:`ark_mesh.service.Service`; run it with :func:`ark_mesh.service.run_service`."""

    name = SERVICE_NAME
    kind = "query"
    message_type = QueryRequest

    work: QueryWork | None = None

    def describe(self) -> Mapping[str, Any]:
        return {"memory": self.config.memory.backend, "reconciler": self.config.identity()}

    async def setup(
        self, bus: Bus, publisher: Publisher, stack: contextlib.AsyncExitStack
    ) -> WorkHandlers[QueryRequest]:
        config = self.config
        models = config.models.client()
        stack.push_async_callback(models.aclose)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        self.work = work = QueryWork(
            bus,
            publisher,
            self.store,
            models=models,
            http=http,
            reconciler_id=config.identity(),
            memory=config.memory,
            streaming=config.streaming,
            tracer=self.telemetry.tracer,
        )
        return WorkHandlers(
            work.handle, identify=_identify, end=work.end_dead_letter, recover=recover_request
        )


def _identify(request: QueryRequest) -> WorkIdentity:
    return WorkIdentity(request.tenant, request.query_id, "query id")
