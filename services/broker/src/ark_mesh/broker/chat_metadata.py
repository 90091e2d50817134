"""The annotations a chat completion's ``metadata`` asks for on its Query, as ark-api reads them.

OpenAI's ``metadata`` is a map of strings, so Ark passes structured values as JSON text:

* ``metadata.queryAnnotations`` — a JSON object of annotations for the Query (e.g. the A2A
  context id), merged first;
* ``metadata.ark`` — a JSON object ``{"annotations": {...}}`` (ark-api's
  ``ArkOpenAICompletionsMetadata``), merged on top.

ark-api logs and drops a ``queryAnnotations`` it cannot parse; here either key, when it is not a
JSON object of string values, is a 400 naming the key (and the annotation), since a dropped
annotation silently changes what the query does. A JSON object sent as an object instead of as
text is taken as it is. The reconciliation annotation is refused unless it says ``broker``: a
chat completion is always a broker-mode query (decision 18).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ark_mesh.broker.errors import BadRequestError
from ark_mesh.contracts.ark import RECONCILIATION_ANNOTATION

__all__ = ["ARK_KEY", "QUERY_ANNOTATIONS_KEY", "requested_annotations"]

QUERY_ANNOTATIONS_KEY = "queryAnnotations"
ARK_KEY = "ark"


def _object(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise BadRequestError(
                f"{field} must be a JSON object (as a string): {exc}", field=field, status=400
            ) from None
    if not isinstance(value, dict):
        raise BadRequestError(
            f"{field} must be a JSON object, got {type(value).__name__}", field=field, status=400
        )
    return value


def _annotations(value: Any, field: str) -> dict[str, str]:
    annotations = _object(value, field)
    for key, item in annotations.items():
        if not isinstance(item, str):
            raise BadRequestError(
                f"annotation values are strings; {key!r} is {type(item).__name__}",
                field=f"{field}.{key}",
                status=400,
            )
    return annotations


def requested_annotations(metadata: dict[str, Any] | None) -> dict[str, str]:
    """The annotations ``metadata`` asks for (see the module docstring); 400 naming the key."""
    if not metadata:
        return {}
    merged: dict[str, str] = {}
    if metadata.get(QUERY_ANNOTATIONS_KEY) is not None:
        field = f"metadata.{QUERY_ANNOTATIONS_KEY}"
        merged.update(_annotations(metadata[QUERY_ANNOTATIONS_KEY], field))
    if metadata.get(ARK_KEY) is not None:
        ark = _object(metadata[ARK_KEY], f"metadata.{ARK_KEY}")
        unknown = sorted(set(ark) - {"annotations"})
        if unknown:
            raise BadRequestError(
                f"metadata.{ARK_KEY} holds only 'annotations'; unknown: {', '.join(unknown)}",
                field=f"metadata.{ARK_KEY}.{unknown[0]}",
                status=400,
            )
        if ark.get("annotations") is not None:
            merged.update(_annotations(ark["annotations"], f"metadata.{ARK_KEY}.annotations"))
    mode = merged.get(RECONCILIATION_ANNOTATION)
    if mode is not None and mode != "broker":
        raise BadRequestError(
            f"a chat completion is resolved in broker mode; annotation "
            f"{RECONCILIATION_ANNOTATION} asks for {mode!r}",
            field=f"metadata.{QUERY_ANNOTATIONS_KEY}",
            status=400,
        )
    return merged
