"""From a Model resource to a :class:`~ark_mesh.resolver.ports.ModelEndpoint`.

Reads the provider (``spec.provider``, or the pre-0.50 ``spec.type`` that carried it), the
provider block (``config.openai`` / ``config.azure``: base URL, API key, API version, headers,
properties) and converts ``properties`` — always strings in the CRD — to the JSON types the
ChatCompletion API expects, so ``temperature: "0.2"`` reaches the provider as ``0.2``.
"""

from __future__ import annotations

import json
from typing import Any

from ark_mesh.contracts import Model, ValueSource
from ark_mesh.resolver.errors import ConfigurationError, ParameterError
from ark_mesh.resolver.ports import ModelEndpoint
from ark_mesh.resolver.values import ValueResolver

__all__ = ["endpoint_for", "property_value"]

_FLOATS = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty"})
_INTS = frozenset({"max_tokens", "max_completion_tokens", "seed", "top_logprobs", "n"})
_BOOLS = frozenset({"logprobs", "parallel_tool_calls", "store"})
_LEGACY_PROVIDER_TYPES = frozenset({"openai", "azure", "bedrock"})


def property_value(name: str, raw: str) -> Any:
    """Convert a Model property (a string in the CRD) to its ChatCompletion JSON type."""
    try:
        if name in _FLOATS:
            return float(raw)
        if name in _INTS:
            return int(raw)
    except ValueError as exc:
        raise ParameterError(f"model property '{name}' must be a number, got {raw!r}") from exc
    if name in _BOOLS:
        if raw.lower() not in ("true", "false"):
            raise ParameterError(f"model property '{name}' must be true or false, got {raw!r}")
        return raw.lower() == "true"
    stripped = raw.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


async def endpoint_for(model: Model, values: ValueResolver) -> ModelEndpoint:
    """Resolve everything needed to call ``model`` (secrets included)."""
    name = model.metadata.name
    provider = model.spec.provider
    if provider is None and model.spec.type in _LEGACY_PROVIDER_TYPES:
        provider = model.spec.type  # type: ignore[assignment]
    if provider is None:
        raise ConfigurationError(
            f"model '{name}': provider is required - set spec.provider (openai or azure)"
        )
    if provider not in ("openai", "azure"):
        raise ConfigurationError(
            f"model '{name}': provider '{provider}' is not supported (openai and azure are)"
        )
    config = model.spec.config
    block = (config.azure if provider == "azure" else config.openai) if config else None
    what = f"model '{name}'"
    model_id = await values.required(model.spec.model, what=f"{what} spec.model")
    base_url = await values.value(block.base_url if block else None, what=f"{what} baseUrl")
    if provider == "azure" and not base_url:
        raise ConfigurationError(f"{what}: config.azure.baseUrl is required")
    api_key = await values.value(block.api_key if block else None, what=f"{what} apiKey")
    api_version = None
    if provider == "azure" and config is not None and config.azure is not None:
        api_version = await values.value(config.azure.api_version, what=f"{what} apiVersion")
    headers = await values.headers(block.headers if block else None, what=what)
    properties: dict[str, Any] = {}
    raw_properties: dict[str, ValueSource] = dict(block.properties or {}) if block else {}
    for key, source in raw_properties.items():
        raw = await values.value(source, what=f"{what} property '{key}'")
        if raw is not None:
            properties[key] = property_value(key, raw)
    return ModelEndpoint(
        name=name,
        namespace=model.metadata.namespace or values.namespace,
        provider=provider,
        model=model_id,
        base_url=base_url,
        api_key=api_key,
        api_version=api_version,
        headers=headers,
        properties=properties,
        labels=dict(model.metadata.labels or {}),
    )
