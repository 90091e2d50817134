"""What a Query asks for that ark-mesh does not do, said out loud instead of dropped.

Ark's evaluation feature (``spec.evaluators`` and ``spec.evaluatorSelector``: after the target
answers, Evaluator services score the answer) is not implemented here. A Query that uses it still
resolves normally, but it gets a ``EvaluationSkipped=True`` condition (reason
``EvaluatorsNotSupported``) and a Warning event of the same reason, both naming the evaluators or
the selector, so nobody waits for scores that will never come. Ark has no condition for this case;
the names are ark-mesh's (docs/decisions.md).
"""

from __future__ import annotations

import json
from datetime import datetime

import msgspec

from ark_mesh.contracts import Condition, EvaluatorRef, QuerySpec
from ark_mesh.contracts.endings import condition

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


def _evaluator_name(ref: EvaluatorRef) -> str:
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


def skipped_evaluation(spec: QuerySpec) -> str | None:
    """The message naming the evaluation settings not acted on, or ``None`` if there are none."""
    evaluators = spec.evaluators or []
    selector = spec.evaluator_selector
    parts: list[str] = []
    if evaluators:
        parts.append(f"spec.evaluators ({', '.join(_evaluator_name(e) for e in evaluators)})")
    if selector is not None:
        parts.append(
            f"spec.evaluatorSelector ({json.dumps(msgspec.to_builtins(selector), sort_keys=True)})"
        )
    if not parts:
        return None
    return (
        f"{' and '.join(parts)} not acted on: ark-mesh does not run evaluations; "
        "the query was resolved without them"
    )


def skipped_evaluation_condition(message: str, now: datetime, generation: int) -> Condition:
    return condition(EVALUATION_SKIPPED, True, EVALUATORS_NOT_SUPPORTED, message, now, generation)
