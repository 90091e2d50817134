"""Which resource a query runs: ``spec.target``, or the first match of ``spec.selector``.

A selector is not a fan-out: the first Agent that matches wins, then the first Team, Model and
Tool, in that order (Ark's rule). The old list form ``spec.targets`` (Ark before the single
``target``) is honoured when it names one target; with several it is refused, naming them,
because the newest Ark has no meaning for it — running only the first and reporting ``done``
would hide that the others never ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from ark_mesh.contracts import Agent, Model, QuerySpec, QueryTarget, Resource, Team, Tool
from ark_mesh.resolver.errors import InvalidSpecError, TargetNotFoundError
from ark_mesh.resolver.ports import ResourceStore
from ark_mesh.resolver.selectors import as_wire

__all__ = ["ResolvedTarget", "resolve_target", "single_target"]

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


def _label(target: QueryTarget) -> str:
    return f"{target.type}/{target.name}"


def single_target(spec: QuerySpec) -> QueryTarget | None:
    """``spec.target``, or the one entry of the old ``spec.targets``; several are an error."""
    legacy = list(spec.targets or [])
    if spec.target is not None:
        if legacy and legacy != [spec.target]:
            raise InvalidSpecError(
                f"spec.target ({_label(spec.target)}) and spec.targets "
                f"({', '.join(_label(t) for t in legacy)}) are both set; "
                "only one target is supported: keep spec.target"
            )
        return spec.target
    if len(legacy) > 1:
        raise InvalidSpecError(
            f"only one target is supported: spec.targets names {len(legacy)} "
            f"({', '.join(_label(t) for t in legacy)}); use spec.target with one of them, "
            "or one Query per target"
        )
    return legacy[0] if legacy else None


async def resolve_target(store: ResourceStore, namespace: str, spec: QuerySpec) -> ResolvedTarget:
    target = single_target(spec)
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
