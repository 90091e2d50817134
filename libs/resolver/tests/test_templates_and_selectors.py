"""The Go-template subset and label selectors."""

from __future__ import annotations

import pytest

from ark_mesh.resolver.errors import InvalidSpecError, TemplateError
from ark_mesh.resolver.selectors import matches, to_query
from ark_mesh.resolver.templates import render, variables


def test_render_fills_fields_nested_paths_and_trims() -> None:
    values = {"name": "Ada", "input": {"city": "Rome", "n": 3, "ok": True}}
    assert render("Hi {{.name}}!", values) == "Hi Ada!"
    assert render("{{ .input.city }} x{{.input.n}} {{.input.ok}}", values) == "Rome x3 true"
    assert render("a  {{- .name -}}  b", values) == "aAdab"
    assert render("no placeholders {x}", {}) == "no placeholders {x}"
    assert variables("{{.a}} and {{ .b.c }}") == ["a", "b.c"]


def test_render_names_the_missing_variable() -> None:
    with pytest.raises(TemplateError, match=r"query input references \{\{\.city\}\}.*known: name"):
        render("{{.city}}", {"name": "x"}, where="query input")
    with pytest.raises(TemplateError, match=r"\{\{\.input\.zip\}\}"):
        render("{{.input.zip}}", {"input": {"city": "x"}})


def test_render_refuses_unsupported_actions() -> None:
    with pytest.raises(TemplateError, match="unsupported template action"):
        render("{{if .x}}y{{end}}", {"x": 1})


def test_label_selector_matching() -> None:
    labels = {"app": "chat", "tier": "gold"}
    assert matches(None, labels)
    assert matches({"matchLabels": {"app": "chat"}}, labels)
    assert not matches({"matchLabels": {"app": "other"}}, labels)
    expr = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}
    assert matches(expr, labels)
    assert not matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, labels
    )
    assert matches({"matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]}, labels)
    assert not matches({"matchExpressions": [{"key": "legacy", "operator": "Exists"}]}, labels)
    assert not matches({"matchLabels": {"app": "chat"}}, None)


def test_label_selector_query_string_and_bad_selectors() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "t", "operator": "In", "values": ["x", "y"]},
            {"key": "old", "operator": "DoesNotExist"},
        ],
    }
    assert to_query(selector) == "a=1,b=2,t in (x,y),!old"
    with pytest.raises(InvalidSpecError, match="invalid label selector"):
        matches({"matchExpressions": [{"key": "t", "operator": "Near"}]}, {})
