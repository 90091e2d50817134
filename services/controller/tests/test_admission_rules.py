"""Ark's admission rules and defaults as the pure functions they are: object in, verdict out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ark_mesh.controller.admission import defaults, rules
from ark_mesh.controller.admission.review import json_patch
from ark_mesh.testing.k8s.patches import apply_json_patch

NS = "team-a"


def obj(name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, **meta}, "spec": spec}


AGENT_TARGET = {"type": "agent", "name": "helper"}
OPENAI = {"openai": {"baseUrl": {"value": "https://api.example.com/v1"}, "apiKey": {"value": "k"}}}
HTTP_TOOL = {
    "type": "http",
    "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
    "http": {"url": "https://example.com/search?q={q}"},
}

REFUSALS: list[tuple[str, Any, dict[str, Any], str]] = [
    # --- Query
    (
        "query",
        rules.validate_query,
        obj("q", {"target": AGENT_TARGET}),
        "spec.input: Required value",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "", "target": AGENT_TARGET}),
        'spec.input: Invalid value: "": spec.input in body should be at least 1 chars long',
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi"}),
        "target or selector must be specified",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi", "target": AGENT_TARGET, "selector": {"matchLabels": {"a": "b"}}}),
        "only one of target, targets or selector may be specified",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi", "target": {"type": "robot", "name": "x"}}),
        "target: unsupported type 'robot': supported types are: agent, team, model, tool",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi", "targets": [AGENT_TARGET, {"type": "robot", "name": "x"}]}),
        "target[1]: unsupported type 'robot': supported types are: agent, team, model, tool",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi", "target": AGENT_TARGET, "parameters": [{"name": "p"}]}),
        "parameter[0] 'p': must specify either value or valueFrom",
    ),
    (
        "query",
        rules.validate_query,
        obj(
            "q",
            {
                "input": "hi",
                "target": AGENT_TARGET,
                "parameters": [{"name": "p", "value": "v", "valueFrom": {}}],
            },
        ),
        "parameter[0] 'p': cannot specify both value and valueFrom",
    ),
    (
        "query",
        rules.validate_query,
        obj(
            "q",
            {
                "input": "hi",
                "target": AGENT_TARGET,
                "parameters": [{"name": "p", "valueFrom": {"queryParameterRef": {"name": ""}}}],
            },
        ),
        "parameter[0] 'p': queryParameterRef.name cannot be empty",
    ),
    (
        "query",
        rules.validate_query,
        obj(
            "q",
            {
                "input": "hi",
                "target": AGENT_TARGET,
                "overrides": [{"resourceType": "tool", "headers": [{"name": "h"}]}],
            },
        ),
        "overrides[0]: resourceType must be either 'model' or 'mcpserver'",
    ),
    (
        "query",
        rules.validate_query,
        obj(
            "q",
            {
                "input": "hi",
                "target": AGENT_TARGET,
                "overrides": [{"resourceType": "model", "headers": [{"name": "h", "value": {}}]}],
            },
        ),
        "overrides[0].headers[0]: must specify either value or valueFrom",
    ),
    (
        "query",
        rules.validate_query,
        obj(
            "q",
            {
                "input": "hi",
                "target": AGENT_TARGET,
                "evaluators": [{"name": "e"}],
                "evaluatorSelector": {"matchLabels": {"a": "b"}},
            },
        ),
        "cannot specify both evaluators and evaluatorSelector",
    ),
    (
        "query",
        rules.validate_query,
        obj("q", {"input": "hi", "target": AGENT_TARGET, "timeout": "whenever"}),
        'spec.timeout: Invalid value: "whenever": time: invalid duration "whenever"',
    ),
    # --- Agent
    ("agent", rules.validate_agent, obj("a", {}), "spec.prompt: Required value"),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "  "}),
        'spec.prompt: Invalid value: "": the prompt of an agent may not be empty',
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "model": "gpt"}),
        "spec.model: Forbidden: 'model' is no longer supported; name the model with "
        "spec.modelRef.name (e.g. modelRef: {name: gpt})",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "modelRef": {}}),
        "spec.modelRef.name: Required value",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "tools": [{"type": "spell", "name": "x"}]}),
        "tool[0]: unsupported tool type 'spell': supported types are: built-in, mcp, http, agent, "
        "team, builtin",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "tools": [{"type": "built-in"}]}),
        "tool[0]: built-in tools must specify a name",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "tools": [{"type": "built-in", "name": "shell"}]}),
        "tool[0]: unsupported built-in tool 'shell': supported built-in tools are: noop, terminate",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "tools": [{"type": "noop", "name": "x"}, {"type": "mcp"}]}),
        "tool[0]: unsupported tool type 'noop': supported types are: built-in, mcp, http, agent, "
        "team, builtin",
    ),
    (
        "agent",
        rules.validate_agent,
        obj("a", {"prompt": "p", "tools": [{"type": "http", "name": "get", "partial": {}}]}),
        "tool[0]: partial.name must be specified",
    ),
    (
        "agent",
        rules.validate_agent,
        obj(
            "a",
            {
                "prompt": "p",
                "tools": [{"type": "mcp", "name": "x", "approval": {"onTimeout": "shrug"}}],
            },
        ),
        "tool[0]: approval.onTimeout must be 'reject' or 'proceed'",
    ),
    (
        "agent",
        rules.validate_agent,
        obj(
            "a",
            {"prompt": "p", "tools": [{"type": "mcp", "name": "x", "approval": {"timeout": "0s"}}]},
        ),
        "tool[0]: approval.timeout must be a positive duration",
    ),
    # --- Model
    (
        "model",
        rules.validate_model,
        obj("m", {"model": {"value": "gpt"}, "config": OPENAI}),
        "provider is required",
    ),
    (
        "model",
        rules.validate_model,
        obj("m", {"type": "openai", "model": {"value": "gpt"}, "config": OPENAI}),
        "provider is required - update model to migrate 'openai' from spec.type to spec.provider",
    ),
    (
        "model",
        rules.validate_model,
        obj("m", {"type": "chat", "provider": "openai", "model": {"value": "gpt"}}),
        'spec.type: Unsupported value: "chat": supported values: "completions", "openai", '
        '"azure", "bedrock"',
    ),
    (
        "model",
        rules.validate_model,
        obj("m", {"provider": "gemini", "model": {"value": "g"}}),
        "unsupported provider: gemini",
    ),
    (
        "model",
        rules.validate_model,
        obj("m", {"provider": "bedrock", "model": {"value": "claude"}}),
        "bedrock configuration is required for bedrock model type",
    ),
    (
        "model",
        rules.validate_model,
        obj("m", {"provider": "openai", "model": {"value": "gpt"}, "config": {"openai": {"a": 1}}}),
        "failed to resolve OpenAI BaseURL: value source must have either value or valueFrom "
        "specified",
    ),
    (
        "model",
        rules.validate_model,
        obj(
            "m",
            {
                "provider": "azure",
                "model": {"value": "gpt"},
                "config": {"azure": {"baseUrl": {"value": "https://x.azure.com"}}},
            },
        ),
        "spec.config.azure.apiKey or spec.config.azure.auth is required",
    ),
    # --- Team
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "sequential"}),
        "spec.members: Required value",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "chaos", "members": []}),
        "unsupported strategy 'chaos': must be 'sequential', 'round-robin', or 'selector'",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "sequential", "loops": True, "members": []}),
        "maxTurns is required when loops is enabled",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "sequential", "maxTurns": 3, "members": []}),
        "maxTurns can only be set when loops is enabled",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "selector", "maxTurns": 3, "members": []}),
        "selector strategy requires selector.agent to be specified",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "selector", "selector": {"agent": "boss"}, "members": []}),
        "selector strategy requires maxTurns to prevent infinite execution",
    ),
    (
        "team",
        rules.validate_team,
        obj(
            "t",
            {
                "strategy": "selector",
                "loops": True,
                "maxTurns": 2,
                "selector": {"agent": "b"},
                "members": [],
            },
        ),
        "loops can only be used with the 'sequential' strategy",
    ),
    (
        "team",
        rules.validate_team,
        obj(
            "t",
            {
                "strategy": "selector",
                "maxTurns": 2,
                "selector": {"agent": "boss"},
                "members": [{"type": "agent", "name": "a"}],
                "graph": {"edges": [{"from": "a", "to": "z"}]},
            },
        ),
        "graph edge 0: 'to' member 'z' not found in team members",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "sequential", "members": [{"type": "team", "name": "t"}]}),
        "team member 0: team 't' cannot reference itself",
    ),
    (
        "team",
        rules.validate_team,
        obj("t", {"strategy": "sequential", "members": [{"type": "model", "name": "m"}]}),
        "team member 0 has invalid type 'model': must be 'agent' or 'team'",
    ),
    # --- Tool
    ("tool", rules.validate_tool, obj("t", {"http": {}}), "spec.type: Required value"),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "http", "http": {"url": "https://x.io"}}),
        "spec.inputSchema: Required value: an http tool describes its arguments",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {**HTTP_TOOL, "inputSchema": "not a schema"}),
        "invalid inputSchema: failed to parse inputSchema as JSON: a JSON schema is an object, got "
        '"not a schema"',
    ),
    (
        "tool",
        rules.validate_tool,
        obj(
            "t", {**HTTP_TOOL, "inputSchema": {"type": "object", "properties": {"q": {"type": 1}}}}
        ),
        "invalid inputSchema: invalid property 'q' schema: invalid schema type '1': must be one of "
        "object, array, string, number, integer, boolean, null",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "http", "inputSchema": {}}),
        "http spec is required for http type",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "http", "inputSchema": {}, "http": {"method": "GET"}}),
        "URL is required for http tool",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {**HTTP_TOOL, "http": {"url": "ftp://x"}}),
        'spec.http.url: Invalid value: "ftp://x": spec.http.url in body should match '
        "'^https?://.*'",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {**HTTP_TOOL, "http": {"url": "https://x.io", "method": "FETCH"}}),
        "invalid HTTP method 'FETCH': supported methods are GET, POST, PUT, DELETE, HEAD, OPTIONS, "
        "PATCH",
    ),
    ("tool", rules.validate_tool, obj("t", {"type": "mcp"}), "MCP spec is required for mcp type"),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "mcp", "mcp": {"toolName": "x"}}),
        "MCP server name is required",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "mcp", "mcp": {"mcpServerRef": {"name": "s"}}}),
        "MCP tool name is required",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "agent"}),
        "agent field is required for agent type",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "team", "team": {}}),
        "team field is required for team type",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("shell", {"type": "builtin"}),
        "unsupported builtin tool 'shell': supported builtin tools are: [noop terminate]",
    ),
    (
        "tool",
        rules.validate_tool,
        obj("t", {"type": "grpc"}),
        "unsupported tool type 'grpc': supported types are: http, mcp, agent, team, builtin",
    ),
    # --- servers, engines, evaluators
    (
        "mcpserver",
        rules.validate_mcpserver,
        obj("s", {}),
        "failed to resolve Address: value source must have either value or valueFrom specified",
    ),
    (
        "mcpserver",
        rules.validate_mcpserver,
        obj("s", {"address": {"value": "http://s"}, "headers": [{"name": "A", "value": {}}]}),
        "headers[0]: must specify either value or valueFrom",
    ),
    (
        "mcpserver",
        rules.validate_mcpserver,
        obj(
            "s",
            {
                "address": {"value": "http://s"},
                "headers": [
                    {
                        "name": "A",
                        "value": {
                            "valueFrom": {
                                "secretKeyRef": {"name": "s", "key": "k"},
                                "configMapKeyRef": {"name": "c", "key": "k"},
                            }
                        },
                    }
                ],
            },
        ),
        "headers[0]: valueFrom cannot specify both secretKeyRef and configMapKeyRef",
    ),
    (
        "mcpserver",
        rules.validate_mcpserver,
        obj("s", {"address": {"value": "http://s"}, "pollInterval": "-1m"}),
        "failed to validate pollInterval: pollInterval cannot be negative",
    ),
    (
        "memory",
        rules.validate_memory,
        obj("m", {"address": {"valueFrom": {"serviceRef": {}}}}),
        "failed to resolve Address: service name is required",
    ),
    (
        "executionengine",
        rules.validate_executionengine,
        obj("a2a", {"address": {"value": "http://e"}}),
        "execution engine name 'a2a' is reserved for A2A servers",
    ),
    (
        "executionengine",
        rules.validate_executionengine,
        obj("e", {"protocol": "grpc", "address": {"value": "http://e"}}),
        'unsupported protocol "grpc", only "a2a" is supported',
    ),
    (
        "evaluator",
        rules.validate_evaluator,
        obj("e", {"modelRef": {"name": "m"}}),
        "failed to resolve Address: value source must have either value or valueFrom specified",
    ),
    (
        "a2aserver",
        rules.validate_a2aserver,
        obj("s", {"address": {"value": "http://a", "valueFrom": {}}}),
        "validation failed: [address cannot specify both value and valueFrom]",
    ),
    (
        "a2aserver",
        rules.validate_a2aserver,
        obj(
            "s",
            {
                "address": {"value": "http://a"},
                "headers": [
                    {"name": "X", "value": {"value": "1"}},
                    {"name": "X", "value": {"value": "2"}},
                ],
            },
        ),
        "validation failed: [duplicate header name: X]",
    ),
]


@pytest.mark.parametrize(
    ("validate", "manifest", "message"),
    [case[1:] for case in REFUSALS],
    ids=[f"{case[0]}-{index}" for index, case in enumerate(REFUSALS)],
)
def test_refusals_name_the_field_with_arks_message(
    validate: Any, manifest: dict[str, Any], message: str
) -> None:
    verdict = validate(manifest)
    assert verdict.refusal == message
    assert verdict.references == ()


def test_a_query_lists_what_must_exist_in_its_namespace_in_order() -> None:
    verdict = rules.validate_query(
        obj(
            "q",
            {
                "input": "hi",
                "targets": [AGENT_TARGET, {"type": "team", "name": "crew"}],
                "parameters": [
                    {"name": "a", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}},
                    {"name": "b", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "c"}}},
                ],
                "evaluators": [{"name": "judge", "namespace": "evals"}],
            },
        )
    )
    assert verdict.allowed
    assert [(r.kind, r.namespace, r.name, r.key) for r in verdict.references] == [
        ("Agent", NS, "helper", None),
        ("Team", NS, "crew", None),
        ("Secret", NS, "creds", "k"),
        ("ConfigMap", NS, "cfg", "c"),
        ("Evaluator", "evals", "judge", None),
    ]
    missing = 'agents.ark.mckinsey.com "helper" not found'
    assert verdict.references[0].refusal(missing) == (
        f"target[0] references agent 'helper' does not exist in namespace '{NS}': {missing}"
    )
    assert verdict.references[2].refusal(None) == (
        f"parameter[0] 'a': key 'k' not found in secret 'creds' in namespace '{NS}'"
    )
    assert verdict.references[3].refusal("gone") == (
        f"parameter[1] 'b': configMap 'cfg' does not exist in namespace '{NS}': gone"
    )


def test_team_members_and_the_selector_agent_must_exist() -> None:
    verdict = rules.validate_team(
        obj(
            "t",
            {
                "strategy": "selector",
                "maxTurns": 4,
                "selector": {"agent": "boss"},
                "members": [{"type": "agent", "name": "a"}, {"type": "team", "name": "sub"}],
            },
        )
    )
    assert [r.refusal("nf") for r in verdict.references] == [
        f"selector agent 'boss' not found in namespace {NS}: nf",
        f"team member 0 references agent: agent 'a' does not exist in namespace '{NS}': nf",
        f"team member 1 references team: team 'sub' does not exist in namespace '{NS}': nf",
    ]


def test_older_selector_teams_naming_a_model_are_accepted() -> None:
    team = obj(
        "t",
        {"strategy": "selector", "maxTurns": 2, "selector": {"model": "default"}, "members": []},
    )
    assert rules.validate_team(team).allowed


@pytest.mark.parametrize(
    "spec",
    [
        {"executionEngine": {"name": "langchain"}},
        {"executionEngine": {"name": "a2a"}},
    ],
)
def test_agents_answered_by_an_engine_need_no_prompt(spec: dict[str, Any]) -> None:
    assert rules.validate_agent(obj("a", spec)).allowed


def test_agents_created_by_an_a2a_server_need_no_prompt() -> None:
    agent = obj("a", {}, annotations={rules.A2A_SERVER_ANNOTATION: "srv"})
    assert rules.validate_agent(agent).allowed


def test_an_engine_backed_agent_is_warned_about_tools_it_will_not_get() -> None:
    verdict = rules.validate_agent(
        obj(
            "a",
            {
                "executionEngine": {"name": "langchain"},
                "tools": [{"type": "mcp", "name": "fs"}, {"type": "http", "name": "get"}],
            },
        )
    )
    assert verdict.allowed
    assert verdict.warnings == (
        "agent 'a': execution engine 'langchain' receives only mcp tools; these tools will not "
        "be available to the agent: get (http)",
    )


def test_migration_annotations_become_warnings() -> None:
    model = obj(
        "m",
        {"provider": "openai", "type": "completions", "model": {"value": "g"}, "config": OPENAI},
        annotations={"ark.mckinsey.com/migration-warning-provider": "moved", "other": "x"},
    )
    assert rules.validate_model(model).warnings == ("moved",)


def test_objects_being_deleted_are_never_held_back() -> None:
    query = obj("q", {}, deletionTimestamp="2025-01-01T00:00:00Z")
    assert rules.validate_query(query).allowed


def test_valid_objects_are_allowed() -> None:
    assert rules.validate_tool(obj("t", HTTP_TOOL)).allowed
    assert rules.validate_tool(obj("noop", {"type": "builtin"})).allowed
    assert rules.validate_model(
        obj("m", {"provider": "openai", "model": {"value": "gpt"}, "config": OPENAI})
    ).allowed
    assert rules.validate_query(
        obj("q", {"input": "hi", "selector": {"matchLabels": {"role": "helper"}}})
    ).allowed
    assert rules.validate_a2aserver(obj("s", {"address": {"value": "http://a"}})).allowed


# --- defaults ------------------------------------------------------------------------------


def test_an_agent_without_a_model_uses_default() -> None:
    agent = defaults.default_agent(obj("a", {"prompt": "p"}))
    assert agent["spec"]["modelRef"] == {"name": "default"}
    explicit = defaults.default_agent(obj("a", {"prompt": "p", "modelRef": {"name": "big"}}))
    assert explicit["spec"]["modelRef"] == {"name": "big"}
    engine = defaults.default_agent(obj("a", {"executionEngine": {"name": "langchain"}}))
    assert "modelRef" not in engine["spec"]
    a2a = defaults.default_agent(obj("a", {}, annotations={rules.A2A_SERVER_ANNOTATION: "s"}))
    assert "modelRef" not in a2a["spec"]


def test_custom_tool_type_is_flagged_as_deprecated() -> None:
    agent = defaults.default_agent(
        obj("a", {"prompt": "p", "tools": [{"type": "custom", "name": "x"}]})
    )
    assert agent["metadata"]["annotations"][
        "ark.mckinsey.com/migration-warning-tool-type-custom"
    ] == (
        "agent 'a' tool 'x': type 'custom' is deprecated, use the tool's actual type (mcp, http, "
        "agent, team, builtin) instead"
    )


def test_provider_in_type_moves_to_provider() -> None:
    model = defaults.default_model(obj("m", {"type": "bedrock", "model": {"value": "c"}}))
    assert (model["spec"]["provider"], model["spec"]["type"]) == ("bedrock", "completions")
    assert model["metadata"]["annotations"]["ark.mckinsey.com/migration-warning-provider"] == (
        "spec.type is deprecated for provider values - migrated 'bedrock' to spec.provider"
    )
    current = obj("m", {"provider": "openai", "type": "completions"})
    assert defaults.default_model(current) == current


def test_round_robin_becomes_sequential_with_loops_when_it_had_max_turns() -> None:
    looping = defaults.default_team(obj("t", {"strategy": "round-robin", "maxTurns": 5}))
    assert (looping["spec"]["strategy"], looping["spec"]["loops"]) == ("sequential", True)
    once = defaults.default_team(obj("t", {"strategy": "round-robin"}))
    assert (once["spec"]["strategy"], once["spec"]["loops"]) == ("sequential", False)
    assert "ark.mckinsey.com/migration-warning-round-robin" in once["metadata"]["annotations"]


def test_graph_becomes_sequential_without_edges_or_is_refused_when_malformed() -> None:
    members = [{"type": "agent", "name": "a"}, {"type": "agent", "name": "b"}]
    team = defaults.default_team(
        obj(
            "t",
            {
                "strategy": "graph",
                "maxTurns": 3,
                "members": members,
                "graph": {"edges": [{"from": "a", "to": "b"}]},
            },
        )
    )
    assert team["spec"] == {"strategy": "sequential", "loops": False, "members": members}
    with pytest.raises(rules.RefusedError, match="graph edge 0: 'from' member 'x' not found"):
        defaults.default_team(
            obj(
                "t",
                {
                    "strategy": "graph",
                    "members": members,
                    "graph": {"edges": [{"from": "x", "to": "a"}]},
                },
            )
        )


def test_messages_queries_become_user_queries_with_the_last_user_text() -> None:
    query = defaults.default_query(
        obj(
            "q",
            {
                "type": "messages",
                "input": [
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "last "},
                            {"type": "text", "text": "one"},
                        ],
                    },
                ],
            },
        ),
        "CREATE",
        defaults.QueryDefaults(),
    )
    assert (query["spec"]["type"], query["spec"]["input"]) == ("user", "last one")
    assert "ark.mckinsey.com/migration-warning-input-type" in query["metadata"]["annotations"]


def test_query_ttl_comes_from_ark_config_else_720h_and_never_overrides() -> None:
    plain = obj("q", {"input": "hi"})
    assert (
        defaults.default_query(plain, "CREATE", defaults.QueryDefaults())["spec"]["ttl"]
        == "720h0m0s"
    )
    config = {"spec": {"queryTTL": "2h"}}
    configured = defaults.default_query(plain, "UPDATE", defaults.QueryDefaults(config))
    assert configured["spec"]["ttl"] == "2h0m0s"  # Go's metav1.Duration text, as Ark stores it
    explicit = obj("q", {"input": "hi", "ttl": "10m"})
    assert (
        defaults.default_query(explicit, "CREATE", defaults.QueryDefaults(config))["spec"]["ttl"]
        == "10m"
    )


READY_MEMORY = {
    "metadata": {"name": "shared", "namespace": NS},
    "status": {"lastResolvedAddress": "http://broker"},
}


@pytest.mark.parametrize(
    ("spec", "operation", "memory", "expected"),
    [
        ({"input": "hi"}, "CREATE", READY_MEMORY, {"name": "shared"}),
        ({"input": "hi"}, "UPDATE", READY_MEMORY, None),
        ({"input": "hi"}, "CREATE", {**READY_MEMORY, "status": {}}, None),
        ({"input": "hi"}, "CREATE", None, None),
        ({"input": "hi", "memory": {"name": "own"}}, "CREATE", READY_MEMORY, {"name": "own"}),
        (
            {"input": "hi"},
            "CREATE",
            {**READY_MEMORY, "metadata": {"name": "shared", "namespace": "infra"}},
            {"name": "shared", "namespace": "infra"},
        ),
    ],
    ids=["ready", "no-backfill", "not-ready", "absent", "explicit-kept", "other-namespace"],
)
def test_default_memory_only_when_ready_on_create_and_never_over_an_explicit_one(
    spec: dict[str, Any], operation: str, memory: dict[str, Any] | None, expected: Any
) -> None:
    config = {"spec": {"defaultMemory": {"name": "shared"}}}
    query = defaults.default_query(
        obj("q", spec), operation, defaults.QueryDefaults(config, memory)
    )
    assert query["spec"].get("memory") == expected


def test_default_memory_reference_forms() -> None:
    assert defaults.default_memory_ref(None, NS) == ("", "")
    assert defaults.default_memory_ref({"spec": {"defaultMemory": "m"}}, NS) == (NS, "m")
    assert defaults.default_memory_ref(
        {"spec": {"defaultMemory": {"name": "m", "namespace": "x"}}}, NS
    ) == ("x", "m")


def test_json_patch_turns_the_original_into_the_defaulted_object() -> None:
    original = obj(
        "t",
        {
            "strategy": "graph",
            "members": [{"type": "agent", "name": "a/b~c"}],
            "graph": {"edges": [{"from": "a/b~c", "to": "a/b~c"}]},
        },
        annotations={"keep": "me"},
    )
    changed = defaults.default_team(original)
    patch = json_patch(original, changed)
    assert apply_json_patch(copy.deepcopy(original), patch) == changed
    assert json_patch(changed, changed) == []
