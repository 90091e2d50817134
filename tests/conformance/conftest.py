"""Ark conformance scenarios: the engine that runs them and the mesh they run against.

Each scenario (``scenarios/<name>.yaml``) is written the way Ark's own chainsaw tests are: steps
of operations that apply manifests with the real ``kubectl``, wait for a resource to match a
partial document (``assert``) or to stop matching (``error``), patch, delete, run ``kubectl``
itself, capture values, and check what the OpenAI-compatible fake model or the test's HTTP tool
received. Keys and values written
``(expression)`` are JMESPath evaluated on the object at that point, as in chainsaw, so
``(length(response.content) > `10`): true`` reads like Ark's tests do.

One :class:`~ark_mesh.devmesh.LocalMesh` per preset serves every scenario (starting one per
scenario would cost most of the suite's time); each scenario runs in a namespace of its own, and
its Models name a model id of their own (``${MODEL_ID}``), so the fake model's rules of one
scenario (matched on that id) never answer another's requests.

Placeholders in a scenario (``${NAME}``, substituted before the YAML is read): ``NAMESPACE``,
``MODEL_URL`` (the fake model's OpenAI base URL), ``MODEL_SERVER`` (its root, for Azure),
``MODEL_ID``, ``TOOL_URL`` (the HTTP tool server), ``A2A_URL`` (the A2A test agent),
``MCP_URL`` (the MCP test server) and any value captured by an earlier ``capture``. A scenario's ``model.rules`` are the fake model's script
(``ark_mesh.testing.fake_llm.script``), each matched on the scenario's model id; ``cleanup``
operations run however the steps end (for cluster-scoped objects such as ``ArkConfig/default``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from jmespath.exceptions import JMESPathError

from ark_mesh.devmesh import LocalMesh
from ark_mesh.testing.a2a_server import A2ATestServer
from ark_mesh.testing.fake_llm import FakeModelControl, RecordedRequest
from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError
from ark_mesh.testing.mcp_server import MCPTestServer

CONFORMANCE_PRESETS = ("simple", "scale-flexible")
DEFAULT_ASSERT_TIMEOUT = 20.0
POLL_INTERVAL = 0.2
A2A_AGENT_NAME = "message-counter-agent"


class ScenarioAssertionError(AssertionError):
    """A scenario operation that did not hold; the message names step, operation and path."""


# --------------------------------------------------------------------------- assertion trees


@dataclass(frozen=True)
class Mismatch:
    """One failed check: where (a path in the document), what was expected, what was there."""

    path: str
    expected: Any
    actual: Any
    note: str = ""

    def __str__(self) -> str:
        detail = f" ({self.note})" if self.note else ""
        return (
            f"{self.path or '<root>'}: expected {_short(self.expected)}, "
            f"actual {_short(self.actual)}{detail}"
        )


_EXPRESSION = re.compile(r"^\((.+)\)$", re.DOTALL)
_MISSING = object()


def _short(value: Any, limit: int = 240) -> str:
    if value is _MISSING:
        return "<absent>"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _scalar_equal(expected: Any, actual: Any) -> bool:
    numbers = (int, float)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual if isinstance(expected, bool) else False
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        return float(expected) == float(actual)
    return bool(expected == actual)


def match_tree(expected: Any, actual: Any, path: str = "") -> list[Mismatch]:
    """Chainsaw's partial match: every key of ``expected`` must hold in ``actual``.

    A mapping matches when each of its keys does (unlisted keys of ``actual`` are ignored); a key
    ``(expr)`` is matched against the JMESPath value of ``expr`` on the current node; a list
    matches a list of the same length element by element; a scalar matches an equal scalar
    (numbers compare by value).
    """
    if isinstance(expected, Mapping):
        if actual is _MISSING or not isinstance(actual, Mapping):
            return [Mismatch(path, expected, actual, "an object was expected")]
        found: list[Mismatch] = []
        for key, sub in expected.items():
            key_text = str(key)
            child = f"{path}.{key_text}" if path else key_text
            expression = _EXPRESSION.match(key_text)
            if expression is not None:
                try:
                    value = jmespath.search(expression.group(1), actual)
                except JMESPathError as exc:
                    # Often a race (``response`` still null): a mismatch to retry, not a crash.
                    found.append(Mismatch(child, sub, _MISSING, f"cannot evaluate: {exc}"))
                    continue
            else:
                value = actual.get(key_text, _MISSING)
            found += match_tree(sub, value, child)
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [Mismatch(path, expected, actual, "a list was expected")]
        if len(expected) != len(actual):
            return [Mismatch(path, expected, actual, "lengths differ")]
        mismatches: list[Mismatch] = []
        for index, (item, value) in enumerate(zip(expected, actual, strict=True)):
            mismatches += match_tree(item, value, f"{path}[{index}]")
        return mismatches
    if actual is _MISSING:
        return [Mismatch(path, expected, actual, "field not found")]
    return [] if _scalar_equal(expected, actual) else [Mismatch(path, expected, actual)]


# --------------------------------------------------------------------------- the HTTP tool server


@dataclass
class ToolServer:
    """A small HTTP API that scenarios' ``http`` Tools call; it records every request.

    ``/geocode?city=X`` answers coordinates, in place of the public geocoding API Ark's tool
    tests call.
    """

    received: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/geocode", self._geocode)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.text()
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        self.received.append(entry)
        return entry

    async def _geocode(self, request: web.Request) -> web.Response:
        entry = await self._record(request)
        city = entry["query"].get("city", "")
        return web.json_response(
            {"city": city, "latitude": 48.8566, "longitude": 2.3522, "source": "conformance"}
        )


# --------------------------------------------------------------------------- fixtures


@dataclass
class ConformanceMesh:
    """What a scenario runs against: the mesh of one preset and the servers around it."""

    preset: str
    mesh: LocalMesh
    kubectl: Kubectl
    fake_model: FakeModelControl
    tools: ToolServer
    a2a: A2ATestServer
    mcp: MCPTestServer


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def tool_server() -> AsyncIterator[ToolServer]:
    server = ToolServer()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def a2a_agent() -> AsyncIterator[A2ATestServer]:
    async with A2ATestServer(name=A2A_AGENT_NAME) as server:
        yield server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mcp_tools() -> AsyncIterator[MCPTestServer]:
    async with MCPTestServer() as server:
        yield server


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=CONFORMANCE_PRESETS)
async def conformance_mesh(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tool_server: ToolServer,
    a2a_agent: A2ATestServer,
    mcp_tools: MCPTestServer,
) -> AsyncIterator[ConformanceMesh]:
    """One mesh per preset, shared by every scenario (each in its own namespace)."""
    preset = str(request.param)
    workdir = tmp_path_factory.mktemp(f"conformance-{preset}")
    mesh = LocalMesh(preset=preset, workdir=workdir)  # type: ignore[arg-type]
    await mesh.start()
    try:
        assert mesh.fake_llm is not None
        kubectl = Kubectl(mesh.kubeconfig, cache_dir=workdir / "kubectl-cache")
        yield ConformanceMesh(
            preset, mesh, kubectl, mesh.fake_llm.control, tool_server, a2a_agent, mcp_tools
        )
    finally:
        await mesh.stop()


# --------------------------------------------------------------------------- the engine


def _duration(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", str(value).strip())
    if match is None:
        raise ScenarioAssertionError(f"invalid timeout {value!r} (use e.g. 500ms, 20s, 1m)")
    number, unit = float(match.group(1)), match.group(2)
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def _kubectl_resource(document: Mapping[str, Any]) -> str:
    """``kind.version.group`` (or the bare kind for core), which kubectl resolves unambiguously."""
    api_version = str(document.get("apiVersion", ""))
    kind = str(document.get("kind", "")).lower()
    if not api_version or not kind:
        raise ScenarioAssertionError(f"a resource needs apiVersion and kind: {_short(document)}")
    group, _, version = api_version.rpartition("/")
    return f"{kind}.{version}.{group}" if group else kind


def _describe(document: Mapping[str, Any]) -> str:
    name = (document.get("metadata") or {}).get("name")
    return f"{document.get('kind')}/{name}" if name else f"{document.get('kind')} (any)"


async def poll(
    attempt: Callable[[], Awaitable[tuple[bool, str]]], within: float, what: str
) -> None:
    """Retry ``attempt`` every POLL_INTERVAL until it holds; after ``within`` seconds fail with
    the detail of its last try (chainsaw's assert timeout)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        holds, detail = await attempt()
        if holds:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise ScenarioAssertionError(f"{what} did not hold within {within:g}s: {detail}")
        await asyncio.sleep(POLL_INTERVAL)


@dataclass
class ScenarioRun:
    """One scenario in one preset: its namespace, bindings and the operations' log."""

    env: ConformanceMesh
    name: str
    namespace: str
    bindings: dict[str, str]
    source_dir: Path
    log: list[str] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        return self.bindings["MODEL_ID"]

    def load(self, path: Path) -> dict[str, Any]:
        """The scenario file, placeholders substituted in its text (so they work anywhere)."""
        loaded: dict[str, Any] = yaml.safe_load(self.render(path.read_text(encoding="utf-8")))
        return loaded

    def render(self, text: str) -> str:
        return string.Template(text).safe_substitute(self.bindings)

    def documents(self, operation: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The manifests of an operation: an inline ``resource`` or a ``file`` (multi-doc)."""
        if "resource" in operation:
            resource = operation["resource"]
            if isinstance(resource, str):
                return [d for d in yaml.safe_load_all(self.render(resource)) if d]
            return [self._render_document(resource)]
        if "file" in operation:
            text = (self.source_dir / str(operation["file"])).read_text(encoding="utf-8")
            return [d for d in yaml.safe_load_all(self.render(text)) if d]
        raise ScenarioAssertionError("the operation needs `resource` or `file`")

    def _render_document(self, document: Any) -> Any:
        if isinstance(document, str):
            return self.render(document)
        if isinstance(document, Mapping):
            return {self.render(str(k)): self._render_document(v) for k, v in document.items()}
        if isinstance(document, list):
            return [self._render_document(v) for v in document]
        return document

    # ---------------------------------------------------------------- kubectl

    async def kubectl_json(self, *args: str) -> Any:
        return await self.env.kubectl.json(*args, "-n", self.namespace)

    async def read(self, document: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The candidates for an assertion: the named object (None if absent) or all of a kind."""
        resource = _kubectl_resource(document)
        metadata = document.get("metadata") or {}
        name = metadata.get("name")
        if name:
            try:
                found = await self.kubectl_json("get", resource, str(name))
            except KubectlError as exc:
                if exc.code == 404 or "NotFound" in str(exc.reason):
                    return None
                raise
            return [found]
        labels = metadata.get("labels") or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        args = ["get", resource] + (["-l", selector] if selector else [])
        listed = await self.kubectl_json(*args)
        return list(listed.get("items") or [])

    # ---------------------------------------------------------------- operations

    async def apply(self, operation: Mapping[str, Any]) -> None:
        documents = self.documents(operation)
        manifest = yaml.safe_dump_all(documents, sort_keys=False)
        refusal = operation.get("expectRefused")
        try:
            result = await self.env.kubectl.run(
                "apply", "-n", self.namespace, "-f", "-", stdin=manifest
            )
        except KubectlError as exc:
            if refusal is None:
                raise ScenarioAssertionError(
                    f"kubectl apply of {', '.join(_describe(d) for d in documents)} was refused: "
                    f"{exc.message}"
                ) from exc
            # Only the server's message: kubectl's -v=8 log also echoes the request body.
            if str(refusal) not in exc.message:
                raise ScenarioAssertionError(
                    f"kubectl apply of {', '.join(_describe(d) for d in documents)} was refused, "
                    f"but the message does not contain {refusal!r}: actual {exc.message!r}"
                ) from exc
            self.log.append(f"refused as expected: {exc.message}")
            return
        if refusal is not None:
            raise ScenarioAssertionError(
                f"kubectl apply of {', '.join(_describe(d) for d in documents)} was accepted; "
                f"expected a refusal containing {refusal!r} (kubectl said: "
                f"{result.stdout.strip()!r})"
            )
        self.log.append(result.stdout.strip())

    async def patch(self, operation: Mapping[str, Any]) -> None:
        for document in self.documents(operation):
            metadata = document.get("metadata") or {}
            body = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
            body["metadata"] = {k: v for k, v in metadata.items() if k != "name"}
            if not body["metadata"]:
                del body["metadata"]
            await self.env.kubectl.run(
                "patch",
                _kubectl_resource(document),
                str(metadata["name"]),
                "-n",
                self.namespace,
                "--type=merge",
                "-p",
                json.dumps(body),
            )

    async def delete(self, operation: Mapping[str, Any]) -> None:
        for document in self.documents(operation):
            name = str((document.get("metadata") or {})["name"])
            await self.env.kubectl.run(
                "delete",
                _kubectl_resource(document),
                name,
                "-n",
                self.namespace,
                "--ignore-not-found",
                "--wait=false",
            )

    async def kubectl(self, operation: Mapping[str, Any]) -> None:
        """Run ``kubectl <args> -n <namespace>`` as a user would (chainsaw's ``script``); with
        ``expectOutput`` its stdout must contain that text."""
        args = [self.render(str(a)) for a in operation.get("args") or []]
        result = await self.env.kubectl.run(*args, "-n", self.namespace)
        self.log.append(result.stdout.strip())
        wanted = operation.get("expectOutput")
        if wanted is not None and self.render(str(wanted)) not in result.stdout:
            raise ScenarioAssertionError(
                f"kubectl {' '.join(args)}: output does not contain {wanted!r}: "
                f"actual {_short(result.stdout, 600)}"
            )

    async def expect(self, operation: Mapping[str, Any], *, negate: bool) -> None:
        """``assert`` (some candidate matches) or ``error`` (none does), polled until timeout."""
        timeout = _duration(operation.get("timeout"), DEFAULT_ASSERT_TIMEOUT)
        for document in self.documents(operation):
            expected = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
            expected_meta = dict(expected.get("metadata") or {})
            expected_meta.pop("namespace", None)
            if expected_meta:
                expected["metadata"] = expected_meta
            else:
                expected.pop("metadata", None)

            async def attempt(
                document: Mapping[str, Any] = document, expected: Mapping[str, Any] = expected
            ) -> tuple[bool, str]:
                return self._judge(expected, await self.read(document), negate=negate)

            word = "error (must not match)" if negate else "assert"
            await poll(attempt, timeout, f"{word} {_describe(document)}")

    @staticmethod
    def _judge(
        expected: Mapping[str, Any], candidates: list[dict[str, Any]] | None, *, negate: bool
    ) -> tuple[bool, str]:
        if candidates is None:
            return (True, "") if negate else (False, "not found")
        if not candidates:
            return (True, "") if negate else (False, "none exists")
        problems: list[str] = []
        for candidate in candidates:
            mismatches = match_tree(expected, candidate)
            if not mismatches:
                if negate:
                    name = (candidate.get("metadata") or {}).get("name")
                    return False, f"{name} matches the document"
                return True, ""
            problems.append("; ".join(str(m) for m in mismatches))
        if negate:
            return True, ""
        if len(problems) == 1:
            return False, problems[0]
        listed = " | ".join(problems[:5])
        return False, f"none of {len(candidates)} candidates matches: {listed}"

    async def model_request(self, operation: Mapping[str, Any]) -> None:
        """Some request the fake model received for this scenario matches ``assert``.

        A request is seen as ``{path, outcome, headers (lower-case names), body}``; with
        ``none: true`` no request of the scenario may match (checked once: use it after the
        query ended, "never" cannot be waited for).
        """
        expected = self._render_document(operation.get("assert") or {})
        none = bool(operation.get("none"))
        timeout = 0.0 if none else _duration(operation.get("timeout"), DEFAULT_ASSERT_TIMEOUT)

        async def attempt() -> tuple[bool, str]:
            seen = [_request_view(r) for r in await self._scenario_model_requests()]
            verdict, detail = self._judge(expected, seen or None, negate=none)
            return verdict, f"{len(seen)} received for model id {self.model_id!r}: {detail}"

        what = "no model request may match" if none else "a model request must match"
        await poll(attempt, timeout, what)

    async def _scenario_model_requests(self) -> list[RecordedRequest]:
        requests = await self.env.fake_model.requests()
        return [
            r
            for r in requests
            if isinstance(r.body, dict) and str(r.body.get("model", "")).startswith(self.model_id)
        ]

    async def tool_request(self, operation: Mapping[str, Any]) -> None:
        """Some request the HTTP tool server received from this scenario matches ``assert``.

        With ``count: N`` exactly N received requests must match (``count: 0``: none may; like
        ``none`` for the model, a count is a fact about now — check it once the query has
        moved past the point where a call could still happen)."""
        expected = self._render_document(operation.get("assert") or {})
        count = operation.get("count")
        timeout = _duration(operation.get("timeout"), DEFAULT_ASSERT_TIMEOUT)

        async def attempt() -> tuple[bool, str]:
            # A scenario's Tools carry its namespace in the URL (``?scenario=${NAMESPACE}``).
            received = self.env.tools.received
            seen = [r for r in received if r["query"].get("scenario") == self.namespace]
            if count is not None:
                matching = [r for r in seen if not match_tree(expected, r)]
                verdict = len(matching) == int(count)
                return verdict, f"{len(matching)} of {len(seen)} received match, want {count}"
            verdict, detail = self._judge(expected, seen or None, negate=False)
            return verdict, f"{len(seen)} received: {detail}"

        what = (
            "a tool request must match" if count is None else f"{count} tool request(s) must match"
        )
        await poll(attempt, 0.0 if count == 0 else timeout, what)

    async def capture(self, operation: Mapping[str, Any]) -> None:
        """Store values of a resource (JMESPath) as placeholders for the operations after it."""
        timeout = _duration(operation.get("timeout"), DEFAULT_ASSERT_TIMEOUT)
        (document,) = self.documents(operation)
        wanted: Mapping[str, str] = operation.get("values") or {}

        async def attempt() -> tuple[bool, str]:
            candidates = await self.read(document) or [{}]
            values = {name: jmespath.search(path, candidates[0]) for name, path in wanted.items()}
            if all(isinstance(v, str) and v for v in values.values()):
                self.bindings.update({k: str(v) for k, v in values.items()})
                return True, ""
            return False, f"values so far: {values}"

        await poll(attempt, timeout, f"capture from {_describe(document)}")

    async def diagnostics(self) -> str:
        """The namespace's queries and events, attached to a failure like chainsaw's ``catch``."""
        parts: list[str] = []
        for resource in ("queries.v1alpha1.ark.mckinsey.com", "events"):
            try:
                listed = await self.kubectl_json("get", resource)
            except KubectlError as exc:
                parts.append(f"{resource}: {exc.message}")
                continue
            for item in listed.get("items") or []:
                if resource == "events":
                    parts.append(
                        f"event {item.get('type')} {item.get('reason')} "
                        f"{(item.get('involvedObject') or {}).get('name')}: {item.get('message')}"
                    )
                else:
                    name = (item.get("metadata") or {}).get("name")
                    parts.append(f"query {name} status: {_short(item.get('status'), 800)}")
        return "\n".join(parts)


def _request_view(request: RecordedRequest) -> dict[str, Any]:
    return {
        "path": request.path,
        "outcome": request.outcome,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": request.body,
    }


async def run_operation(run: ScenarioRun, operation: Mapping[str, Any]) -> None:
    handlers: dict[str, Callable[[Mapping[str, Any]], Awaitable[None]]] = {
        "apply": run.apply,
        "assert": functools.partial(run.expect, negate=False),
        "error": functools.partial(run.expect, negate=True),
        "patch": run.patch,
        "delete": run.delete,
        "kubectl": run.kubectl,
        "capture": run.capture,
        "modelRequest": run.model_request,
        "toolRequest": run.tool_request,
    }
    kinds = [key for key in operation if key in handlers]
    if len(kinds) != 1:
        raise ScenarioAssertionError(
            f"an operation needs exactly one of {sorted(handlers)}: {_short(operation)}"
        )
    await handlers[kinds[0]](operation[kinds[0]] or {})


def namespace_for(scenario: str) -> str:
    """A fresh DNS-label namespace per run, like chainsaw's ``chainsaw-<words>``."""
    return f"{scenario[:48]}-{secrets.token_hex(3)}"


async def run_scenario(env: ConformanceMesh, path: Path) -> None:
    """Run every step of the scenario at ``path``; the first failing operation fails it."""
    name = path.stem
    namespace = namespace_for(name)
    bindings = {
        "NAMESPACE": namespace,
        "MODEL_URL": env.mesh.fake_llm.base_url if env.mesh.fake_llm else "",
        "MODEL_SERVER": env.mesh.fake_llm.url if env.mesh.fake_llm else "",
        "MODEL_ID": f"model-{namespace}",
        "TOOL_URL": env.tools.url,
        "A2A_URL": env.a2a.url,
        "MCP_URL": env.mcp.url,
    }
    run = ScenarioRun(env, name, namespace, bindings, path.parent.parent)
    scenario = run.load(path)
    rules = [dict(rule) for rule in (scenario.get("model") or {}).get("rules") or []]
    for rule in rules:
        rule["match"] = {"model": run.model_id, **(rule.get("match") or {})}
    if rules:
        await env.fake_model.add_rules(rules)
    await env.kubectl.run(
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        ),
    )
    try:
        for index, step in enumerate(scenario.get("steps") or [], start=1):
            step_name = step.get("name") or f"step {index}"
            for position, operation in enumerate(step.get("try") or [], start=1):
                try:
                    await run_operation(run, operation)
                except (ScenarioAssertionError, KubectlError) as exc:
                    kind = next(iter(operation), "?")
                    diagnostics = await run.diagnostics()
                    done = "\n".join(run.log[-10:])
                    raise ScenarioAssertionError(
                        f"[{env.preset}] {name} (namespace {namespace}), step '{step_name}', "
                        f"operation {position} ({kind}): {exc}\n--- diagnostics ---\n"
                        f"{diagnostics}\n--- last operations ---\n{done}"
                    ) from exc
    finally:
        for operation in scenario.get("cleanup") or []:
            try:
                await run_operation(run, operation)
            except (ScenarioAssertionError, KubectlError) as exc:
                run.log.append(f"cleanup failed: {exc}")


@pytest.fixture
def run_in_mesh(conformance_mesh: ConformanceMesh) -> Callable[[Path], Awaitable[None]]:
    """``await run_in_mesh(path)``: the scenario at ``path`` in the current preset's mesh."""

    async def run(path: Path) -> None:
        await run_scenario(conformance_mesh, path)

    return run
