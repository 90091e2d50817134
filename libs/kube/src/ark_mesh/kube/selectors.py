"""Kubernetes ``LabelSelector`` objects: to the query-string syntax, and matched locally.

The cache answers ``list(kind, namespace, label_selector)`` from memory, so it must match
exactly as the server would: ``matchLabels`` and ``matchExpressions`` are ANDed, ``NotIn`` and
``DoesNotExist`` match objects without the key, and an empty selector matches everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["SelectorError", "selector_matches", "selector_to_query"]


class SelectorError(ValueError):
    """A selector that the server would reject; the message names the offending part."""


def _normalise(selector: Any) -> Mapping[str, Any]:
    if isinstance(selector, msgspec.Struct):
        selector = msgspec.to_builtins(selector)
    if not isinstance(selector, Mapping):
        raise SelectorError(f"a label selector must be a mapping, not {type(selector).__name__}")
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SelectorError(f"unknown label selector fields: {sorted(unknown)}")
    return selector


def _expressions(selector: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    parsed = []
    for index, expression in enumerate(selector.get("matchExpressions") or ()):
        key = expression.get("key")
        operator = expression.get("operator")
        values = list(expression.get("values") or ())
        if not key:
            raise SelectorError(f"matchExpressions[{index}].key: Required value")
        if operator in ("In", "NotIn") and not values:
            raise SelectorError(
                f"matchExpressions[{index}].values: Required value: must be specified when "
                f"`operator` is 'In' or 'NotIn'"
            )
        if operator in ("Exists", "DoesNotExist") and values:
            raise SelectorError(
                f"matchExpressions[{index}].values: Forbidden: may not be specified when "
                f"`operator` is 'Exists' or 'DoesNotExist'"
            )
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(
                f'matchExpressions[{index}].operator: Unsupported value: "{operator}": '
                'supported values: "In", "NotIn", "Exists", "DoesNotExist"'
            )
        parsed.append((str(key), str(operator), [str(v) for v in values]))
    return parsed


def selector_to_query(selector: Mapping[str, Any] | str | None) -> str | None:
    """The ``labelSelector`` query parameter for a selector (strings pass through)."""
    if selector is None or isinstance(selector, str):
        return selector or None
    selector = _normalise(selector)
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for key, operator, values in _expressions(selector):
        match operator:
            case "In":
                parts.append(f"{key} in ({','.join(sorted(values))})")
            case "NotIn":
                parts.append(f"{key} notin ({','.join(sorted(values))})")
            case "Exists":
                parts.append(key)
            case "DoesNotExist":
                parts.append(f"!{key}")
    return ",".join(parts) or None


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether an object with ``labels`` is selected (``None``/empty selects everything)."""
    if selector is None:
        return True
    selector = _normalise(selector)
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for key, operator, values in _expressions(selector):
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
