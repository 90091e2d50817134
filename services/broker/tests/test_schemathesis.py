"""schemathesis over the broker's own ``/openapi.json``, against a real broker.

The broker (token auth), a query-reconciler and the fake model run in this process on real
ports over a real nats-server (the ``running`` fixture); schemathesis runs as its CLI in a
subprocess, so the broker keeps serving on this event loop while it is probed. It generates
valid and invalid requests from the document (parameters, bodies, headers) with a fixed seed
and a small budget per operation, follows the document's links (an accepted query's id into
get, stream, events and cancel: the stateful phase), and checks every answer: never a 5xx,
status codes, content types, headers and bodies (SSE events too) as the document says, invalid
data refused.

Once with a tenant's token (requests get past authentication and reach every handler, queries
really run) and once without (every route must answer its documented 401, in its dialect).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ark_mesh.broker import LimitsConfig, SSEConfig
from ark_mesh.broker.api import OPERATIONS

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
MAX_EXAMPLES = 25
SEED = 11


async def _schemathesis(url: str, report: Path, headers: dict[str, str]) -> tuple[int, str]:
    """Run schemathesis' CLI on the served document; its exit code and output. It runs in the
    report's directory, so the files it keeps (a cache) stay out of the repository."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=report.parent,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def _answers(report: Path) -> list[tuple[str, str, int]]:
    """Every request schemathesis made, as ``(method, route template, status)``, from its
    event report (the route is matched against the broker's own routes)."""
    answers: list[tuple[str, str, int]] = []
    for line in report.read_text().splitlines():
        for request, status in _interactions(json.loads(line)):
            path = urlsplit(request["uri"]).path
            answers.append((request["method"], _route(path), status))
    return answers


def _interactions(node: Any) -> list[tuple[dict[str, Any], int]]:
    found: list[tuple[dict[str, Any], int]] = []
    if isinstance(node, dict):
        request, response = node.get("request"), node.get("response")
        if isinstance(request, dict) and isinstance(response, dict):
            found.append((request, int(response["status_code"])))
        for value in node.values():
            found += _interactions(value)
    elif isinstance(node, list):
        for value in node:
            found += _interactions(value)
    return found


def _route(path: str) -> str:
    for operation in OPERATIONS:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(operation.path))
        if re.fullmatch(pattern, path):
            return operation.path
    return path


@pytest.fixture
async def mesh(world: Any) -> Any:
    """The broker (token auth), a query-, a responses- and an embeddings-reconciler with one
    embeddings Model ``embedder`` per tenant: every route reaches real work. A non-streaming
    call waits at most 15 s (then its documented 504), so a generated ``timeout`` cannot
    stretch the run, and a ``watch=true`` stream (or a ``wait-for-query`` wait) ends after
    1 s, as a proxy's idle limit would end it (they follow the stream for ever otherwise)."""
    await world.start_reconciler()
    await world.start_responses_reconciler()
    await world.start_embeddings_reconciler(
        [
            {
                "apiVersion": "ark.mckinsey.com/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "embedder", "namespace": namespace},
                "spec": {
                    "model": {"value": "fake-embeddings"},
                    "provider": "openai",
                    "config": {
                        "openai": {
                            "baseUrl": {"value": world.fake.base_url},
                            "apiKey": {"value": "k"},
                        }
                    },
                },
            }
            for namespace in ("team-a", "team-b")
        ]
    )
    await world.start_broker(
        world.broker_config(
            limits=LimitsConfig(max_in_flight_per_tenant=50, completion_wait_seconds=15.0),
            streaming=SSEConfig(heartbeat_seconds=0.5, watch_max_seconds=1.0),
        )
    )
    return world


@pytest.mark.timeout(600)
@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    mesh: Any, tmp_path: Path, token: bool
) -> None:
    report = tmp_path / "events.ndjson"
    headers = mesh.auth() if token else {}
    code, output = await _schemathesis(mesh.url, report, headers)
    assert code == 0, output[-30_000:]
    answers = _answers(report)
    assert [a for a in answers if a[2] >= 500] == []
    # schemathesis does not probe the document it was given (test_openapi.py serves it).
    documented = {(op.method, op.path) for op in OPERATIONS if op.path != "/openapi.json"}
    tenant_routes = {(op.method, op.path) for op in OPERATIONS if op.tenant}
    succeeded = {(method, route) for method, route, status in answers if status < 300}
    if token:
        # Past authentication every query route did real work at least once (the stateful
        # phase follows an accepted query's links), so their success answers were checked too.
        # The OpenAI routes need an existing target/Model, and the resources' `/{name}` routes
        # (a tool approval's decision too) an existing name, which random names rarely are
        # (test_ark_api.py and test_tool_approvals.py read them); a conversation is found only
        # once messages were added to it, a session once a query's events were folded (and
        # until a fuzzed DELETE /sessions): test_memory_sessions.py and
        # tests/e2e/test_ark_clients.py (the session deletes) read them.
        queries = {
            route
            for route in documented
            if not route[1].startswith("/openai/")
            and "{name}" not in route[1]
            and route
            not in {
                ("GET", "/conversations/{conversation_id}"),
                ("GET", "/sessions/{session_id}"),
                ("GET", "/v1/broker/sessions/{session_id}"),
                ("DELETE", "/v1/sessions/{session_id}"),
            }
        }
        assert queries <= succeeded, sorted(queries - succeeded)
    else:
        # Without a token every tenant route answers its documented 401, whatever was sent.
        refused = {(m, r, s) for m, r, s in answers if (m, r) in tenant_routes and s != 401}
        assert refused == set(), sorted(refused)[:20]
        assert succeeded & documented == documented - tenant_routes
