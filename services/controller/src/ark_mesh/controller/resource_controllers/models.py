"""Model: ``ModelAvailable`` from a real, cheap call to the provider, every ``pollInterval``.

The probe is a one-message, non-streamed chat completion through the resolver's own model client
— the very path a query takes, with the Model's base URL, key, headers and properties. Not
streamed, as Ark's probe: a provider (Ark's own mock-llm among them) may answer a streamed call
differently, or not at all. Ark's probe lists the provider's models first and falls back to such a
completion;
the completion alone proves more (the key, the deployment and the model id all work) and every
OpenAI-compatible server answers it. A provider's refusal ends up in the condition's message
the way Ark words it: the provider's own message and the HTTP status, ``"… (401)"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ark_mesh.contracts import Model, Resource
from ark_mesh.controller.resource_controllers.skeleton import (
    Event,
    Observed,
    ReconcileContext,
    condition,
    find_condition,
    poll_interval,
)
from ark_mesh.resolver import (
    ChatRequest,
    ModelRequestError,
    ModelUnavailableError,
    OpenAIModelClient,
    ResolutionError,
    ValueResolver,
    endpoint_for,
)

__all__ = ["MODEL_AVAILABLE", "ModelAvailability", "ProbeResult"]

MODEL_AVAILABLE = "ModelAvailable"
PROBE = ChatRequest(messages=({"role": "user", "content": "test"},))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    available: bool
    message: str
    address: str | None = None


def _provider_detail(error: BaseException | None) -> str | None:
    """The provider's own error message, when the SDK error that caused ``error`` carries one."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    message = body.get("message") if isinstance(body, Mapping) else None
    return message if isinstance(message, str) and message else None


def probe_failure(exc: ResolutionError) -> str:
    """Ark's wording: ``<provider message> (<status>)``, else ``Probe failed (<error>)``."""
    status = getattr(exc, "status", None)
    if isinstance(exc, ModelRequestError | ModelUnavailableError) and status:
        return f"{_provider_detail(exc.__cause__) or exc} ({status})"
    if isinstance(exc, ModelUnavailableError):
        return f"Probe failed ({exc})"
    return str(exc)  # the Model cannot even be loaded (provider missing, secret missing …)


class ModelAvailability:
    kind = Model
    watches: tuple[type[Resource], ...] = ()

    def __init__(self, client: OpenAIModelClient) -> None:
        self._client = client

    async def probe(self, model: Model, ctx: ReconcileContext) -> ProbeResult:
        namespace = model.metadata.namespace or ""
        try:
            endpoint = await endpoint_for(model, ValueResolver(ctx.store, namespace))
        except ResolutionError as exc:
            return ProbeResult(False, str(exc))
        try:
            async with self._client.stream(endpoint, PROBE, streamed=False) as chunks:
                async for _ in chunks:
                    break
        except ResolutionError as exc:
            return ProbeResult(False, probe_failure(exc), endpoint.base_url)
        except Exception as exc:  # a transport failure the client does not translate
            return ProbeResult(False, f"Probe failed ({exc})", endpoint.base_url)
        return ProbeResult(True, "Model is available", endpoint.base_url)

    async def reconcile(self, model: Model, ctx: ReconcileContext) -> Observed:
        interval = poll_interval(model.spec.poll_interval)
        result = ctx.checks.latest(
            ctx.ref,
            model.metadata.generation,
            interval,
            lambda: self.probe(model, ctx),
            lambda seconds: ProbeResult(
                False, f"Probe failed (timeout after {int(seconds)} seconds)"
            ),
        )
        if result is None:
            if find_condition(model, MODEL_AVAILABLE) is not None:
                return Observed(requeue_after=interval)  # e.g. after a restart: keep the verdict
            return Observed(
                status={"phase": "running"},
                conditions=[
                    condition(
                        MODEL_AVAILABLE,
                        "Unknown",
                        "Initializing",
                        "Model availability is being determined",
                    )
                ],
                requeue_after=interval,
            )
        status: dict[str, Any] = {"phase": "ready" if result.available else "error"}
        if result.address:
            status["resolvedAddress"] = result.address
        if result.available:
            verdict = condition(MODEL_AVAILABLE, "True", "Available", result.message)
            events: list[Event] = []
        else:
            verdict = condition(MODEL_AVAILABLE, "False", "ModelProbeFailed", result.message)
            events = [Event("ModelUnavailable", result.message, "Warning")]
        return Observed(status=status, conditions=[verdict], events=events, requeue_after=interval)

    async def aclose(self) -> None:
        await self._client.aclose()
