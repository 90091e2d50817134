"""Resolving Ark's value sources: literals, ConfigMap and Secret keys, query parameters, services.

Parameters (Query, Agent, partial tools), header values (Models, Tools, MCP servers, overrides)
and addresses (Model base URLs, Memory, A2A servers) all share one shape — a literal ``value`` or
a ``valueFrom`` reference — and one set of failure modes, so they are resolved in one place, each
error naming the parameter and the missing ConfigMap, Secret or key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ark_mesh.contracts import ConfigMap, Header, Parameter, Secret, ValueFrom, ValueSource
from ark_mesh.resolver.errors import ParameterError
from ark_mesh.resolver.ports import ResourceStore

__all__ = ["ValueResolver", "service_url"]


def service_url(name: str, namespace: str, port: str | None, path: str | None) -> str:
    """The in-cluster URL of a Service. A numeric ``port`` is kept; a *named* port cannot be
    looked up without the Service object, so it is left to the Service's default port."""
    authority = f"{name}.{namespace}.svc.cluster.local"
    if port and port.isdigit():
        authority += f":{port}"
    suffix = path or ""
    if suffix and not suffix.startswith("/"):
        suffix = "/" + suffix
    return f"http://{authority}{suffix}"


class ValueResolver:
    """Resolves value sources in one namespace, caching ConfigMaps and Secrets it has read."""

    def __init__(
        self,
        store: ResourceStore,
        namespace: str,
        query_parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.query_parameters = dict(query_parameters or {})
        self._config_maps: dict[str, ConfigMap | None] = {}
        self._secrets: dict[str, Secret | None] = {}

    async def _config_map(self, name: str) -> ConfigMap | None:
        if name not in self._config_maps:
            self._config_maps[name] = await self.store.get(ConfigMap, self.namespace, name)
        return self._config_maps[name]

    async def _secret(self, name: str) -> Secret | None:
        if name not in self._secrets:
            self._secrets[name] = await self.store.get(Secret, self.namespace, name)
        return self._secrets[name]

    async def _from(self, source: ValueFrom, what: str) -> str | None:
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            config_map = await self._config_map(ref.name)
            if config_map is None:
                if ref.optional:
                    return None
                raise ParameterError(
                    f"{what}: ConfigMap '{ref.name}' not found in namespace '{self.namespace}'"
                )
            if ref.key not in (config_map.data or {}):
                if ref.optional:
                    return None
                raise ParameterError(f"{what}: ConfigMap '{ref.name}' has no key '{ref.key}'")
            return (config_map.data or {})[ref.key]
        if source.secret_key_ref is not None:
            secret_ref = source.secret_key_ref
            secret = await self._secret(secret_ref.name)
            if secret is None:
                if secret_ref.optional:
                    return None
                raise ParameterError(
                    f"{what}: Secret '{secret_ref.name}' not found in namespace '{self.namespace}'"
                )
            values = secret.decoded()
            if secret_ref.key not in values:
                if secret_ref.optional:
                    return None
                raise ParameterError(
                    f"{what}: Secret '{secret_ref.name}' has no key '{secret_ref.key}'"
                )
            return values[secret_ref.key]
        if source.query_parameter_ref is not None:
            name = source.query_parameter_ref.name
            if name not in self.query_parameters:
                raise ParameterError(
                    f"{what}: refers to query parameter '{name}', which the query does not set"
                )
            return self.query_parameters[name]
        if source.service_ref is not None:
            ref_service = source.service_ref
            return service_url(
                ref_service.name,
                ref_service.namespace or self.namespace,
                ref_service.port,
                ref_service.path,
            )
        raise ParameterError(f"{what}: valueFrom names no source")

    async def value(self, source: ValueSource | None, *, what: str) -> str | None:
        """The value of a ``ValueSource``; None when absent or optional and missing."""
        if source is None:
            return None
        if source.value is not None:
            return source.value
        if source.value_from is not None:
            return await self._from(source.value_from, what)
        return None

    async def required(self, source: ValueSource | None, *, what: str) -> str:
        resolved = await self.value(source, what=what)
        if resolved is None or resolved == "":
            raise ParameterError(f"{what} is required but has no value")
        return resolved

    async def parameters(
        self, parameters: Sequence[Parameter] | None, *, what: str
    ) -> dict[str, str]:
        """Parameter name → value; optional references that are missing give ``""``."""
        values: dict[str, str] = {}
        for parameter in parameters or []:
            label = f"{what} parameter '{parameter.name}'"
            if parameter.value is not None:
                values[parameter.name] = parameter.value
            elif parameter.value_from is not None:
                resolved = await self._from(parameter.value_from, label)
                values[parameter.name] = resolved if resolved is not None else ""
            else:
                raise ParameterError(f"{label} has neither value nor valueFrom")
        return values

    async def headers(self, headers: Sequence[Header] | None, *, what: str) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for header in headers or []:
            value = await self.value(header.value, what=f"{what} header '{header.name}'")
            if value is not None:
                resolved[header.name] = value
        return resolved
