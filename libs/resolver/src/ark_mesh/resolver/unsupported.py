"""What a Query asks for that ark-mesh does not do, said out loud instead of dropped.

Ark's evaluation feature (``spec.evaluators`` and ``spec.evaluatorSelector``: after the target
answers, Evaluator services score the answer) is not implemented here. A Query that uses it still
resolves normally, but it gets a ``EvaluationSkipped=True`` condition (reason
``EvaluatorsNotSupported``) and a Warning event of the same reason, both naming the evaluators or
the selector, so nobody waits for scores that will never come. Ark has no condition for this case;
the names are ark-mesh's (docs/decisions.md).

The fields are read with ``getattr`` because the Query Struct gains them separately from this
module; any value shape is accepted (an ``EvaluatorRef`` Struct or a plain mapping).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from ark_mesh.contracts import Condition, QuerySpec
from ark_mesh.resolver.status import condition

__all__ = [
    "EVALUATION_SKIPPED",
    "EVALUATORS_NOT_SUPPORTED",
    "skipped_evaluation",
    "skipped_evaluation_condition",
]

EVALUATION_SKIPPED = "EvaluationSkipped"
"""Condition type and event reason."""
EVALUATORS_NOT_SUPPORTED = "EvaluatorsNotSupported"
"""Condition reason."""


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def _evaluator_name(ref: Any) -> str:
    ref = _plain(ref)
    if isinstance(ref, Mapping):
        name = str(ref.get("name", "?"))
        namespace = ref.get("namespace")
        return f"{namespace}/{name}" if namespace else name
    return str(ref)


def skipped_evaluation(spec: QuerySpec) -> str | None:
    """The message naming the evaluation settings not acted on, or ``None`` if there are none."""
    evaluators = getattr(spec, "evaluators", None) or []
    selector = _plain(getattr(spec, "evaluator_selector", None))
    parts: list[str] = []
    if evaluators:
        parts.append(f"spec.evaluators ({', '.join(_evaluator_name(e) for e in evaluators)})")
    if selector is not None:
        parts.append(f"spec.evaluatorSelector ({json.dumps(selector, sort_keys=True)})")
    if not parts:
        return None
    return (
        f"{' and '.join(parts)} not acted on: ark-mesh does not run evaluations; "
        "the query was resolved without them"
    )


def skipped_evaluation_condition(message: str, now: datetime, generation: int) -> Condition:
    return condition(EVALUATION_SKIPPED, True, EVALUATORS_NOT_SUPPORTED, message, now, generation)
