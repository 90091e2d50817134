"""Kubernetes label selectors: matching labels, and the query-string form for API servers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ark_mesh.contracts import LabelSelector
from ark_mesh.resolver.errors import InvalidSpecError

__all__ = ["as_wire", "matches", "to_query"]


def as_wire(selector: LabelSelector | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The wire form (``matchLabels``/``matchExpressions``) the ResourceStore port takes."""
    if selector is None:
        return None
    if isinstance(selector, LabelSelector):
        return msgspec.to_builtins(selector)  # type: ignore[no-any-return]
    return dict(selector)


def _parsed(selector: Mapping[str, Any]) -> LabelSelector:
    try:
        return msgspec.convert(selector, LabelSelector)
    except msgspec.ValidationError as exc:
        raise InvalidSpecError(f"invalid label selector: {exc}") from exc


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy the selector; an empty selector matches everything."""
    if not selector:
        return True
    parsed = _parsed(selector)
    have = labels or {}
    for key, value in (parsed.match_labels or {}).items():
        if have.get(key) != value:
            return False
    for requirement in parsed.match_expressions or []:
        values = requirement.values or []
        present = requirement.key in have
        if requirement.operator == "In" and (not present or have[requirement.key] not in values):
            return False
        if requirement.operator == "NotIn" and present and have[requirement.key] in values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True


def to_query(selector: Mapping[str, Any] | None) -> str:
    """The ``labelSelector`` query parameter form: ``app=x,tier in (a,b),!legacy``."""
    if not selector:
        return ""
    parsed = _parsed(selector)
    terms = [f"{k}={v}" for k, v in sorted((parsed.match_labels or {}).items())]
    for requirement in parsed.match_expressions or []:
        values = ",".join(requirement.values or [])
        terms.append(
            {
                "In": f"{requirement.key} in ({values})",
                "NotIn": f"{requirement.key} notin ({values})",
                "Exists": requirement.key,
                "DoesNotExist": f"!{requirement.key}",
            }[requirement.operator]
        )
    return ",".join(terms)
