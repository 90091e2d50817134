"""Contract: a query's ending looks the same whichever path produced it.

Every producer of an ending — the resolver inside the controller (through the controller's own
``InControllerDispatcher``), this service resolving a standalone or a broker-mode query, this
service ending a dead-lettered query or one canceled before it started, and the controller
ending a query it never dispatched — is driven for real (real nats-server, real service, fake
model over HTTP) and what it reported is compared with what :mod:`ark_mesh.contracts.endings`
builds for the same ending: the terminal status, the ending event and the final chunk, field
for field. The expected ending and the run facts come from the scenario, never from what was
observed; only the instant (read from the observed event or condition) and the measured
duration are taken over, because no path can be asked to agree on wall time.

If any path built an ending differently — another event message, a missing ``input`` or target
in the event data, a response on a canceled query, a duration on a query that never ran, a
final chunk labelled differently — its case fails here. The controller writes only the status
(it has no chunk stream or event sink of its own), so for it the status alone is compared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ark_mesh.bus import CancelChannel, DeadLetterCause, DeadLetterNotice
from ark_mesh.contracts import (
    A2AMetadata,
    Chunk,
    Condition,
    DeadLetter,
    Query,
    QueryEvent,
    QueryRequest,
    QueryStatus,
    TokenUsage,
    encode,
    parse_duration,
    subjects,
)
from ark_mesh.contracts.ark import FINALIZER, Reason
from ark_mesh.contracts.endings import (
    Ending,
    RunFacts,
    ending_event,
    final_chunk,
    terminal_status,
)
from ark_mesh.controller.config import ControllerConfig
from ark_mesh.controller.dispatch import InControllerDispatcher, StandaloneDispatcher
from ark_mesh.controller.reconcile import Reconciler
from ark_mesh.controller.scheduler import FairScheduler
from ark_mesh.resolver import InMemoryResourceStore, QueryResolver

ANSWER = "The contract holds."
PAST = "2020-01-01T00:00:00+00:00"
USAGE = TokenUsage(prompt_tokens=50, completion_tokens=100, total_tokens=150)
"""What the fake model reports for a scripted reply (Ark's mock-llm figures)."""


@dataclass
class Reported:
    """What one path reported as the ending of one query."""

    status: QueryStatus
    event: QueryEvent | None
    final: Chunk | None


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """A way for a query to end: how to ask for it, and the ending every path must report."""

    spec: dict[str, Any]
    ending: Ending
    ran: bool
    """Whether the work began (then the facts are the run's, with its measured duration)."""
    deadline: str | None = None
    cancel: bool = False
    """Cancel before the work is picked up."""
    cancel_running: bool = False
    """Cancel once the model has been called (the run is under way)."""

    def facts(self, request: QueryRequest, observed: Reported) -> RunFacts:
        if not self.ran:
            return RunFacts.before_start(request.spec)
        duration = observed.status.duration
        assert duration is not None, "a run that began reports its duration"
        return RunFacts(
            target=request.spec.target,
            usage=USAGE if self.ending.phase == "done" else TokenUsage(),
            elapsed=parse_duration(duration),
            input=str(request.spec.input),
            # An agent the loop ran to its answer answers as an A2A agent whose task is the query.
            a2a=A2AMetadata(task_id=request.query_id) if self.ending.phase == "done" else None,
        )


SCENARIOS: dict[str, Scenario] = {
    "done": Scenario(
        spec={"input": "contract please"},
        ending=Ending.done([{"role": "assistant", "content": ANSWER, "name": "helper"}]),
        ran=True,
    ),
    "canceled": Scenario(spec={}, ending=Ending.canceled(), ran=False, cancel=True),
    # A canceled ending never carries what the run measured (see Ending.canceled).
    "canceled while running": Scenario(
        spec={"input": "never answers"}, ending=Ending.canceled(), ran=False, cancel_running=True
    ),
    "timed out in queue": Scenario(
        spec={}, ending=Ending.timed_out_in_queue(), ran=False, deadline=PAST
    ),
    "timed out in execution": Scenario(
        spec={"input": "never answers", "timeout": "200ms"},
        ending=Ending.timed_out_in_execution(),
        ran=True,
    ),
    "invalid spec": Scenario(
        spec={"timeout": "soon"},
        ending=Ending.error(
            "spec.timeout: invalid duration 'soon': expected a number and a unit at 'soon'"
        ),
        ran=False,
    ),
    "dead-lettered": Scenario(
        spec={},
        ending=Ending.error("The query could not be processed: max deliveries (3) exceeded"),
        ran=False,
    ),
}


# --------------------------------------------------------------------------- producers


class _ControllerPorts:
    """The controller's status, event and chunk ports, recording what they are given."""

    def __init__(self) -> None:
        self.statuses: list[QueryStatus] = []
        self.events: list[QueryEvent] = []
        self.chunks: list[Chunk] = []

    async def write(self, query: Query, status: QueryStatus) -> bool:
        self.statuses.append(status)
        return True

    async def record(self, query: Query, event: QueryEvent) -> None:
        self.events.append(event)

    async def chunk(self, query: Query, chunk: Chunk) -> None:
        self.chunks.append(chunk)

    async def add_finalizer(self, query: Query) -> None:
        raise AssertionError("the query already carries the finalizer")

    async def remove_finalizer(self, query: Query) -> None:
        raise AssertionError("nothing is deleted here")

    async def delete(self, query: Query) -> None:
        raise AssertionError("nothing expires here")

    def reported(self) -> Reported:
        return Reported(self.statuses[-1], self.events[-1], self.chunks[-1])


def _pending_query(request: QueryRequest, created: str) -> Query:
    """The Query CR behind ``request``, as the controller sees it once it is pending."""
    query = request.as_query(
        QueryStatus(
            phase="pending",
            conditions=[Condition(type="Completed", status="False", reason=Reason.NOT_STARTED)],
        )
    )
    metadata = msgspec.structs.replace(
        query.metadata, finalizers=[FINALIZER], creation_timestamp=created
    )
    return msgspec.structs.replace(query, metadata=metadata)


async def in_controller(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    """The resolver run by the controller's in-controller dispatcher, as the controller does."""
    store = InMemoryResourceStore.from_path(mesh.write_manifests(), namespace=mesh.tenant)
    ports = _ControllerPorts()
    async with QueryResolver(store, reconciler_id="controller/test") as resolver:
        dispatcher = InControllerDispatcher(
            resolver, FairScheduler(capacity=4), ports, ports, chunks=ports.chunk
        )
        dispatcher.start(_pending_query(request, PAST), request, holds_slot=False)
        if scenario.cancel:
            assert dispatcher.cancel(request.query_id)  # before the run took its first step
        if scenario.cancel_running:
            await _model_called(mesh)
            assert dispatcher.cancel(request.query_id)
        await dispatcher.close(grace=60.0)
    assert dispatcher.finished(request.query_id, request.generation)
    return ports.reported()


async def _through_the_service(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    await mesh.start()
    if scenario.cancel:
        await CancelChannel(mesh.bus).request(request.tenant, request.query_id, reason="user")
    await mesh.submit(request)
    if scenario.cancel_running:
        await _model_called(mesh)
        await CancelChannel(mesh.bus).request(request.tenant, request.query_id, reason="user")
    outcome = await mesh.outcome(request)
    return Reported(outcome.terminal[-1].status, outcome.events[-1], outcome.finals[-1])


async def _model_called(mesh: Any) -> None:
    """Until the run is under way: the model has the request (and never answers it)."""
    await mesh.fake.wait_until(lambda requests: any("never" in str(r.body) for r in requests))


async def standalone(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    """A QueryRequest the controller dispatched, resolved by this service."""
    return await _through_the_service(mesh, request, scenario)


async def broker(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    """A broker-mode query (no CR), resolved by this service."""
    request = msgspec.structs.replace(request, origin="broker")
    return await _through_the_service(mesh, request, scenario)


async def dead_lettered(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    """The service's dead-letter callback for a work message the bus gave up on."""
    service = await mesh.start()
    notice = DeadLetterNotice(
        letter=DeadLetter(
            subject=subjects.work_query(request.tenant),
            reason="max deliveries (3) exceeded",
            data=encode(request),
            deliveries=3,
            dead_at=datetime.now(UTC).isoformat(),
        ),
        cause=DeadLetterCause.EXHAUSTED,
        dlq_subject=subjects.dlq(request.tenant, "query"),
        message=request,
    )
    await service.dead_letter(notice)
    outcome = await mesh.outcome(request)
    return Reported(outcome.terminal[-1].status, outcome.events[-1], outcome.finals[-1])


async def controller(mesh: Any, request: QueryRequest, scenario: Scenario) -> Reported:
    """The controller ending a query it decides about itself (status only)."""
    ports = _ControllerPorts()
    store = InMemoryResourceStore.from_path(mesh.write_manifests(), namespace=mesh.tenant)
    async with QueryResolver(store) as resolver:
        dispatcher = InControllerDispatcher(resolver, FairScheduler(capacity=4), ports, ports)
        reconciler = Reconciler(
            config=ControllerConfig(),
            queries=ports,
            status=ports,
            in_controller=dispatcher,
            standalone=None,
        )
        query = _pending_query(request, PAST if scenario.deadline else _now())
        if scenario.cancel or scenario.cancel_running:
            query = msgspec.structs.replace(
                query, spec=msgspec.structs.replace(query.spec, cancel=True)
            )
        await reconciler.reconcile(query)
        assert not dispatcher.running(request.query_id), "the controller must not dispatch it"
    return Reported(ports.statuses[-1], None, None)


Producer = Callable[[Any, QueryRequest, Scenario], Awaitable[Reported]]
PRODUCERS: dict[str, Producer] = {
    "in-controller": in_controller,
    "standalone": standalone,
    "broker": broker,
    "dead-letter": dead_lettered,
    "controller": controller,
}
CASES = [
    ("done", "in-controller"),
    ("done", "standalone"),
    ("done", "broker"),
    ("canceled", "in-controller"),
    ("canceled", "standalone"),
    ("canceled", "controller"),
    ("canceled while running", "in-controller"),
    ("canceled while running", "standalone"),
    ("canceled while running", "controller"),
    ("timed out in queue", "in-controller"),
    ("timed out in queue", "standalone"),
    ("timed out in queue", "controller"),
    ("timed out in execution", "in-controller"),
    ("timed out in execution", "standalone"),
    ("invalid spec", "in-controller"),
    ("invalid spec", "standalone"),
    ("invalid spec", "controller"),
    ("dead-lettered", "dead-letter"),
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _instant(observed: Reported) -> datetime:
    """When the path says the query ended: the event's timestamp (µs), else the condition's."""
    if observed.event is not None:
        return datetime.fromisoformat(observed.event.timestamp.replace("Z", "+00:00"))
    [completed] = [c for c in observed.status.conditions or [] if c.type == "Completed"]
    assert completed.last_transition_time is not None
    return datetime.fromisoformat(completed.last_transition_time.replace("Z", "+00:00"))


def expected(request: QueryRequest, scenario: Scenario, observed: Reported) -> Reported:
    """The shared builders' ending for this scenario, at the instant the path reported."""
    now = _instant(observed)
    facts = scenario.facts(request, observed)
    status = terminal_status(scenario.ending, facts, now=now, generation=request.generation)
    if observed.event is None and observed.final is None:
        return Reported(status, None, None)
    seq = observed.final.seq if observed.final is not None else 0
    return Reported(
        status,
        ending_event(request, scenario.ending, facts, now=now),
        final_chunk(request, status, seq=seq, now=now),
    )


def _plain(reported: Reported) -> dict[str, Any]:
    """A JSON view, so a mismatch shows the differing field rather than two object reprs."""
    return {
        "status": json.loads(encode(reported.status)),
        "event": json.loads(encode(reported.event)) if reported.event is not None else None,
        "final": json.loads(encode(reported.final)) if reported.final is not None else None,
    }


@pytest.mark.parametrize(("kind", "path"), CASES, ids=[f"{k}-by-{p}" for k, p in CASES])
async def test_the_ending_is_the_same_whichever_path_produced_it(
    mesh: Any, kind: str, path: str
) -> None:
    scenario = SCENARIOS[kind]
    mesh.fake.add_rule({"match": {"user": "contract"}, "reply": {"content": ANSWER}})
    mesh.fake.add_rule({"match": {"user": "never"}, "reply": {"content": "late", "delay": 3600}})
    request = mesh.request("contract-query", deadline=scenario.deadline, **scenario.spec)

    async with asyncio.timeout(90):
        observed = await PRODUCERS[path](mesh, request, scenario)

    assert observed.status.phase == scenario.ending.phase
    assert _plain(observed) == _plain(expected(request, scenario, observed))


def test_the_table_covers_every_ending_kind_through_several_paths() -> None:
    """The table covers done, error, canceled and both timeouts, and each ending that more
    than one path can produce is produced by several here (so they are compared)."""
    by_kind: dict[str, set[str]] = {}
    for kind, path in CASES:
        by_kind.setdefault(kind, set()).add(path)
    assert set(by_kind) == set(SCENARIOS)
    assert {SCENARIOS[k].ending.kind for k in by_kind} == {"done", "error", "canceled", "timed-out"}
    assert all(len(paths) > 1 for kind, paths in by_kind.items() if kind != "dead-lettered")
    assert set(PRODUCERS) == {path for _, path in CASES}


async def test_the_controller_and_the_run_cancel_a_running_standalone_query_alike(
    mesh: Any,
) -> None:
    """Two writers, one ending: the controller writes ``canceled`` for a running standalone
    query at once, the run stops and reports its own. status-sync keeps the first, the stream
    carries the second's final chunk; a reader must not see two different endings."""
    mesh.fake.add_rule({"match": {"user": "never"}, "reply": {"content": "late", "delay": 3600}})
    await mesh.start()
    request = mesh.request("contract-query", input="never answers")
    await mesh.submit(request)
    await _model_called(mesh)

    ports = _ControllerPorts()
    reconciler = Reconciler(
        config=ControllerConfig(),
        queries=ports,
        status=ports,
        in_controller=None,
        standalone=StandaloneDispatcher(mesh.publisher, CancelChannel(mesh.bus)),
        # A controller whose clock is far from the run's: the instants can only agree if the
        # run takes the controller's, never by landing in the same second.
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    running = _pending_query(request, _now())
    query = msgspec.structs.replace(
        running, spec=msgspec.structs.replace(running.spec, cancel=True)
    )
    await reconciler.reconcile(query)
    outcome = await mesh.outcome(request)

    [written] = ports.statuses
    assert written.phase == "canceled"
    [final] = outcome.finals
    assert final.ark.completed_query is not None
    assert _plain(Reported(outcome.terminal[-1].status, None, None)) == _plain(
        Reported(written, None, None)
    )
    assert final.ark.completed_query.status == written
