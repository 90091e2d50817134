"""The OpenAPI document: checked in exactly as the code generates it, served as checked in, and
covering every route the broker serves.

A route or a body changed without ``make schemas`` fails here, not in a client generated from
a stale document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from ark_mesh.broker.api import OPERATIONS
from ark_mesh.broker.openapi import openapi_text

REPO = Path(__file__).resolve().parents[3]
CHECKED_IN = REPO / "proto-schemas" / "openapi.json"


def test_checked_in_document_matches_the_code() -> None:
    assert CHECKED_IN.read_text() == openapi_text(OPERATIONS), "out of date, run `make schemas`"


def test_every_route_has_its_parameters_bodies_and_errors() -> None:
    document = msgspec.json.decode(CHECKED_IN.read_bytes())
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    for operation in OPERATIONS:
        entry = document["paths"][operation.path][operation.method.lower()]
        responses = entry["responses"]
        for template_param in (p for p in operation.path.split("/") if p.startswith("{")):
            names = {p["name"] for p in entry["parameters"] if p["in"] == "path"}
            assert template_param.strip("{}") in names, operation.path
        assert "500" in responses, operation.path
        assert "503" in responses, operation.path
        assert "Retry-After" in responses["503"]["headers"], operation.path
        if operation.tenant:
            error = responses["401"]["content"]["application/json"]["schema"]["$ref"]
            expected = "OpenAIError" if operation.path.startswith("/openai/") else "ErrorEnvelope"
            assert error.endswith(f"/{expected}"), operation.path
        if operation.body is not None:
            ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
            assert {"413", "422"} <= set(responses), operation.path
    streams = {
        path
        for path, methods in document["paths"].items()
        for entry in methods.values()
        if "text/event-stream" in entry["responses"].get("200", {}).get("content", {})
    }
    assert streams == {
        "/v1/queries/{id}/stream",
        "/openai/v1/chat/completions",
        "/openai/v1/responses",
        "/v1/queries/{id}/events",
        "/stream/{queryName}",
        "/stream",
        "/events",
        "/events/{queryId}",
        "/v1/broker/events",
        "/v1/broker/events/{queryId}",
        "/v1/broker/chunks",
    }


async def test_the_broker_serves_the_checked_in_document(running: Any) -> None:
    async with running.http.get(f"{running.url}/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        served = await response.json()
    assert served == msgspec.json.decode(CHECKED_IN.read_bytes())
    app = running.brokers[0].app
    assert app is not None
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {
        (method.upper(), path) for path, methods in served["paths"].items() for method in methods
    }
    assert registered == documented
