"""Chaos, bounded: the mesh on a 3-node JetStream cluster while the leaders of its streams die.

One scenario runs once per module (about two minutes) and every test below checks one
invariant of issue 12's acceptance on what it recorded, so a broken promise shows as exactly
the invariant that broke, with its evidence, while the others still report.

The scenario: ``LocalMesh(nats_nodes=3)`` (every stream, KV bucket and durable consumer at R3)
with two query-reconcilers, the broker and status-sync, a slow streaming fake model (about two
seconds of tokens per query). Four phases, one per victim — the leader of ``ARK_WORK``, of
``ARK_CHUNKS``, of ``ARK_STATUS``, of the broker's read model (KV ``ark-queries``). In each, ten
queries are posted through the broker (``POST /v1/queries``, a 503 is retried as its
``Retry-After`` says) and each one's SSE stream (``GET /v1/queries/{id}/stream``) is read from
the start; a second in, the victim's leader node is SIGKILLed, and restarted three seconds later.
A stream cut without ``[DONE]`` is resumed once with ``Last-Event-ID``, as a client would; a
retried POST answered 409 (the 503 before it was ambiguous) is looked up by name. Killing a node
kills every leader on it: ``Report.kills`` names the other streams that lost theirs too.

Recorded per query: the HTTP statuses seen, the SSE ``id:``s and whether ``[DONE]`` came; after
the phases, each query's status messages and chunks as stored in JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from ark_mesh.bus import Bus, ConnectionSettings, StreamReader
from ark_mesh.contracts import Chunk, StatusUpdate, decoder_for, subjects
from ark_mesh.devmesh import LocalMesh
from ark_mesh.testing.fake_llm import Match, Reply, Rule

SOAK_SECONDS = float(os.environ.get("ARK_MESH_SOAK_SECONDS") or 0)
"""``make soak``: after the four phases, phases with a random victim go on for this long."""
SOAK_SEED = int(os.environ.get("ARK_MESH_SOAK_SEED") or time.time_ns() % 1_000_000)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.chaos,
    pytest.mark.timeout(300 + 2 * SOAK_SECONDS),
]

TERMINAL = ("done", "error", "canceled")
VICTIMS = ("ARK_WORK", "ARK_CHUNKS", "ARK_STATUS", "KV_ark-queries")
ALL_STREAMS = (
    "ARK_WORK",
    "ARK_CHUNKS",
    "ARK_EVENTS",
    "ARK_STATUS",
    "ARK_MEMORY",
    "KV_ark-queries",
    "KV_ark-cancel",
    "KV_ark-runs",
    "KV_ark-sessions",
)
QUERIES_PER_PHASE = 10
KILL_AFTER = 1.0
DOWN_FOR = 3.0
SSE_WITHIN = 60.0
"""Seconds an SSE stream may stay open before it counts as hung (a query takes about 2 s)."""
WORDS = 20


@dataclass
class Trace:
    """What one query's client saw."""

    phase: str
    name: str
    id: str | None = None
    post_statuses: list[int] = field(default_factory=list)
    sse_statuses: list[int] = field(default_factory=list)
    sse_ids: list[int] = field(default_factory=list)
    done: bool = False
    resumed: bool = False
    hung: bool = False
    errors: list[str] = field(default_factory=list)
    terminal_updates: list[tuple[int, int, str]] = field(default_factory=list)
    final_chunks: int = 0
    stored_chunk_seqs: list[int] = field(default_factory=list)
    chunk_seq_numbers: list[int] = field(default_factory=list)
    phase_seen: str | None = None
    model_calls: int = 0
    chunk_texts: list[str] = field(default_factory=list)
    """Each stored chunk's token (or ``<final>``/``<error>``), in stream order: which attempt
    wrote what."""

    def delivered_chunk_seqs(self) -> list[int]:
        """The chunk ``seq`` of each SSE event (its ``id:``), in the order the client got them."""
        return list(self.sse_ids)


@dataclass
class Report:
    traces: list[Trace]
    kills: list[tuple[str, str, float, list[str]]]
    """(victim, node name, seconds until STREAM.INFO named a live leader, the other streams
    that node led when it died — they lost their leader too)."""
    logs: dict[str, str]

    def accepted(self) -> list[Trace]:
        return [t for t in self.traces if t.id is not None]

    def evidence(self, traces: list[Trace], *, chunks: bool = False) -> str:
        lines = [
            f"{t.phase} {t.name} id={t.id} post={t.post_statuses} sse={t.sse_statuses} "
            f"done={t.done} resumed={t.resumed} hung={t.hung} terminal={t.terminal_updates} "
            f"finals={t.final_chunks} model_calls={t.model_calls} errors={t.errors[:3]}"
            + (f"\n    stored chunk seqs in stream order {t.chunk_seq_numbers}" if chunks else "")
            + (f"\n    SSE delivered {t.delivered_chunk_seqs()}" if chunks else "")
            + (f"\n    stored tokens {t.chunk_texts}" if chunks else "")
            for t in traces[:12]
        ]
        errors = [
            f"{name}: {line[:240]}"
            for name, tail in self.logs.items()
            for line in tail.splitlines()
            if "[error" in line or "[warning" in line
        ]
        return (
            f"{len(traces)} of {len(self.traces)} queries; kills {self.kills}\n"
            + "\n".join(lines)
            + "\nservice log errors/warnings:\n"
            + "\n".join(errors[-40:])
        )


async def _post(http: aiohttp.ClientSession, base: str, trace: Trace) -> None:
    body = {
        "name": trace.name,
        "input": f"chaos {trace.name}",
        "target": {"type": "agent", "name": "assistant"},
    }
    for _ in range(8):
        try:
            async with http.post(f"{base}/v1/queries", json=body) as response:
                trace.post_statuses.append(response.status)
                if response.status in (200, 201, 202):
                    trace.id = (await response.json())["id"]
                    return
                if response.status == 503:
                    retry = float(response.headers.get("Retry-After", "1"))
                    await asyncio.sleep(min(retry, 3.0))
                    continue
                trace.errors.append(f"POST {response.status}: {(await response.text())[:200]}")
                if response.status == 409 and 503 in trace.post_statuses:
                    # The 503 was ambiguous: the query was stored after all. A client learns
                    # its id by name, as Ark's clients read a query back.
                    await _find(http, base, trace)
                return
        except (aiohttp.ClientError, TimeoutError) as error:
            trace.errors.append(f"POST {type(error).__name__}: {error}")
            await asyncio.sleep(1.0)


async def _find(http: aiohttp.ClientSession, base: str, trace: Trace) -> None:
    async with http.get(f"{base}/v1/queries/{trace.name}") as response:
        if response.status == 200:
            trace.id = (await response.json())["id"]
        else:
            trace.errors.append(f"GET by name {response.status}")


async def _read_sse(http: aiohttp.ClientSession, url: str, trace: Trace, after: int | None) -> bool:
    """Read one SSE connection to its end; True when it ended with ``[DONE]`` after the
    query's answer. A stream the broker could not continue ends with its error line (``code:
    unavailable``, "resume it") and ``[DONE]``: False, so the client resumes, as one should."""
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    cut = False
    async with http.get(url, headers=headers) as response:
        trace.sse_statuses.append(response.status)
        if response.status != 200:
            trace.errors.append(f"SSE {response.status}: {(await response.text())[:200]}")
            return False
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                trace.sse_ids.append(int(line[4:]))
            elif line == "data: [DONE]":
                return not cut
            elif line.startswith('data: {"error"'):
                error = json.loads(line[6:])["error"]
                trace.errors.append(f"SSE error line: {error.get('message', '')[:160]}")
                cut = error.get("code") == "unavailable"
    return False


async def _follow(http: aiohttp.ClientSession, base: str, trace: Trace) -> None:
    await _post(http, base, trace)
    if trace.id is None:
        return
    url = f"{base}/v1/queries/{trace.id}/stream"
    try:
        async with asyncio.timeout(SSE_WITHIN):
            for attempt in range(2):
                try:
                    after = trace.sse_ids[-1] if trace.sse_ids else None
                    if await _read_sse(http, url, trace, after if attempt else None):
                        trace.done = True
                        return
                except (aiohttp.ClientError, ValueError) as error:
                    trace.errors.append(f"SSE {type(error).__name__}: {error}")
                trace.resumed = attempt == 0
                await asyncio.sleep(1.0)
    except TimeoutError:
        trace.hung = True


async def _phase(
    mesh: LocalMesh, http: aiohttp.ClientSession, base: str, victim: str, report: Report
) -> None:
    cluster = mesh.nats_cluster
    assert cluster is not None
    phase = len(report.kills)
    traces = [
        Trace(victim, f"chaos-{phase}-{victim.lower().replace('_', '-')}-{n}")
        for n in range(QUERIES_PER_PHASE)
    ]
    report.traces.extend(traces)
    tasks = []
    for trace in traces:
        tasks.append(asyncio.create_task(_follow(http, base, trace)))
        await asyncio.sleep(0.1)
    await asyncio.sleep(KILL_AFTER)
    leader = await cluster.stream_leader(victim)
    co_led = [
        name
        for name in ALL_STREAMS
        if name != victim and await cluster.stream_leader(name) == leader
    ]
    began = time.monotonic()
    await cluster.akill(leader)
    with contextlib.suppress(Exception):
        await cluster.stream_leader(victim, within=DOWN_FOR * 4)
    elected = time.monotonic() - began
    await asyncio.sleep(max(0.0, DOWN_FOR - elected))
    await cluster.arestart(leader)
    report.kills.append((victim, cluster.names[leader], round(elected, 1), co_led))
    await asyncio.gather(*tasks)


async def _settle(mesh: LocalMesh, http: aiohttp.ClientSession, base: str, report: Report) -> None:
    """After the phases: each accepted query's phase and what JetStream stored for it."""
    assert mesh.fake_llm is not None
    asked = [str(r.body) for r in await mesh.fake_llm.control.requests()]
    for trace in report.traces:
        # Each model request carries the query's input ("chaos <name>") as its user message.
        trace.model_calls = sum(1 for body in asked if f"chaos {trace.name}'" in body)
    bus = await Bus.connect(ConnectionSettings(servers=tuple(mesh.nats_urls)))
    try:
        reader = StreamReader(bus)
        status = decoder_for(StatusUpdate).decode
        chunk = decoder_for(Chunk).decode
        for trace in report.accepted():
            assert trace.id is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    while trace.phase_seen not in TERMINAL:
                        async with http.get(f"{base}/v1/queries/{trace.id}") as response:
                            if response.status == 200:
                                body = await response.json()
                                trace.phase_seen = body["status"].get("phase")
                            else:
                                trace.errors.append(f"GET {response.status}")
                        await asyncio.sleep(0.2)
            updates = [
                e.message
                async for e in reader.read(
                    subjects.query_status(mesh.namespace, trace.id),
                    decoder=status,
                    caught_up=True,
                )
            ]
            trace.terminal_updates = [
                (u.attempt, u.seq, u.phase) for u in updates if u.phase in TERMINAL
            ]
            entries = [
                e
                async for e in reader.read(
                    subjects.query_chunk(mesh.namespace, trace.id), decoder=chunk, caught_up=True
                )
            ]
            trace.final_chunks = sum(1 for e in entries if e.message.is_final)
            trace.stored_chunk_seqs = [e.seq for e in entries]
            trace.chunk_seq_numbers = [e.message.seq for e in entries]
            trace.chunk_texts = [_text(e.message) for e in entries]
    finally:
        await bus.close()


def _text(chunk: Chunk) -> str:
    if chunk.is_final:
        return "<final>"
    if chunk.error is not None:
        return f"<error {chunk.error.message[:40]}>"
    return "".join(c.delta.content or "" for c in chunk.choices)


async def _scenario(workdir: Path) -> Report:
    report = Report(traces=[], kills=[], logs={})
    mesh = LocalMesh(preset="scale-strict", workdir=workdir, nats_nodes=3, streaming=True)
    await mesh.start()
    try:
        assert mesh.fake_llm is not None
        words = " ".join(f"w{n}" for n in range(WORDS))
        await mesh.fake_llm.control.add_rule(
            Rule(match=Match(user="chaos"), reply=Reply(content=words, chunk_delay=0.1))
        )
        await mesh.add_replica("query-reconciler")
        base = f"http://127.0.0.1:{mesh.services['broker'].config['http']['port']}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for victim in VICTIMS:
                await _phase(mesh, http, base, victim, report)
            # The soak: the same phases with victims drawn at random (the seed is in the
            # report, ARK_MESH_SOAK_SEED replays it), until the time is up.
            draw = random.Random(SOAK_SEED)
            soak_until = time.monotonic() + SOAK_SECONDS
            while time.monotonic() < soak_until:
                await _phase(mesh, http, base, draw.choice(VICTIMS), report)
            await _settle(mesh, http, base, report)
    finally:
        for name, process in mesh.services.items():
            report.logs[name] = process.log_path.read_text(errors="replace")
        await mesh.stop()
    return report


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Report:
    workdir = tmp_path_factory.mktemp("chaos")
    report = asyncio.run(_scenario(workdir))
    summary = [{**vars(t), "delivered_chunk_seqs": t.delivered_chunk_seqs()} for t in report.traces]
    (workdir / "chaos-report.json").write_text(
        json.dumps({"seed": SOAK_SEED, "kills": report.kills, "traces": summary}, indent=1)
    )
    return report


def test_every_leader_was_killed_under_load(chaos: Report) -> None:
    assert [kill[0] for kill in chaos.kills][: len(VICTIMS)] == list(VICTIMS)
    assert len(chaos.traces) == QUERIES_PER_PHASE * len(chaos.kills)


def test_every_query_was_accepted(chaos: Report) -> None:
    """A 503 is allowed (the client retries as ``Retry-After`` says); in the end every query has
    an id — from a 202, or looked up by name when a retry found it stored after all (409)."""
    refused = [t for t in chaos.traces if t.id is None]
    assert not refused, chaos.evidence(refused)


def test_no_request_was_answered_500(chaos: Report) -> None:
    failed = [
        t
        for t in chaos.traces
        if any(code >= 500 and code != 503 for code in (*t.post_statuses, *t.sse_statuses))
    ]
    assert not failed, chaos.evidence(failed)


def test_every_accepted_query_has_exactly_one_terminal_status(chaos: Report) -> None:
    wrong = [t for t in chaos.accepted() if len(t.terminal_updates) != 1]
    assert not wrong, chaos.evidence(wrong)
    unfinished = [t for t in chaos.accepted() if t.phase_seen not in TERMINAL]
    assert not unfinished, chaos.evidence(unfinished)


def test_every_accepted_query_has_exactly_one_final_chunk(chaos: Report) -> None:
    wrong = [t for t in chaos.accepted() if t.final_chunks != 1]
    assert not wrong, chaos.evidence(wrong)


def test_every_sse_stream_ended_with_done(chaos: Report) -> None:
    cut = [t for t in chaos.accepted() if not t.done]
    assert not cut, chaos.evidence(cut)


def test_no_sse_stream_delivered_a_chunk_twice(chaos: Report) -> None:
    wrong = [t for t in chaos.accepted() if len(t.sse_ids) != len(set(t.sse_ids))]
    assert not wrong, chaos.evidence(wrong, chunks=True)


def test_chunks_are_numbered_without_gap_or_duplicate(chaos: Report) -> None:
    """Each query's stored chunk seqs are exactly 1..n, each once — in whatever order the
    elections left them (readers put them back in order: contracts/sequencing.py). A gap would
    be a chunk lost for good, a duplicate an attempt streaming beside the one that took its
    work over (the worker's fence stops it)."""
    wrong = [
        t
        for t in chaos.accepted()
        if sorted(t.chunk_seq_numbers) != list(range(1, len(t.chunk_seq_numbers) + 1))
    ]
    assert not wrong, chaos.evidence(wrong, chunks=True)


def test_every_sse_stream_delivered_every_chunk_in_sequence(chaos: Report) -> None:
    """What the client got over its connections (after at most one resume): every chunk the
    query stored, 1..n in order, none twice, whatever order the stream holds them in."""
    wrong = [
        t
        for t in chaos.accepted()
        if t.delivered_chunk_seqs() != list(range(1, max(t.chunk_seq_numbers, default=0) + 1))
    ]
    assert not wrong, chaos.evidence(wrong, chunks=True)
