"""Human approval of tool calls, the Kubernetes side: the A2ATask controller's rules and the
Query controller's ``input-required`` rules (reference §3.8), against the K8s emulator, with
decisions written through the real ``kubectl`` and a real nats-server behind the standalone
dispatcher (what the controller asked it to dispatch is recorded at the dispatcher)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from ark_mesh.bus import BusConfig, ConnectionSettings
from ark_mesh.contracts import (
    A2AMetadata,
    A2ATask,
    AgentTool,
    Condition,
    HTTPToolSpec,
    ObjectMeta,
    Query,
    QueryRequest,
    QueryResponse,
    QueryStatus,
    QueryTarget,
    Tool,
    ToolApproval,
    ToolSpec,
)
from ark_mesh.contracts.approvals import (
    APPROVAL_CASCADE_ANNOTATION,
    ApprovalRequest,
    approval_task_name,
    cascade_limit_message,
)
from ark_mesh.controller import dispatch
from ark_mesh.controller.config import ReconciliationConfig, SchedulerConfig
from ark_mesh.kube import QUERY_LABEL, NotFoundError, StatusWriter, open_approval_task
from ark_mesh.resolver import running_status
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import Match, Reply, Rule, ScriptedToolCall
from ark_mesh.testing.k8s.kubectl import Kubectl
from ark_mesh.testing.nats_server import NatsServer

from .conftest import NS, Cluster, ControllerFactory

TOOL_CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "delete-records", "arguments": '{"table": "users"}'},
    }
]


def completed_condition(task: A2ATask) -> Condition:
    assert task.status is not None
    found = [c for c in task.status.conditions or [] if c.type == "Completed"]
    assert len(found) == 1, task.status
    return found[0]


def approval(
    task_id: str, *, timeout: str = "5m", on_timeout: str = "reject", age: timedelta | None = None
) -> ApprovalRequest:
    requested = datetime.now(UTC) - (age or timedelta())
    return ApprovalRequest(
        task_id=task_id,
        agent="assistant",
        agent_namespace=NS,
        tool_calls=TOOL_CALLS,
        timeout=timeout,
        on_timeout=on_timeout,  # type: ignore[arg-type]
        context_id="ctx-1",
        requested_at=requested.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


class World:
    def __init__(self, cluster: Cluster, kubectl: Kubectl) -> None:
        self.cluster = cluster
        self.kubectl = kubectl

    async def task(self, name: str) -> A2ATask | None:
        try:
            return await self.cluster.client.get(A2ATask, NS, name)
        except NotFoundError:
            return None

    async def wait_task(
        self, name: str, predicate: Callable[[A2ATask | None], bool], within: float = 30.0
    ) -> A2ATask | None:
        async with asyncio.timeout(within):
            while True:
                task = await self.task(name)
                if predicate(task):
                    return task
                await asyncio.sleep(0.02)

    async def wait_query(
        self, name: str, predicate: Callable[[Query], bool], within: float = 30.0
    ) -> Query:
        async with asyncio.timeout(within):
            while True:
                query = await self.cluster.client.get(Query, NS, name)
                if predicate(query):
                    return query
                await asyncio.sleep(0.02)

    async def open_task(self, request: ApprovalRequest, query: str = "q", uid: str = "u") -> bool:
        return await open_approval_task(
            self.cluster.client, namespace=NS, query_name=query, query_uid=uid, approval=request
        )

    async def decide(self, task_id: str, text: str) -> None:
        """What a human does (Ark's documented command)."""
        patch = json.dumps({"spec": {"input": text}})
        await self.kubectl.run(
            "patch",
            "a2atask",
            approval_task_name(task_id),
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            patch,
        )

    async def pause(self, query: Query, request: ApprovalRequest) -> None:
        """What a paused run's status writer does: open the task, then ``input-required``."""
        meta = query.metadata
        await open_approval_task(
            self.cluster.client,
            namespace=NS,
            query_name=meta.name,
            query_uid=meta.uid or "",
            approval=request,
        )
        status = QueryStatus(
            phase="input-required",
            response=QueryResponse(
                target=QueryTarget(type="agent", name="assistant"),
                content="",
                raw="{}",
                phase="input-required",
                a2a=A2AMetadata(context_id="ctx-1", task_id=request.task_id),
            ),
        )
        await StatusWriter(self.cluster.client).write(Query, NS, meta.name, status)


@pytest.fixture
def world(cluster: Cluster, tmp_path: Path) -> World:
    return World(cluster, Kubectl(cluster.kube.kubeconfig_path, cache_dir=tmp_path / "kubectl"))


def settled(task: A2ATask | None) -> bool:
    return task is not None and task.status is not None and task.status.phase != "input-required"


# --- the A2ATask controller ------------------------------------------------------------------


async def test_an_opened_task_is_ark_shaped_and_waits_for_a_decision(
    world: World, start_controller: ControllerFactory
) -> None:
    await start_controller()
    await world.open_task(approval("t-open"))
    task = await world.wait_task(
        "a2a-task-t-open", lambda t: bool(t and t.status and t.status.conditions)
    )
    assert task is not None
    assert task.status is not None
    assert task.spec.a2a_server_ref is None
    assert task.spec.query_ref.name == "q"
    assert task.spec.agent_ref.name == "assistant"
    assert (task.spec.task_id, task.spec.context_id) == ("t-open", "ctx-1")
    assert (task.metadata.labels or {})[QUERY_LABEL] == "q"
    owner = (task.metadata.owner_references or [])[0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Query", "q", "u")
    assert (task.status.phase, task.status.protocol_state) == ("input-required", "input-required")
    metadata = task.status.protocol_metadata or {}
    assert json.loads(metadata["toolCalls"]) == TOOL_CALLS
    assert (metadata["timeout"], metadata["onTimeout"]) == ("5m0s", "reject")
    context = json.loads(metadata["context"])
    assert (context["agentName"], context["agentNamespace"]) == ("assistant", NS)
    condition = completed_condition(task)
    assert (condition.status, condition.reason, condition.message) == (
        "False",
        "TaskNotStarted",
        "Task has not been started yet",
    )
    # Opening it again (a redelivered pause) writes nothing.
    assert not await world.open_task(approval("t-open"))
    again = await world.task("a2a-task-t-open")
    assert again is not None
    assert again.status is not None
    assert again.status.phase == "input-required"


@pytest.mark.parametrize(
    ("text", "phase", "status", "reason", "error"),
    [
        ('{"decision":"approved"}', "completed", "True", "ApprovalGranted", None),
        (
            '{"decision":"rejected"}',
            "failed",
            "True",
            "ApprovalRejected",
            "Tool execution rejected by user",
        ),
        (
            '{"decision":"maybe"}',
            "failed",
            "False",
            "InvalidApprovalDecision",
            "Invalid decision value: maybe",
        ),
        ("not json", "failed", "False", "InvalidApprovalDecision", "Invalid approval decision"),
    ],
)
async def test_a_decision_in_spec_input_ends_the_task(
    world: World,
    start_controller: ControllerFactory,
    text: str,
    phase: str,
    status: str,
    reason: str,
    error: str | None,
) -> None:
    await start_controller()
    await world.open_task(approval("t-1"))
    await world.wait_task("a2a-task-t-1", lambda t: bool(t and t.status and t.status.conditions))
    await world.decide("t-1", text)
    task = await world.wait_task("a2a-task-t-1", settled)
    assert task is not None
    assert task.status is not None
    assert task.status.phase == phase
    assert task.status.completion_time
    condition = completed_condition(task)
    assert (condition.status, condition.reason) == (status, reason)
    if error is None:
        assert task.status.error is None
        assert condition.message == "User approved the tool calls"
    else:
        assert (task.status.error or "").startswith(error)


async def test_an_empty_decision_keeps_the_task_waiting(
    world: World, start_controller: ControllerFactory
) -> None:
    controller = await start_controller()
    await world.open_task(approval("t-empty"))
    await world.wait_task(
        "a2a-task-t-empty", lambda t: bool(t and t.status and t.status.conditions)
    )
    assert controller.resources is not None
    ref = next(r for r in controller.resources.reconciled if r.name == "a2a-task-t-empty")
    seen = controller.resources.reconciled[ref]
    await world.decide("t-empty", "{}")
    async with asyncio.timeout(30):  # the spec change was looked at …
        while True:
            if controller.resources.reconciled[ref] != seen:
                break
            await asyncio.sleep(0.02)
    task = await world.task("a2a-task-t-empty")
    assert task is not None
    assert task.status is not None
    assert task.status.phase == "input-required"  # … and left waiting for a real decision
    await world.decide("t-empty", '{"decision":"approved"}')
    task = await world.wait_task("a2a-task-t-empty", settled)
    assert task is not None
    assert task.status is not None
    assert task.status.phase == "completed"


@pytest.mark.parametrize(
    ("policy", "phase", "reason", "error"),
    [
        ("proceed", "completed", "ApprovalTimeoutProceeded", None),
        ("reject", "failed", "ApprovalTimeoutRejected", "Approval timeout exceeded after 1m0s"),
    ],
)
async def test_the_approval_timeout_applies_on_timeout(
    world: World,
    start_controller: ControllerFactory,
    policy: str,
    phase: str,
    reason: str,
    error: str | None,
) -> None:
    await start_controller()
    # Asked an hour ago with a one-minute timeout: expired when the controller first sees it.
    await world.open_task(
        approval("t-late", timeout="1m", on_timeout=policy, age=timedelta(hours=1))
    )
    task = await world.wait_task("a2a-task-t-late", settled)
    assert task is not None
    assert task.status is not None
    assert task.status.phase == phase
    assert task.status.error == error
    condition = completed_condition(task)
    assert (condition.status, condition.reason) == ("True", reason)


async def test_a_task_is_deleted_after_its_ttl(
    world: World, start_controller: ControllerFactory
) -> None:
    await start_controller()
    manifest = {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "A2ATask",
        "metadata": {"name": "a2a-task-short", "namespace": NS},
        "spec": {
            "queryRef": {"name": "q"},
            "agentRef": {"name": "assistant"},
            "taskId": "short",
            "ttl": "1s",
        },
    }
    await world.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
    assert await world.task("a2a-task-short") is not None
    await world.wait_task("a2a-task-short", lambda t: t is None)


# --- the Query controller, standalone: what it dispatches -------------------------------------


@pytest.fixture
async def recorded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[QueryRequest]]:
    """Every request the standalone dispatcher publishes (to the real nats-server)."""
    requests: list[QueryRequest] = []
    publish = dispatch.StandaloneDispatcher.dispatch

    async def recording(self: dispatch.StandaloneDispatcher, request: QueryRequest) -> None:
        await publish(self, request)
        requests.append(request)

    monkeypatch.setattr(dispatch.StandaloneDispatcher, "dispatch", recording)
    return requests


@pytest.fixture
async def standalone(
    start_controller: ControllerFactory, nats_server: NatsServer, recorded: list[QueryRequest]
) -> list[QueryRequest]:
    await start_controller(
        bus=BusConfig(connection=ConnectionSettings(servers=(nats_server.url,))),
        reconciliation=ReconciliationConfig(
            default_reconciliation="standalone", allowed_modes=("inController", "standalone")
        ),
    )
    return recorded


async def dispatched(requests: list[QueryRequest], count: int) -> list[QueryRequest]:
    async with asyncio.timeout(30):
        while True:
            if len(requests) >= count:
                return requests
            await asyncio.sleep(0.02)


async def submitted(world: World, requests: list[QueryRequest], name: str, **spec: str) -> Query:
    """A Query the controller has dispatched once (its run is simulated by the test)."""
    await world.cluster.client.create(ark_objects.query(name, NS, "clean up", **spec))  # type: ignore[arg-type]
    await dispatched(requests, 1)
    return await world.wait_query(name, lambda q: bool(q.status and q.status.conditions))


def cascades(query: Query) -> str | None:
    return (query.metadata.annotations or {}).get(APPROVAL_CASCADE_ANNOTATION)


async def test_approved_resumes_the_query_with_the_decision(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "approve-me")
    await world.pause(query, approval("t-ok"))
    await world.wait_query(
        "approve-me", lambda q: q.status is not None and q.status.phase == "input-required"
    )
    assert len(standalone) == 1  # waiting: nothing more dispatched

    await world.decide("t-ok", '{"decision":"approved"}')
    resumed = (await dispatched(standalone, 2))[1]
    stored = await world.wait_query(
        "approve-me", lambda q: q.status is not None and q.status.phase == "running"
    )
    assert resumed.resume is not None
    assert (resumed.resume.task_id, resumed.resume.decision) == ("t-ok", "approved")
    assert resumed.deadline is None  # a fresh spec.timeout budget for the round
    assert resumed.msg_id == f"{query.metadata.uid}:1:t-ok"
    assert resumed.spec == query.spec
    assert cascades(stored) is None
    assert stored.status is not None
    assert stored.status.conditions
    assert stored.status.conditions[0].reason == "QueryRunning"


async def test_denials_cascade_until_the_limit_then_the_query_errors(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "stubborn")
    for round_, (task_id, how) in enumerate(
        [("t-1", "rejected"), ("t-2", "rejected"), ("t-3", "rejected")], start=1
    ):
        query = await world.cluster.client.get(Query, NS, "stubborn")
        await world.pause(query, approval(task_id))
        await world.decide(task_id, json.dumps({"decision": how}))
        resumed = (await dispatched(standalone, 1 + round_))[round_]
        assert resumed.resume is not None
        assert (resumed.resume.task_id, resumed.resume.decision) == (task_id, "rejected")
        assert resumed.resume.message == "Tool execution rejected by user"
        stored = await world.wait_query(
            "stubborn", lambda q: q.status is not None and q.status.phase == "running"
        )
        assert cascades(stored) == str(round_)

    query = await world.cluster.client.get(Query, NS, "stubborn")
    await world.pause(query, approval("t-4"))
    await world.decide("t-4", '{"decision":"rejected"}')
    ended = await world.wait_query(
        "stubborn", lambda q: q.status is not None and q.status.phase == "error"
    )
    assert ended.status is not None
    assert ended.status.response is not None
    assert ended.status.response.content == cascade_limit_message()
    assert len(standalone) == 4  # the fourth denial was not resumed


async def test_an_approval_resets_the_cascade_count(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "changed-mind")
    await world.pause(query, approval("t-no"))
    await world.decide("t-no", '{"decision":"rejected"}')
    await world.wait_query("changed-mind", lambda q: cascades(q) == "1")
    await world.wait_query(
        "changed-mind", lambda q: q.status is not None and q.status.phase == "running"
    )
    query = await world.cluster.client.get(Query, NS, "changed-mind")
    await world.pause(query, approval("t-yes"))
    await world.decide("t-yes", '{"decision":"approved"}')
    await dispatched(standalone, 3)
    stored = await world.wait_query("changed-mind", lambda q: cascades(q) is None)
    assert standalone[2].resume is not None
    assert standalone[2].resume.decision == "approved"
    assert stored.status is not None
    assert stored.status.phase == "running"


async def test_a_timed_out_reject_resumes_as_a_denial(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "slow-human")
    await world.pause(query, approval("t-late", timeout="1m", age=timedelta(hours=1)))
    resumed = (await dispatched(standalone, 2))[1]
    assert resumed.resume is not None
    assert resumed.resume.decision == "timeout-rejected"
    await world.wait_query("slow-human", lambda q: cascades(q) == "1")


async def test_an_invalid_decision_ends_the_query_with_the_tasks_error(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "garbled")
    await world.pause(query, approval("t-bad"))
    await world.decide("t-bad", '{"decision":"sure"}')
    ended = await world.wait_query(
        "garbled", lambda q: q.status is not None and q.status.phase == "error"
    )
    assert ended.status is not None
    assert ended.status.response is not None
    assert ended.status.response.content == "Invalid decision value: sure"
    assert len(standalone) == 1


async def test_cancel_while_waiting_cancels_then_the_ttl_deletes_it(
    world: World, standalone: list[QueryRequest]
) -> None:
    query = await submitted(world, standalone, "never-mind", ttl="2s")
    await world.pause(query, approval("t-cancel"))
    await world.wait_query(
        "never-mind", lambda q: q.status is not None and q.status.phase == "input-required"
    )
    await world.kubectl.run(
        "patch",
        "query",
        "never-mind",
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        '{"spec":{"cancel":true}}',
    )
    canceled = await world.wait_query(
        "never-mind", lambda q: q.status is not None and q.status.phase == "canceled"
    )
    assert canceled.status is not None
    condition = next(c for c in canceled.status.conditions or [] if c.type == "Completed")
    assert (condition.status, condition.reason) == ("True", "QueryCanceled")
    await world.cluster.wait_gone("never-mind")
    assert len(standalone) == 1  # nothing was resumed


# --- in-controller, end to end: a gated HTTP tool, the fake model, approval by kubectl --------


class Counter:
    """A real HTTP service with a side effect: it counts the submissions it stored."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.bodies.append(body)
        return web.Response(text=f"stored {body}")


@pytest.fixture
async def counter() -> AsyncIterator[tuple[Counter, str]]:
    service = Counter()
    app = web.Application()
    app.add_routes([web.post("/submit", service.submit)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def gated_clerk(cluster: Cluster, url: str) -> None:
    await cluster.client.create(
        Tool(
            metadata=ObjectMeta(name="submit", namespace=NS),
            spec=ToolSpec(
                type="http",
                description="file a ticket",
                input_schema={
                    "type": "object",
                    "properties": {"ticket": {"type": "string"}},
                    "required": ["ticket"],
                },
                http=HTTPToolSpec(
                    url=f"{url}/submit", method="POST", body='{"ticket": "{{.input.ticket}}"}'
                ),
            ),
        )
    )
    gate = ToolApproval(required=True, timeout="5m", on_timeout="reject")
    await cluster.client.create(
        ark_objects.agent("clerk", NS, tools=[AgentTool(type="http", name="submit", approval=gate)])
    )
    call = ScriptedToolCall(name="submit", arguments={"ticket": "T-1"}, id="call_1")
    cluster.fake.add_rule(
        Rule(
            match=Match(user="file"),
            replies=[Reply(tool_calls=[call]), Reply(content="Filed: {{tool}}")],
        )
    )


def clerk_calls(cluster: Cluster) -> int:
    """Model calls of the clerk's conversation (model probes of the resource controllers aside)."""
    return sum("please file it" in json.dumps(r.body) for r in cluster.fake.requests)


def paused_on(query: Query) -> str:
    assert query.status is not None
    assert query.status.response is not None
    assert query.status.response.a2a is not None
    assert query.status.response.a2a.task_id
    return query.status.response.a2a.task_id


async def test_in_controller_a_gated_tool_waits_for_approval_then_runs_once(
    world: World, start_controller: ControllerFactory, counter: tuple[Counter, str]
) -> None:
    service, url = counter
    await gated_clerk(world.cluster, url)
    # One slot: a paused query must not hold it, or the second query could never run.
    await start_controller(scheduler=SchedulerConfig(max_concurrent_queries=1))
    await world.cluster.client.create(
        ark_objects.query("file-it", NS, "please file it", target=("agent", "clerk"))
    )
    paused = await world.cluster.wait_phase("file-it", "input-required", "done", "error")
    task_id = paused_on(paused)
    assert service.bodies == []
    task = await world.task(approval_task_name(task_id))
    assert task is not None
    assert task.status is not None
    metadata = task.status.protocol_metadata or {}
    assert [c["function"]["name"] for c in json.loads(metadata["toolCalls"])] == ["submit"]
    assert json.loads(metadata["runLog"])["queryId"] == paused.metadata.uid

    await world.cluster.client.create(ark_objects.query("meanwhile", NS, "hello"))
    await world.cluster.wait_phase("meanwhile", "done")

    model_calls = clerk_calls(world.cluster)
    assert model_calls == 1  # the turn that asked for the tool
    await world.decide(task_id, '{"decision":"approved"}')
    done = await world.cluster.wait_phase("file-it", "done", "error")
    assert done.status is not None
    assert done.status.phase == "done"
    assert done.status.response is not None
    assert "stored" in done.status.response.content
    assert service.bodies == ['{"ticket": "T-1"}']
    # The first model turn was replayed from the log, not asked again: one more call only.
    assert clerk_calls(world.cluster) == model_calls + 1


async def test_in_controller_a_pause_survives_a_controller_restart(
    world: World, start_controller: ControllerFactory, counter: tuple[Counter, str]
) -> None:
    service, url = counter
    await gated_clerk(world.cluster, url)
    first = await start_controller()
    await world.cluster.client.create(
        ark_objects.query("file-later", NS, "please file it", target=("agent", "clerk"))
    )
    task_id = paused_on(await world.cluster.wait_phase("file-later", "input-required"))
    await first.stop(grace=5.0)

    # Decided while no controller runs; the next one reads the run's log back from the task.
    await world.decide(task_id, '{"decision":"approved"}')
    model_calls = clerk_calls(world.cluster)
    assert model_calls == 1  # the turn that asked for the tool
    await start_controller()
    done = await world.cluster.wait_phase("file-later", "done", "error")
    assert done.status is not None
    assert done.status.phase == "done"
    assert service.bodies == ['{"ticket": "T-1"}']
    assert clerk_calls(world.cluster) == model_calls + 1


async def test_in_controller_a_rejection_is_answered_and_the_tool_never_runs(
    world: World, start_controller: ControllerFactory, counter: tuple[Counter, str]
) -> None:
    service, url = counter
    await gated_clerk(world.cluster, url)
    await start_controller()
    await world.cluster.client.create(
        ark_objects.query("no-filing", NS, "please file it", target=("agent", "clerk"))
    )
    task_id = paused_on(await world.cluster.wait_phase("no-filing", "input-required"))
    await world.decide(task_id, '{"decision":"rejected"}')
    done = await world.cluster.wait_phase("no-filing", "done", "error")
    assert done.status is not None
    assert done.status.phase == "done"
    assert done.status.response is not None
    # The agent was resumed and saw Ark's rejection as the tool's result.
    assert "Tool execution rejected by user" in done.status.response.content
    assert service.bodies == []
    assert (done.metadata.annotations or {}).get(APPROVAL_CASCADE_ANNOTATION) == "1"


async def test_in_controller_an_agent_that_keeps_asking_hits_the_cascade_limit(
    world: World, start_controller: ControllerFactory, counter: tuple[Counter, str]
) -> None:
    service, url = counter
    await gated_clerk(world.cluster, url)
    world.cluster.fake.reset()
    call = ScriptedToolCall(name="submit", arguments={"ticket": "T-1"}, id="call_1")
    world.cluster.fake.add_rule(Rule(match=Match(user="file"), reply=Reply(tool_calls=[call])))
    await start_controller()
    await world.cluster.client.create(
        ark_objects.query("insist", NS, "please file it", target=("agent", "clerk"))
    )
    seen: list[str] = []
    for _ in range(4):
        query = await world.wait_query(
            "insist",
            lambda q: (
                q.status is not None
                and q.status.phase == "input-required"
                and paused_on(q) not in seen
            ),
        )
        seen.append(paused_on(query))
        await world.decide(seen[-1], '{"decision":"rejected"}')
    ended = await world.cluster.wait_phase("insist", "error", "done")
    assert ended.status is not None
    assert ended.status.response is not None
    assert ended.status.response.content == cascade_limit_message()
    assert len(set(seen)) == 4  # a fresh task per pause
    assert service.bodies == []


async def test_in_controller_cancel_while_waiting_then_ttl(
    world: World, start_controller: ControllerFactory, counter: tuple[Counter, str]
) -> None:
    service, url = counter
    await gated_clerk(world.cluster, url)
    await start_controller()
    await world.cluster.client.create(
        ark_objects.query("forget-it", NS, "please file it", target=("agent", "clerk"), ttl="2s")
    )
    await world.cluster.wait_phase("forget-it", "input-required")
    await world.kubectl.run(
        "patch", "query", "forget-it", "-n", NS, "--type", "merge", "-p", '{"spec":{"cancel":true}}'
    )
    await world.cluster.wait_phase("forget-it", "canceled")
    await world.cluster.wait_gone("forget-it")
    assert service.bodies == []


async def test_in_controller_an_interrupted_running_query_restarts_without_a_start_by_deadline(
    world: World, start_controller: ControllerFactory
) -> None:
    """What a controller restart finds after a resumed round was cut off: a Query ``running``
    with no run, created longer ago than its ``spec.timeout``. Ark applies the start-by budget
    only before execution; the query runs again."""
    query = ark_objects.query("cut-off", NS, "hello", timeout="1s")
    query = msgspec.structs.replace(
        query,
        metadata=msgspec.structs.replace(query.metadata, finalizers=["ark.mckinsey.com/finalizer"]),
    )
    created = await world.cluster.client.create(query)
    await StatusWriter(world.cluster.client).write(
        Query, NS, "cut-off", running_status(datetime.now(UTC), 1)
    )
    started = datetime.fromisoformat(
        (created.metadata.creation_timestamp or "").replace("Z", "+00:00")
    )
    async with asyncio.timeout(30):  # past creation + spec.timeout before the controller looks
        while True:
            if datetime.now(UTC) > started + timedelta(seconds=1.5):
                break
            await asyncio.sleep(0.1)
    await start_controller()
    ended = await world.cluster.wait_phase("cut-off", "done", "error")
    assert ended.status is not None
    assert ended.status.phase == "done", ended.status
