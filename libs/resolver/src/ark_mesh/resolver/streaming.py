"""Whether a query's model calls are streamed from the provider: one pure decision.

Ark's executor streams a model call only when the query has an event stream, i.e. when the
namespace's ConfigMap ``ark-config-streaming`` says ``enabled: "true"``; otherwise it makes a plain
(non-streamed) call. The difference is visible: providers that report usage only on non-streamed
answers, or give tool calls only non-streamed (Ark's own mock-llm does both), work with Ark only
because it does not stream by default. Older Ark controllers gated streaming on the annotation
``ark.mckinsey.com/streaming-enabled: "true"``, which ark-api still sets when a client asks to
stream.

The rule, first match wins:

1. the query's annotation ``streaming-enabled`` is ``"true"``: stream (a client is waiting on
   tokens; the broker sets it for an SSE request);
2. the namespace's ``ark-config-streaming`` ConfigMap has an ``enabled`` key: stream iff it is
   ``"true"`` (``serviceRef`` is not needed: ark-mesh's chunk stream is the bus, not a Service);
3. otherwise the service's default (``False`` unless configured, which is Ark's behaviour).

Streamed or not, readers of the chunk stream get the answer: a non-streamed answer becomes one
content chunk, followed by the final chunk as always.
"""

from __future__ import annotations

from collections.abc import Mapping

from ark_mesh.contracts import ConfigMap, ark
from ark_mesh.resolver.ports import ResourceStore

__all__ = ["STREAMING_CONFIGMAP", "streams_model_calls", "streams_model_calls_for"]

STREAMING_CONFIGMAP = ark.STREAMING_CONFIGMAP
_TRUE = "true"


def streams_model_calls(
    config: ConfigMap | None, annotations: Mapping[str, str] | None, *, default: bool
) -> bool:
    """Decide from the namespace's streaming ConfigMap, the query's annotations and the default."""
    if (annotations or {}).get(ark.STREAMING_ANNOTATION) == _TRUE:
        return True
    data = config.data if config is not None else None
    if data is not None and "enabled" in data:
        return data["enabled"] == _TRUE
    return default


async def streams_model_calls_for(
    store: ResourceStore,
    namespace: str,
    annotations: Mapping[str, str] | None,
    *,
    default: bool,
) -> bool:
    """:func:`streams_model_calls` with the ConfigMap read from ``namespace``."""
    config = await store.get(ConfigMap, namespace, STREAMING_CONFIGMAP)
    return streams_model_calls(config, annotations, default=default)
