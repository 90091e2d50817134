"""Ark's defaulting and migrations (the mutating webhooks), as pure functions over raw objects.

Each ``default_<kind>`` returns a changed copy; the webhook server turns the difference into
the JSONPatch the API server applies. What a Query's defaults depend on in the cluster
(``ArkConfig/default`` and the Memory it names) is read by the server beforehand and passed
in as :class:`QueryDefaults`, so these functions never touch the network.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ark_mesh.contracts import DurationError, format_duration, parse_duration
from ark_mesh.controller.admission.rules import (
    A2A_SERVER_ANNOTATION,
    DEPRECATED_PROVIDER_TYPES,
    MIGRATION_WARNING_PREFIX,
    check_graph_strategy,
    check_no_model_field,
)

__all__ = [
    "FALLBACK_QUERY_TTL",
    "QueryDefaults",
    "default_agent",
    "default_memory_ref",
    "default_model",
    "default_query",
    "default_team",
]

FALLBACK_QUERY_TTL: Final = "720h"
DEFAULT_MODEL: Final = "default"


@dataclass(frozen=True, slots=True)
class QueryDefaults:
    """What the cluster contributes to a Query's defaults.

    ``ark_config`` is ``ArkConfig/default`` (cluster-scoped) when it exists; ``default_memory``
    is the Memory its ``spec.defaultMemory`` names, when that Memory exists.
    """

    ark_config: Mapping[str, Any] | None = None
    default_memory: Mapping[str, Any] | None = None
    fallback_ttl: str = FALLBACK_QUERY_TTL


def default_memory_ref(ark_config: Mapping[str, Any] | None, namespace: str) -> tuple[str, str]:
    """``(namespace, name)`` of the Memory ``ArkConfig.spec.defaultMemory`` names, or ``("", "")``.

    Accepts the reference as ``{name, namespace?}`` or as a bare name; a missing namespace is
    the Query's own.
    """
    spec = _mapping(_mapping(ark_config).get("spec"))
    ref = spec.get("defaultMemory")
    if isinstance(ref, str):
        return (namespace, ref) if ref else ("", "")
    ref = _mapping(ref)
    name = str(ref.get("name") or "")
    return (str(ref.get("namespace") or namespace), name) if name else ("", "")


def default_query(
    obj: Mapping[str, Any], operation: str, defaults: QueryDefaults
) -> dict[str, Any]:
    """``messages`` → ``user`` (input: the last user message), ``ttl`` from ArkConfig or 720h,
    and on CREATE only the ArkConfig default memory when it is ready (never over an explicit
    ``memory``, never backfilled into an existing Query)."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    if spec.get("type") == "messages":
        spec["type"] = "user"
        spec["input"] = _last_user_text(spec.get("input"))
        _annotate(
            out,
            "input-type",
            "spec.type 'messages' is deprecated - migrated to 'user' with extracted text. Use "
            "conversationId for multi-turn conversations",
        )
    if not spec.get("ttl"):
        configured = _mapping(_mapping(defaults.ark_config).get("spec")).get("queryTTL")
        spec["ttl"] = _go_duration(str(configured) if configured else defaults.fallback_ttl)
    memory = _mapping(defaults.default_memory)
    if (
        operation == "CREATE"
        and spec.get("memory") is None
        and memory
        and _mapping(memory.get("status")).get("lastResolvedAddress")
    ):
        meta = _mapping(memory.get("metadata"))
        ref: dict[str, Any] = {"name": meta.get("name")}
        query_namespace = _mapping(out.get("metadata")).get("namespace")
        if meta.get("namespace") and meta.get("namespace") != query_namespace:
            ref["namespace"] = meta["namespace"]
        spec["memory"] = ref
    return out


def _go_duration(text: str) -> str:
    """A defaulted duration as Ark's webhook stores it: Go's ``metav1.Duration`` text
    (``720h0m0s``, ``1h0m0s``); what a user wrote is never rewritten."""
    try:
        return format_duration(parse_duration(text))
    except DurationError:
        return text


def default_agent(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An Agent that names no model uses the Model ``default`` — unless an execution engine or
    an A2A server answers for it; a ``custom`` tool type is flagged as deprecated. The old
    ``model:`` field is refused here, before pruning could hide it."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    check_no_model_field(spec)
    annotations = _mapping(_mapping(out.get("metadata")).get("annotations"))
    engine = _mapping(spec.get("executionEngine"))
    answered_elsewhere = bool(engine.get("name")) or A2A_SERVER_ANNOTATION in annotations
    if spec.get("modelRef") is None and not answered_elsewhere:
        spec["modelRef"] = {"name": DEFAULT_MODEL}
    for tool in spec.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("type") == "custom":
            _annotate(
                out,
                "tool-type-custom",
                f"agent '{_mapping(out.get('metadata')).get('name')}' tool '{tool.get('name')}': "
                "type 'custom' is deprecated, use the tool's actual type (mcp, http, agent, "
                "team, builtin) instead",
            )
            break
    return out


def default_model(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The provider in ``type`` (Ark before 0.50) moves to ``provider``; ``type`` becomes
    ``completions``."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    kind = spec.get("type")
    if not spec.get("provider") and kind in DEPRECATED_PROVIDER_TYPES:
        spec["provider"] = kind
        spec["type"] = "completions"
        _annotate(
            out,
            "provider",
            f"spec.type is deprecated for provider values - migrated '{kind}' to spec.provider",
        )
    return out


def default_team(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``round-robin`` → ``sequential`` (with loops when maxTurns is set); ``graph`` →
    ``sequential`` without its edges. A graph whose edges are malformed is refused
    (:class:`~ark_mesh.controller.admission.rules.RefusedError`) rather than silently dropped."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    strategy = spec.get("strategy")
    if strategy == "round-robin":
        spec["strategy"] = "sequential"
        if spec.get("maxTurns") is not None:
            spec["loops"] = True
            message = (
                "strategy 'round-robin' is deprecated - migrated to 'sequential' with loops: "
                "true. Will be removed in v1.0.0"
            )
        else:
            spec["loops"] = False
            message = (
                "strategy 'round-robin' is deprecated - migrated to 'sequential'. Set loops: "
                "true and maxTurns to enable looping. Will be removed in v1.0.0"
            )
        _annotate(out, "round-robin", message)
    elif strategy == "graph":
        check_graph_strategy(spec)
        spec["strategy"] = "sequential"
        spec["loops"] = False
        spec.pop("graph", None)
        spec.pop("maxTurns", None)
        _annotate(
            out,
            "graph",
            "strategy 'graph' is deprecated - migrated to 'sequential'. Graph edges have been "
            "discarded. Will be removed in v1.0.0",
        )
    return out


def _annotate(obj: dict[str, Any], suffix: str, message: str) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[MIGRATION_WARNING_PREFIX + suffix] = message


def _last_user_text(messages: Any) -> str:
    """The text of the last ``user`` message of an OpenAI messages array ('' if none)."""
    if isinstance(messages, str):
        return messages
    text = ""
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = "".join(
                str(part.get("text") or "")
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
    return text


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
