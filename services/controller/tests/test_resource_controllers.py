"""Ark's resource controllers, end to end: the controller against the K8s emulator, the fake model
over HTTP, a real MCP server and a real A2A agent. Status writes are counted at the emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ark_mesh.contracts import (
    A2AServer,
    A2AServerSpec,
    Agent,
    AgentSpec,
    AgentTool,
    Condition,
    ConfigMapKeySelector,
    EngineRef,
    ExecutionEngine,
    ExecutionEngineSpec,
    HTTPToolSpec,
    MCPServer,
    MCPServerSpec,
    Memory,
    MemorySpec,
    Model,
    ModelRef,
    ObjectMeta,
    Resource,
    ServiceRef,
    Team,
    TeamMember,
    TeamSpec,
    Tool,
    ToolSpec,
    ValueFrom,
    ValueSource,
)
from ark_mesh.controller.config import LeaderElectionSettings
from ark_mesh.controller.resource_controllers import Ref
from ark_mesh.kube import EVENTS, ApiResource, NotFoundError
from ark_mesh.testing import ark_objects
from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import Match, Reply, Rule
from ark_mesh.testing.fake_llm.script import ScriptedError
from ark_mesh.testing.k8s.kubectl import Kubectl
from ark_mesh.testing.mcp_server import MCPTestServer

from .conftest import NS, Cluster, ControllerFactory

R = TypeVar("R", bound=Resource)


async def wait_for(
    cluster: Cluster,
    kind: type[R],
    name: str,
    predicate: Callable[[R | None], bool],
    within: float = 30.0,
) -> R | None:
    async with asyncio.timeout(within):
        while True:
            try:
                obj: R | None = await cluster.client.get(kind, NS, name)
            except NotFoundError:
                obj = None
            if predicate(obj):
                return obj
            await asyncio.sleep(0.02)


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


def cond(obj: Resource | None, type_: str) -> Condition | None:
    status = getattr(obj, "status", None)
    return next((c for c in getattr(status, "conditions", None) or () if c.type == type_), None)


def has(type_: str, status: str, reason: str | None = None) -> Callable[[Resource | None], bool]:
    def holds(obj: Resource | None) -> bool:
        found = cond(obj, type_)
        return (
            found is not None
            and found.status == status
            and (reason is None or found.reason == reason)
        )

    return holds


async def condition_of(
    cluster: Cluster, kind: type[R], name: str, type_: str, status: str, reason: str | None = None
) -> Condition:
    obj = await wait_for(cluster, kind, name, has(type_, status, reason))
    found = cond(obj, type_)
    assert found is not None
    return found


async def events_about(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    listed = await cluster.client.list_objects(EVENTS, NS)
    return [e for e in listed.items if (e.get("regarding") or {}).get("name") == name]


def agent_on(name: str, model: str, **spec: Any) -> Agent:
    return Agent(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=AgentSpec(prompt="You help.", model_ref=ModelRef(name=model), **spec),
    )


async def test_probe_makes_model_available_and_its_agent_follows(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await start_controller()
    available = await condition_of(cluster, Model, "default", "ModelAvailable", "True")
    assert (available.reason, available.message) == ("Available", "Model is available")
    model = await cluster.client.get(Model, NS, "default")
    assert model.status is not None
    assert model.status.resolved_address == cluster.fake.base_url
    # The probe is a real, minimal chat completion on the Model's own endpoint and model id.
    probes = [
        r for r in cluster.fake.requests_to("chat") if r.body["messages"][-1]["content"] == "test"
    ]
    assert probes
    assert probes[0].body["model"] == "fake-model"

    agent = await condition_of(cluster, Agent, "assistant", "Available", "True")
    assert (agent.reason, agent.message) == ("Available", "All dependencies are available")


async def test_the_probe_is_a_plain_call_like_arks(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    """A provider that fails streamed calls (Ark's mock-llm answers a streamed tool call with a
    500) is still available: the probe, like Ark's, does not stream."""
    cluster.fake.add_rule(
        Rule(
            match=Match(model="plain-only", stream=True),
            reply=Reply(error=ScriptedError(status=500, message="cannot stream")),
        )
    )
    await cluster.client.create(
        ark_objects.model("plain", NS, cluster.fake.base_url, model_id="plain-only")
    )
    await start_controller()
    await condition_of(cluster, Model, "plain", "ModelAvailable", "True")
    [probe, *_] = [r for r in cluster.fake.requests_to("chat") if r.body["model"] == "plain-only"]
    assert not probe.body.get("stream")


async def test_a_provider_refusal_shows_its_message(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    cluster.fake.add_rule(
        Rule(
            match=Match(model="locked-model"),
            reply=Reply(error=ScriptedError(status=401, message="Incorrect API key provided")),
        )
    )
    await cluster.client.create(
        ark_objects.model("locked", NS, cluster.fake.base_url, model_id="locked-model")
    )
    await cluster.client.create(agent_on("locked-out", "locked"))
    await start_controller()

    refused = await condition_of(cluster, Model, "locked", "ModelAvailable", "False")
    assert refused.reason == "ModelProbeFailed"
    assert refused.message == "Incorrect API key provided (401)"
    agent = await condition_of(cluster, Agent, "locked-out", "Available", "False", "ModelNotFound")
    assert agent.message == "Model 'locked' is not available"

    async def unavailable_event() -> bool:
        return any(e["reason"] == "ModelUnavailable" for e in await events_about(cluster, "locked"))

    await until(unavailable_event)
    (event,) = [
        e for e in await events_about(cluster, "locked") if e["reason"] == "ModelUnavailable"
    ]
    assert (event["type"], event["note"]) == ("Warning", "Incorrect API key provided (401)")


async def test_an_agent_turns_available_when_its_model_appears(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await cluster.client.create(agent_on("late", "late-model"))
    await start_controller()
    missing = await condition_of(cluster, Agent, "late", "Available", "False", "ModelNotFound")
    assert missing.message == "Model 'late-model' not found in namespace 'default'"

    # A poll interval of an hour: only the dependency index can wake the Agent in time.
    model = ark_objects.model("late-model", NS, cluster.fake.base_url)
    model.spec.poll_interval = "1h"
    await cluster.client.create(model)
    await condition_of(cluster, Agent, "late", "Available", "True", "Available")


async def test_an_agent_names_its_first_missing_dependency(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await cluster.client.create(
        Agent(
            metadata=ObjectMeta(name="no-model-ref", namespace=NS),
            spec=AgentSpec(prompt="You help."),
        )
    )
    await cluster.client.create(
        agent_on("tooled", "default", tools=[AgentTool(type="http", name="weather")])
    )
    await cluster.client.create(
        Tool(
            metadata=ObjectMeta(name="mistyped", namespace=NS),
            spec=ToolSpec(type="http", http=HTTPToolSpec(url="http://example.invalid")),
        )
    )
    await cluster.client.create(
        agent_on("mismatch", "default", tools=[AgentTool(type="mcp", name="mistyped")])
    )
    await cluster.client.create(
        Agent(
            metadata=ObjectMeta(name="engined", namespace=NS),
            spec=AgentSpec(prompt="You help.", execution_engine=EngineRef(name="langgraph")),
        )
    )
    await start_controller()
    # Without modelRef an Agent uses the Model named "default" (which is available here).
    await condition_of(cluster, Agent, "no-model-ref", "Available", "True")
    tooled = await condition_of(cluster, Agent, "tooled", "Available", "False", "ToolNotFound")
    assert tooled.message == "Tool 'weather' not found in namespace 'default'"
    mismatch = await condition_of(cluster, Agent, "mismatch", "Available", "False", "ToolNotFound")
    assert mismatch.message == "Tool 'mistyped' has type 'http', but agent declares it as 'mcp'"
    # An execution engine that is not there (no model is needed for an engine-backed agent).
    await condition_of(cluster, Agent, "engined", "Available", "False", "ExecutionEngineNotFound")

    await cluster.client.create(
        Tool(
            metadata=ObjectMeta(name="weather", namespace=NS),
            spec=ToolSpec(type="http", http=HTTPToolSpec(url="http://example.invalid")),
        )
    )
    await condition_of(cluster, Agent, "tooled", "Available", "True")

    # The engine appears: its address resolves (phase ready) and its Agent follows.
    await cluster.client.create(
        ExecutionEngine(
            metadata=ObjectMeta(name="langgraph", namespace=NS),
            spec=ExecutionEngineSpec(
                type="langgraph", address=ValueSource(value="http://langgraph.invalid:8000")
            ),
        )
    )
    engine = await wait_for(
        cluster, ExecutionEngine, "langgraph", lambda e: bool(e and e.status and e.status.phase)
    )
    assert engine is not None
    assert engine.status is not None
    assert (engine.status.phase, engine.status.last_resolved_address) == (
        "ready",
        "http://langgraph.invalid:8000",
    )
    await condition_of(cluster, Agent, "engined", "Available", "True")


async def test_status_is_written_only_when_it_changes(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    model = ark_objects.model("steady", NS, cluster.fake.base_url, model_id="steady-model")
    model.spec.poll_interval = "0.2s"
    await cluster.client.create(model)
    await cluster.client.create(agent_on("steady-agent", "steady"))
    controller = await start_controller()
    first = await condition_of(cluster, Model, "steady", "ModelAvailable", "True")
    await condition_of(cluster, Agent, "steady-agent", "Available", "True")

    # Four more probes: when the fake sees probe N+1, the result of probe N has been recorded.
    seen = len(cluster.fake.requests_to("chat"))
    await cluster.fake.wait_until(
        lambda requests: (
            len([r for r in requests if r.body.get("model") == "steady-model"]) >= seen + 4
        )
    )
    model_writes = cluster.kube.activity("models", NS, "steady").status_writes
    assert model_writes == 2  # Unknown while the first probe ran, then True; never again
    again = await condition_of(cluster, Model, "steady", "ModelAvailable", "True")
    assert again.last_transition_time == first.last_transition_time

    # A change that does not change the verdict (a label) reconciles the Agent, writes nothing.
    resources = controller.resources
    assert resources is not None
    ref = Ref("Agent", NS, "steady-agent")
    agent_writes = cluster.kube.activity("agents", NS, "steady-agent").status_writes
    before = resources.reconciled[ref]
    await cluster.client.patch(Agent, NS, "steady-agent", {"metadata": {"labels": {"x": "y"}}})

    async def reconciled_again() -> bool:
        return resources.reconciled[ref] > before

    await until(reconciled_again)
    assert cluster.kube.activity("agents", NS, "steady-agent").status_writes == agent_writes


async def test_team_availability_follows_its_members(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await cluster.client.create(
        Team(
            metadata=ObjectMeta(name="crew", namespace=NS),
            spec=TeamSpec(
                members=[
                    TeamMember(name="assistant", type="agent"),
                    TeamMember(name="ghost", type="agent"),
                ],
                strategy="sequential",
            ),
        )
    )
    await start_controller()
    missing = await condition_of(cluster, Team, "crew", "Available", "False", "MemberNotFound")
    assert missing.message == "Agent member ghost not found"
    reasons = [e["reason"] for e in await events_about(cluster, "crew")]
    assert "TeamCreated" in reasons

    await cluster.client.create(agent_on("ghost", "default"))
    ready = await condition_of(cluster, Team, "crew", "Available", "True")
    assert (ready.reason, ready.message) == ("Available", "All team members are available")
    created = [e for e in await events_about(cluster, "crew") if e["reason"] == "TeamCreated"]
    assert [e["note"] for e in created] == ["Initialized team conditions"]


async def test_tools_are_ready_and_memories_resolve_their_address(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await cluster.client.create(
        Tool(
            metadata=ObjectMeta(name="lookup", namespace=NS),
            spec=ToolSpec(type="http", http=HTTPToolSpec(url="http://example.invalid")),
        )
    )
    broker = ServiceRef(name="ark-broker", port="80", path="/memory")
    await cluster.client.create(
        Memory(
            metadata=ObjectMeta(name="broker", namespace=NS),
            spec=MemorySpec(address=ValueSource(value_from=ValueFrom(service_ref=broker))),
        )
    )
    missing = ConfigMapKeySelector(name="nowhere", key="url")
    await cluster.client.create(
        Memory(
            metadata=ObjectMeta(name="lost", namespace=NS),
            spec=MemorySpec(address=ValueSource(value_from=ValueFrom(config_map_key_ref=missing))),
        )
    )
    await start_controller()
    tool = await wait_for(cluster, Tool, "lookup", lambda t: bool(t and t.status))
    assert tool is not None
    assert tool.status is not None
    assert (tool.status.state, tool.status.message) == ("Ready", "Tool configuration is valid")

    memory = await wait_for(cluster, Memory, "broker", lambda m: bool(m and m.status))
    assert memory is not None
    assert memory.status is not None
    assert memory.status.phase == "ready"
    assert memory.status.last_resolved_address == (
        "http://ark-broker.default.svc.cluster.local:80/memory"
    )
    lost = await wait_for(cluster, Memory, "lost", lambda m: bool(m and m.status))
    assert lost is not None
    assert lost.status is not None
    assert lost.status.phase == "error"
    assert lost.status.message is not None
    assert lost.status.message.startswith("Failed to resolve address: ")
    assert "ConfigMap 'nowhere' not found" in lost.status.message


async def test_mcp_discovery_creates_updates_and_deletes_tools(
    cluster: Cluster, start_controller: ControllerFactory, mcp_server: MCPTestServer
) -> None:
    # A Tool the server no longer lists (left from an earlier discovery) must go.
    await cluster.client.create_object(
        ApiResource.of(Tool),
        NS,
        {
            "apiVersion": "ark.mckinsey.com/v1alpha1",
            "kind": "Tool",
            "metadata": {"name": "tools-retired", "labels": {"mcp/server": "tools"}},
            "spec": {
                "type": "mcp",
                "mcp": {"mcpServerRef": {"name": "tools"}, "toolName": "retired"},
            },
        },
    )
    await cluster.client.create(
        MCPServer(
            metadata=ObjectMeta(name="tools", namespace=NS),
            spec=MCPServerSpec(address=ValueSource(value=mcp_server.url)),
        )
    )
    await start_controller()
    ready = await condition_of(cluster, MCPServer, "tools", "Available", "True", "ToolsDiscovered")
    assert ready.message == "Successfully discovered 4 tools"
    server = await cluster.client.get(MCPServer, NS, "tools")
    assert server.status is not None
    assert (server.status.tool_count, server.status.resolved_address) == (4, mcp_server.url)
    discovering = cond(server, "Discovering")
    assert discovering is not None
    assert (discovering.status, discovering.reason) == ("False", "DiscoveryComplete")

    tools = await cluster.client.list(
        Tool, NS, label_selector={"matchLabels": {"mcp/server": "tools"}}
    )
    assert sorted(t.metadata.name for t in tools) == [
        "tools-add",
        "tools-echo",
        "tools-fail",
        "tools-slow",
    ]
    add = next(t for t in tools if t.metadata.name == "tools-add")
    assert add.spec.type == "mcp"
    assert add.spec.mcp is not None
    assert (add.spec.mcp.tool_name, add.spec.mcp.mcp_server_ref.name) == ("add", "tools")
    assert add.spec.description == "Add two integers."
    assert add.spec.input_schema is not None
    assert "a" in add.spec.input_schema["properties"]
    (owner,) = add.metadata.owner_references or []
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "MCPServer",
        "tools",
        server.metadata.uid,
        True,
    )
    await wait_for(cluster, Tool, "tools-add", lambda t: bool(t and t.status and t.status.state))
    # Rediscovery (each status write of the server comes back as an event) rewrites nothing.
    assert cluster.kube.activity("tools", NS, "tools-add").updates == 0

    # The server goes away (address changed to a closed port): its tools go with it.
    await cluster.client.patch(
        MCPServer, NS, "tools", {"spec": {"address": {"value": "http://127.0.0.1:9/mcp"}}}
    )
    failed = await condition_of(
        cluster, MCPServer, "tools", "Available", "False", "ClientCreationFailed"
    )
    assert failed.message == "Server not ready due to client creation failure"
    server = await cluster.client.get(MCPServer, NS, "tools")
    assert server.status is not None
    assert server.status.tool_count == 0
    assert (
        await cluster.client.list(Tool, NS, label_selector={"matchLabels": {"mcp/server": "tools"}})
        == []
    )
    reasons = {e["reason"] for e in await events_about(cluster, "tools")}
    assert "ClientCreationFailed" in reasons


async def test_a2a_discovery_creates_a_queryable_agent(
    cluster: Cluster, start_controller: ControllerFactory, a2a_server: A2ATestServer
) -> None:
    await cluster.client.create(
        A2AServer(
            metadata=ObjectMeta(name="counter", namespace=NS),
            spec=A2AServerSpec(address=ValueSource(value=a2a_server.url)),
        )
    )
    await start_controller()
    ready = await condition_of(cluster, A2AServer, "counter", "Ready", "True", "AgentDiscovered")
    assert ready.message == "Successfully discovered agent"
    server = await cluster.client.get(A2AServer, NS, "counter")
    assert server.status is not None
    assert server.status.last_resolved_address == a2a_server.url

    agent = await condition_of(cluster, Agent, "counter-agent", "Available", "True")
    assert agent.reason == "Available"
    created = await cluster.client.get(Agent, NS, "counter-agent")
    assert created.spec.execution_engine is not None
    assert created.spec.execution_engine.name == "a2a"
    assert created.spec.prompt == f"You are counter-agent. {a2a_server.description}"
    annotations = created.metadata.annotations or {}
    assert annotations["ark.mckinsey.com/a2a-server-name"] == "counter"
    assert annotations["ark.mckinsey.com/a2a-server-address"] == a2a_server.url
    skills = json.loads(annotations["ark.mckinsey.com/a2a-server-skills"])
    assert [s["id"] for s in skills] == ["count"]
    assert (created.metadata.labels or {}) == {"a2a/server": "counter"}
    (owner,) = created.metadata.owner_references or []
    assert (owner["kind"], owner["name"]) == ("A2AServer", "counter")

    # The discovered Agent is usable as it is: the query goes to the A2A server.
    await cluster.client.create(
        ark_objects.query("ask-counter", NS, "hello", target=("agent", "counter-agent"))
    )
    query = await cluster.wait_phase("ask-counter", "done", "error")
    assert query.status is not None
    assert query.status.response is not None
    assert query.status.response.content == "Message 1 in this conversation. You said: hello"


async def test_kubectl_shows_the_availability_columns(
    cluster: Cluster, start_controller: ControllerFactory, tmp_path: Path
) -> None:
    await cluster.client.create(
        Team(
            metadata=ObjectMeta(name="duo", namespace=NS),
            spec=TeamSpec(members=[TeamMember(name="assistant", type="agent")]),
        )
    )
    await cluster.client.create(
        Tool(
            metadata=ObjectMeta(name="lookup", namespace=NS),
            spec=ToolSpec(type="http", http=HTTPToolSpec(url="http://example.invalid")),
        )
    )
    await start_controller()
    await condition_of(cluster, Team, "duo", "Available", "True")
    await wait_for(cluster, Tool, "lookup", lambda t: bool(t and t.status))

    kubectl = Kubectl(cluster.kube.kubeconfig_path, cache_dir=tmp_path / "kubectl-cache")
    out = (await kubectl.run("get", "models,agents,teams,tools", "-n", NS)).stdout
    # One table per kind, each with its own header: read every row by its column's name.
    cells: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in out.splitlines():
        if line.startswith("NAME "):
            header = line.split()
        elif line.strip():
            row = dict(zip(header, line.split(), strict=True))
            cells[row["NAME"]] = row
    assert cells["model.ark.mckinsey.com/default"]["AVAILABLE"] == "True", out
    assert cells["agent.ark.mckinsey.com/assistant"]["AVAILABLE"] == "True", out
    assert cells["team.ark.mckinsey.com/duo"]["AVAILABLE"] == "True", out
    # Ark's Tool CRD declares no printer columns: its readiness is read from status.
    state = await kubectl.run("get", "tool", "lookup", "-n", NS, "-o", "jsonpath={.status.state}")
    assert state.stdout == "Ready", out


async def test_the_resolver_and_the_controllers_share_one_watch_per_kind(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    await start_controller()
    await condition_of(cluster, Agent, "assistant", "Available", "True")
    await cluster.client.create(ark_objects.query("hi", NS, "hello"))
    await cluster.wait_phase("hi", "done")
    # Each kind is listed once (then watched): by the cache both the resolver and the
    # resource controllers read, not once per consumer.
    lists = [
        r.resource
        for r in cluster.kube.log
        if r.verb == "list" and r.resource in ("agents", "models") and r.namespace == ""
    ]
    assert sorted(lists) == ["agents", "models"]


async def test_only_the_leader_runs_the_resource_controllers(
    cluster: Cluster, start_controller: ControllerFactory
) -> None:
    elected = LeaderElectionSettings(
        enabled=True, lease_duration=30, renew_deadline=20, retry_period=0.1
    )

    leader = await start_controller(leader_election=elected, instance="first")
    await condition_of(cluster, Agent, "assistant", "Available", "True")
    follower = await start_controller(leader_election=elected, instance="second")
    await cluster.client.create(agent_on("newcomer", "default"))
    await condition_of(cluster, Agent, "newcomer", "Available", "True")
    assert leader.resources is not None
    assert follower.resources is not None
    assert leader.resources.reconciled[Ref("Agent", NS, "newcomer")] >= 1
    assert sum(follower.resources.reconciled.values()) == 0
