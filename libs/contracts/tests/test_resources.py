"""Ark resources decode from realistic manifests, re-encode unchanged, and reject bad input."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from ark_mesh.contracts import (
    KINDS,
    A2AServer,
    Agent,
    DecodeError,
    Model,
    ObjectMeta,
    Query,
    QuerySpec,
    QueryTarget,
    Secret,
    Team,
    TokenUsage,
    decode,
    encode,
)
from ark_mesh.contracts.codec import decode as decode_bytes


def _as_json_bytes(manifest: dict[str, Any]) -> bytes:
    return encode(manifest)


def test_every_sample_round_trips_without_losing_a_field(sample: dict[str, Any]) -> None:
    kind = KINDS[sample["kind"]]
    obj = decode(_as_json_bytes(sample), kind)
    again = decode(encode(obj), kind)
    assert again == obj
    # Nothing in a realistic Ark manifest is dropped or renamed on the way through.
    assert decode(encode(obj), dict) == sample


def test_query_with_selector_and_secret_parameter(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    query = decode(_as_json_bytes(load_sample("query-selector-secret-params.yaml")), Query)
    assert query.spec.target is None
    assert query.spec.selector is not None
    assert query.spec.selector.match_labels == {"role": "weather"}
    assert query.spec.selector.match_expressions is not None
    assert query.spec.selector.match_expressions[0].operator == "In"
    assert query.spec.parameters is not None
    secret_ref = query.spec.parameters[1].value_from
    assert secret_ref is not None
    assert secret_ref.secret_key_ref is not None
    assert (secret_ref.secret_key_ref.name, secret_ref.secret_key_ref.key) == (
        "user-profile",
        "display-name",
    )
    assert query.spec.overrides is not None
    assert query.spec.overrides[0].resource_type == "model"


def test_query_status_keeps_a2a_ids_and_token_usage(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    query = decode(_as_json_bytes(load_sample("query-done-a2a.yaml")), Query)
    assert query.status is not None
    assert query.status.phase == "done"
    assert query.status.a2a is not None
    assert query.status.a2a.context_id == "ctx-7f3a"
    assert query.status.response is not None
    assert query.status.response.a2a is not None
    assert query.status.response.a2a.task_id == "task-19"
    assert query.status.token_usage == TokenUsage(
        prompt_tokens=50, completion_tokens=100, total_tokens=150, cached_tokens=10
    )
    assert query.status.conditions is not None
    assert query.status.conditions[0].reason == "QuerySucceeded"


def test_team_with_selector_strategy_and_graph(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    team = decode(_as_json_bytes(load_sample("team-selector.yaml")), Team)
    assert team.spec.strategy == "selector"
    assert team.spec.max_turns == 6
    assert team.spec.selector is not None
    assert team.spec.selector.enable_terminate_tool is True
    assert team.spec.graph is not None
    assert team.spec.graph.edges is not None
    assert [(e.from_, e.to) for e in team.spec.graph.edges] == [
        ("researcher", "critic"),
        ("critic", "editors"),
    ]


def test_model_with_azure_config(load_sample: Callable[[str], dict[str, Any]]) -> None:
    model = decode(_as_json_bytes(load_sample("model-azure.yaml")), Model)
    assert model.spec.provider == "azure"
    azure = model.spec.config.azure if model.spec.config else None
    assert azure is not None
    assert azure.api_version is not None
    assert azure.api_version.value == "2024-12-01-preview"
    assert azure.properties is not None
    assert azure.properties["temperature"].value == "0.2"


def test_a2aserver_keeps_arks_prealpha_version(
    load_sample: Callable[[str], dict[str, Any]],
) -> None:
    server = decode(_as_json_bytes(load_sample("a2aserver.yaml")), A2AServer)
    assert server.api_version == "ark.mckinsey.com/v1prealpha1"
    assert A2AServer.api_version_string() == "ark.mckinsey.com/v1prealpha1"


def test_objects_built_in_code_carry_their_coordinates() -> None:
    query = Query(metadata=ObjectMeta(name="q"), spec=QuerySpec(input="hi"))
    wire = decode(encode(query), dict)
    assert wire["apiVersion"] == "ark.mckinsey.com/v1alpha1"
    assert wire["kind"] == "Query"
    assert wire["spec"] == {"input": "hi"}
    assert Agent().kind == "Agent"


def test_legacy_forms_are_accepted_on_read() -> None:
    legacy = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": "old"},
        "spec": {
            "input": [{"role": "user", "content": "hi"}],
            "type": "messages",
            "targets": [{"type": "agent", "name": "a"}, {"type": "model", "name": "m"}],
        },
        "status": {
            "phase": "evaluating",
            "responses": [{"target": {"type": "agent", "name": "a"}, "content": "x"}],
        },
    }
    query = decode(encode(legacy), Query)
    assert query.spec.targets == [
        QueryTarget(type="agent", name="a"),
        QueryTarget(type="model", name="m"),
    ]
    assert query.status is not None
    assert query.status.phase == "evaluating"


def test_secret_values_are_base64_on_the_wire() -> None:
    secret = Secret(
        metadata=ObjectMeta(name="s"),
        data={"api-key": base64.b64encode(b"sk-123").decode()},
        string_data={"plain": "p"},
    )
    assert secret.decoded() == {"api-key": "sk-123", "plain": "p"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda q: q["spec"]["target"].update(type="bogus"), "$.spec.target.type"),
        (lambda q: q["spec"].pop("input"), "missing required field `input`"),
        (lambda q: q["spec"].update(timeout=300), "$.spec.timeout"),
        (lambda q: q["spec"]["target"].update(name=""), "$.spec.target.name"),
        (lambda q: q["spec"].update(conversationId="x" * 129), "$.spec.conversationId"),
        (lambda q: q["status"].update(phase="finished"), "$.status.phase"),
    ],
)
def test_malformed_query_is_rejected_naming_the_field(
    load_sample: Callable[[str], dict[str, Any]], mutate: Any, expected: str
) -> None:
    manifest = load_sample("query-done-a2a.yaml")
    mutate(manifest)
    with pytest.raises(DecodeError) as caught:
        decode(_as_json_bytes(manifest), Query)
    assert expected in caught.value.reason
    assert expected in str(caught.value)


def test_invalid_json_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="malformed JSON"):
        decode_bytes(b'{"apiVersion": ', Query)
