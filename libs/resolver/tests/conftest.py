"""A small world for resolver tests: resources in an in-memory store, the real fake model server
over HTTP, a recording sink, and a QueryResolver wired to them; and a real HTTP service for
HTTP tools."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web

from ark_mesh.contracts import (
    Agent,
    AgentSpec,
    ConfigMap,
    HTTPToolSpec,
    Model,
    ModelConfig,
    ModelSpec,
    ObjectMeta,
    OpenAIModelConfig,
    QueryRequest,
    QuerySpec,
    QueryStatus,
    Resource,
    Secret,
    Tool,
    ToolSpec,
    ValueSource,
)
from ark_mesh.resolver import (
    InMemoryMemoryStore,
    InMemoryResourceStore,
    OpenAIModelClient,
    QueryResolver,
    RecordingSink,
)
from ark_mesh.resolver.streaming import STREAMING_CONFIGMAP
from ark_mesh.testing.fake_llm import FakeModelServer, Match, Reply, Rule, ScriptedError

NAMESPACE = "team-a"


def meta(name: str, **labels: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=NAMESPACE, labels=dict(labels) or None)


def mock_llm_like(match: Match, reply: Reply) -> list[Rule]:
    """Rules answering like Ark's mock-llm: plain answers carry usage and tool calls; a streamed
    answer has no usage chunk, and a reply with tool calls cannot be streamed at all (500)."""
    if reply.tool_calls or reply.content is None:
        streamed = Reply(error=ScriptedError(status=500, message="cannot stream a null content"))
    else:
        streamed = Reply(content=reply.content, stream_usage=False)
    return [
        Rule(match=msgspec.structs.replace(match, stream=True), reply=streamed),
        Rule(match=msgspec.structs.replace(match, stream=False), reply=reply),
    ]


@dataclass
class World:
    fake: FakeModelServer
    store: InMemoryResourceStore
    memory: InMemoryMemoryStore
    reconciler: QueryResolver
    sinks: list[RecordingSink] = field(default_factory=list)

    def add(self, *resources: Resource) -> None:
        for resource in resources:
            self.store.put(resource)

    def model(self, name: str = "default", **config: Any) -> Model:
        model = Model(
            metadata=meta(name, **config.pop("labels", {})),
            spec=ModelSpec(
                model=ValueSource(value=config.pop("model_id", "fake-model")),
                provider="openai",
                config=ModelConfig(
                    openai=OpenAIModelConfig(
                        base_url=ValueSource(value=self.fake.base_url),
                        api_key=ValueSource(value="test-key"),
                        **config,
                    )
                ),
            ),
        )
        self.add(model)
        return model

    def agent(self, name: str, prompt: str | None = "You are helpful.", **spec: Any) -> Agent:
        labels = spec.pop("labels", {})
        agent = Agent(metadata=meta(name, **labels), spec=AgentSpec(prompt=prompt, **spec))
        self.add(agent)
        return agent

    def config_map(self, name: str, **data: str) -> None:
        self.add(ConfigMap(metadata=meta(name), data=data))

    def stream_model_calls(self, enabled: bool = True) -> None:
        """Configure the namespace for streaming the way Ark does (``ark-config-streaming``)."""
        self.add(
            ConfigMap(
                metadata=meta(STREAMING_CONFIGMAP),
                data={"enabled": "true" if enabled else "false"},
            )
        )

    def secret(self, name: str, **data: str) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.add(Secret(metadata=meta(name), data=encoded))

    def request(self, name: str = "q", **spec: Any) -> QueryRequest:
        annotations = spec.pop("annotations", None)
        deadline = spec.pop("deadline", None)
        spec.setdefault("input", "Hello there")
        return QueryRequest(
            query_id=str(uuid.uuid4()),
            name=name,
            namespace=NAMESPACE,
            tenant=NAMESPACE,
            spec=QuerySpec(**spec),
            annotations=annotations,
            submitted_at=datetime.now(UTC).isoformat(),
            deadline=deadline,
        )

    async def resolve(
        self, request: QueryRequest, *, cancel: asyncio.Event | None = None, **options: Any
    ) -> tuple[QueryStatus, RecordingSink]:
        sink = RecordingSink()
        self.sinks.append(sink)
        status = await self.reconciler.resolve(request, sink, cancel=cancel, **options)
        return status, sink


@pytest.fixture
async def world(fake_llm: FakeModelServer) -> AsyncIterator[World]:
    store = InMemoryResourceStore(namespace=NAMESPACE)
    memory = InMemoryMemoryStore()
    models = OpenAIModelClient(max_retries=0)
    reconciler = QueryResolver(
        store,
        models=models,
        memory=lambda _memory, _address, _headers: memory,
        reconciler_id="test",
    )
    async with reconciler:
        yield World(fake_llm, store, memory, reconciler)
    await models.aclose()


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "units": {"type": "string"}},
    "required": ["city", "units"],
}


class ToolBackend:
    """A real HTTP service for HTTP tools, recording what it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def weather(self, request: web.Request) -> web.Response:
        self.received.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )
        city = request.match_info["city"]
        return web.json_response(
            {"city": city, "forecast": "sunny", "units": request.query.get("units")}
        )

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.received.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        return web.Response(text=f"stored {body}")

    async def broken(self, request: web.Request) -> web.Response:
        return web.Response(status=500, text="upstream exploded")


@asynccontextmanager
async def serving(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    """A real HTTP server for ``routes`` on a free local port; yields its base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def backend() -> AsyncIterator[ToolBackend]:
    state = ToolBackend()
    routes = [
        web.get("/weather/{city}", state.weather),
        web.post("/submit", state.submit),
        web.get("/broken", state.broken),
    ]
    async with serving(routes) as state.url:
        yield state


def http_tool(name: str, url: str, **spec: Any) -> Tool:
    schema = spec.pop("input_schema", CITY_SCHEMA)
    return Tool(
        metadata=meta(name),
        spec=ToolSpec(
            type="http",
            description=f"{name} tool",
            input_schema=schema,
            http=HTTPToolSpec(url=url, **spec),
        ),
    )
