"""Selector parsing and the patch formats, on their own."""

from __future__ import annotations

import pytest

from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.patches import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from ark_mesh.testing.k8s.selectors import FieldSelector, LabelSelector
from ark_mesh.testing.k8s.tables import human_duration


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {"a": "1"}, True),
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2),b", {"a": "2", "b": ""}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("!a", {"a": "x"}, False),
        ("a>5", {"a": "7"}, True),
        ("a<5", {"a": "x"}, False),
        ("example.com/tier=gold", {"example.com/tier": "gold"}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a in ()", "a in 1", "a=b=c", "=x", "a,,b", "a in (x", "a@b"])
def test_unparsable_label_selectors_are_bad_requests(bad: str) -> None:
    with pytest.raises(ApiError) as caught:
        LabelSelector.parse(bad)
    assert caught.value.code == 400


def test_field_selectors() -> None:
    selector = FieldSelector.parse(
        "metadata.name=a, metadata.namespace!=b", ["metadata.name", "metadata.namespace"]
    )
    assert selector.matches({"metadata": {"name": "a", "namespace": "c"}})
    assert not selector.matches({"metadata": {"name": "a", "namespace": "b"}})
    with pytest.raises(ApiError, match=r"field label not supported: spec\.x"):
        FieldSelector.parse("spec.x=1", ["metadata.name"])


def test_merge_patch_rfc7386() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1}
    patched = apply_merge_patch(target, {"a": {"b": None, "x": 3}, "d": [3], "e": None})
    assert patched == {"a": {"c": 2, "x": 3}, "d": [3]}
    assert target["e"] == 1  # not modified in place


def test_json_patch_rfc6902() -> None:
    doc = {"spec": {"list": [1, 2, 3], "name": "a"}, "metadata": {"finalizers": ["x"]}}
    patched = apply_json_patch(
        doc,
        [
            {"op": "test", "path": "/spec/name", "value": "a"},
            {"op": "replace", "path": "/spec/name", "value": "b"},
            {"op": "add", "path": "/spec/list/-", "value": 4},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "copy", "from": "/spec/name", "path": "/spec/copy"},
            {"op": "move", "from": "/spec/copy", "path": "/spec/moved"},
            {"op": "remove", "path": "/metadata/finalizers"},
            {"op": "add", "path": "/metadata/labels", "value": {"a~b/c": "1"}},
        ],
    )
    assert patched == {
        "spec": {"list": [2, 3, 4], "name": "b", "moved": "b"},
        "metadata": {"labels": {"a~b/c": "1"}},
    }
    with pytest.raises(ApiError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/spec/name", "value": "zzz"}])
    with pytest.raises(ApiError, match="missing value"):
        apply_json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_strategic_merge_patch_directives() -> None:
    target = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "2"}],
            "tolerations": [{"key": "k"}],
            "selector": {"app": "a", "tier": "b"},
        },
    }
    patch = {
        "metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "$setElementOrder/containers": [{"name": "z"}, {"name": "x"}],
            "containers": [{"name": "z", "image": "3"}, {"name": "y", "$patch": "delete"}],
            "tolerations": [{"key": "other"}],
            "selector": {"$patch": "replace", "app": "new"},
        },
    }
    assert apply_strategic_merge_patch(target, patch) == {
        "metadata": {"finalizers": ["b", "c"]},
        "spec": {
            "strategy": {"type": "Recreate"},
            "containers": [{"name": "z", "image": "3"}, {"name": "x", "image": "1"}],
            "tolerations": [{"key": "other"}],  # no merge key: replaced
            "selector": {"app": "new"},
        },
    }


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (119, "119s"),
        (270, "4m30s"),
        (300, "5m"),
        (1500, "25m"),
        (3 * 3600 + 300, "3h5m"),
        (10 * 3600, "10h"),
        (52 * 3600, "2d4h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 86400, "3y1d"),
    ],
)
def test_ages_read_as_the_server_writes_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown
