"""Small builders for the Ark objects tests (and the local demo) create again and again.

They return contracts Structs, so a test reads like the manifest it stands for and stays typed;
``KubeClient.create`` or an ``InMemoryResourceStore`` takes them as they are.
"""

from __future__ import annotations

from typing import Any

from ark_mesh.contracts import (
    Agent,
    AgentSpec,
    ConfigMap,
    Model,
    ModelConfig,
    ModelRef,
    ModelSpec,
    ObjectMeta,
    OpenAIModelConfig,
    Query,
    QuerySpec,
    QueryTarget,
    ValueSource,
    ark,
)

__all__ = ["agent", "model", "query", "streaming_config"]


def model(
    name: str,
    namespace: str,
    base_url: str,
    *,
    model_id: str = "fake-model",
    api_key: str = "test-key",
) -> Model:
    """An OpenAI-compatible Model pointing at ``base_url`` (the fake model server in tests)."""
    return Model(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ModelSpec(
            model=ValueSource(value=model_id),
            provider="openai",
            config=ModelConfig(
                openai=OpenAIModelConfig(
                    base_url=ValueSource(value=base_url), api_key=ValueSource(value=api_key)
                )
            ),
        ),
    )


def agent(
    name: str,
    namespace: str,
    *,
    model_name: str = "default",
    prompt: str = "You are a helpful assistant.",
    **spec: Any,
) -> Agent:
    return Agent(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=AgentSpec(prompt=prompt, model_ref=ModelRef(name=model_name), **spec),
    )


def query(
    name: str,
    namespace: str,
    input: str,
    *,
    target: tuple[str, str] | None = ("agent", "assistant"),
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Query:
    """A Query aimed at ``target`` (``(type, name)``), as a user would ``kubectl apply`` it."""
    return Query(
        metadata=ObjectMeta(name=name, namespace=namespace, annotations=annotations),
        spec=QuerySpec(
            input=input,
            target=QueryTarget(type=target[0], name=target[1]) if target else None,  # type: ignore[arg-type]
            **spec,
        ),
    )


def streaming_config(namespace: str, *, enabled: bool = True) -> ConfigMap:
    """Ark's ``ark-config-streaming`` ConfigMap: model calls in ``namespace`` stream when enabled.

    Ark also needs a ``serviceRef`` to its broker here; ark-mesh's chunk stream is the bus, so
    the key is left out.
    """
    return ConfigMap(
        metadata=ObjectMeta(name=ark.STREAMING_CONFIGMAP, namespace=namespace),
        data={"enabled": "true" if enabled else "false"},
    )
