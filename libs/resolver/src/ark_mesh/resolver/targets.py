"""Which resource a query runs: ``spec.target``, or the first match of ``spec.selector``.

A selector is not a fan-out: the first Agent that matches wins, then the first Team, Model and
Tool, in that order (Ark's rule). The old list form ``spec.targets`` is read as its first entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ark_mesh.contracts import Agent, Model, QuerySpec, QueryTarget, Resource, Team, Tool
from ark_mesh.resolver.errors import InvalidSpecError, TargetNotFoundError
from ark_mesh.resolver.ports import ResourceStore
from ark_mesh.resolver.selectors import as_wire

__all__ = ["ResolvedTarget", "resolve_target"]

KIND_OF: dict[str, type[Resource]] = {"agent": Agent, "team": Team, "model": Model, "tool": Tool}
SELECTOR_ORDER = ("agent", "team", "model", "tool")


@dataclass(frozen=True)
class ResolvedTarget:
    target: QueryTarget
    resource: Resource

    @property
    def label(self) -> str:
        """``agent/weather``: the form of chunk ``ark.target``."""
        return f"{self.target.type}/{self.target.name}"


async def resolve_target(store: ResourceStore, namespace: str, spec: QuerySpec) -> ResolvedTarget:
    target = spec.target or (spec.targets[0] if spec.targets else None)
    if target is not None:
        kind = KIND_OF.get(target.type)
        if kind is None:
            raise InvalidSpecError(f"unsupported target type '{target.type}'")
        resource = await store.get(kind, namespace, target.name)
        if resource is None:
            raise TargetNotFoundError(
                f"target references {target.type} '{target.name}' which does not exist "
                f"in namespace '{namespace}'"
            )
        return ResolvedTarget(target, resource)
    if spec.selector is not None:
        selector = as_wire(spec.selector)
        for type_name in SELECTOR_ORDER:
            matches = await store.list(KIND_OF[type_name], namespace, selector)
            if matches:
                first = matches[0]
                return ResolvedTarget(
                    QueryTarget(type=type_name, name=first.metadata.name),  # type: ignore[arg-type]
                    first,
                )
        raise TargetNotFoundError("no matching resources found for selector")
    raise InvalidSpecError("no target or selector specified")
