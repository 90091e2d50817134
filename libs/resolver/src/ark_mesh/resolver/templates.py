"""The Go-template subset Ark uses for inputs, prompts and HTTP tool bodies.

Ark renders ``spec.input``, agent prompts, selector prompts and HTTP tool bodies with Go's
``text/template``. In practice only field access is used — ``{{.name}}``, ``{{ .input.city }}``,
``{{- .x -}}`` — so that is what is supported, strictly: a placeholder whose value is missing is
an error naming the variable (Go would print ``<no value>`` and let a broken prompt reach the
model), and any other action (``{{if}}``, ``{{range}}``, pipelines) is refused rather than
silently left in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ark_mesh.resolver.errors import TemplateError

__all__ = ["render", "variables"]

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"^\s*\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")


def variables(template: str) -> list[str]:
    """The dotted field paths a template references, in order (``["input.city", "name"]``)."""
    found = []
    for match in _ACTION.finditer(template):
        field = _FIELD.match(match.group(2))
        if field:
            found.append(field.group(1))
    return found


def _lookup(values: Mapping[str, Any], path: str, where: str) -> Any:
    current: Any = values
    walked = []
    for part in path.split("."):
        walked.append(part)
        if not isinstance(current, Mapping) or part not in current:
            known = ", ".join(sorted(current)) if isinstance(current, Mapping) else "nothing"
            raise TemplateError(
                f"{where} references {{{{.{'.'.join(walked)}}}}} but no value named "
                f"'{'.'.join(walked)}' was given (known: {known or 'none'})"
            )
        current = current[part]
    return current


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def render(template: str, values: Mapping[str, Any], *, where: str = "template") -> str:
    """Fill ``{{.path}}`` placeholders from ``values``; ``where`` names the text in errors."""
    if "{{" not in template:
        return template
    pieces: list[str] = []
    position = 0
    for match in _ACTION.finditer(template):
        before = template[position : match.start()]
        if match.group(1):
            before = before.rstrip()
        pieces.append(before)
        field = _FIELD.match(match.group(2))
        if field is None:
            raise TemplateError(
                f"{where} uses an unsupported template action {match.group(0)!r}; "
                "only field placeholders such as {{.name}} are supported"
            )
        pieces.append(_text(_lookup(values, field.group(1), where)))
        position = match.end()
        if match.group(3):
            rest = template[position:]
            position += len(rest) - len(rest.lstrip())
    pieces.append(template[position:])
    return "".join(pieces)
