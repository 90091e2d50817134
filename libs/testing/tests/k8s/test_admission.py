"""The emulator calls admission webhooks as kube-apiserver does (rules, TLS, order, failures).

A small HTTPS webhook server, scripted per test, records every AdmissionReview it receives;
requests go to the emulator over plain HTTP like any client's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ark_mesh.controller.admission import ServingCertificate, self_signed
from ark_mesh.testing.k8s.emulator import KubeEmulator
from ark_mesh.testing.nats_server import free_port

WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def allow(request: dict[str, Any]) -> dict[str, Any]:
    return {"uid": request["uid"], "allowed": True}


@dataclass
class Webhook:
    """An HTTPS webhook server: ``answers[path]`` decides, ``seen[path]`` records requests."""

    certificate: ServingCertificate
    port: int
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    delay: float = 0.0

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.certificate.ca_pem).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.seen.setdefault(request.path, []).append(review["request"])
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.get(request.path, allow)(review["request"])
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}
        )


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    certificate = self_signed(["127.0.0.1"])
    certificate.write(tmp_path / "certs")
    hook = Webhook(certificate, free_port())
    app = web.Application()
    app.router.add_post("/{path:.*}", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "certs" / "tls.crt", tmp_path / "certs" / "tls.key")
    await web.TCPSite(runner, "127.0.0.1", hook.port, ssl_context=context).start()
    yield hook
    await runner.cleanup()


@dataclass
class Api:
    session: aiohttp.ClientSession
    base: str

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any, Mapping[str, str]]:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method, f"{self.base}{path}", data=data, headers={"Content-Type": content_type}
        ) as response:
            return response.status, await response.json(), response.headers

    async def register(self, kind: str, *webhooks: dict[str, Any]) -> None:
        path = MUTATING if kind == "Mutating" else VALIDATING
        status, body, _ = await self.call(
            "POST",
            path,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": f"{kind}WebhookConfiguration",
                "metadata": {"name": str(webhooks[0]["name"])},
                "webhooks": list(webhooks),
            },
        )
        assert status == 201, body


@pytest.fixture
async def api(kube_emulator: KubeEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, kube_emulator.url)


def hook(
    webhook: Webhook, name: str, path: str, *, resources: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"url": webhook.url(path), "caBundle": webhook.ca_bundle},
        "rules": [
            {
                "apiGroups": ["example.com"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources or ["widgets"],
            }
        ],
        **extra,
    }


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"color": "red", **spec},
    }


def patch_response(request: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": request["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(operations).encode()).decode(),
    }


async def test_mutating_then_schema_then_validating(api: Api, webhook: Webhook) -> None:
    webhook.answers["/mutate"] = lambda r: patch_response(
        r, [{"op": "add", "path": "/spec/color", "value": "green"}]
    )
    await api.register("Mutating", hook(webhook, "m.example.com", "/mutate"))
    await api.register("Validating", hook(webhook, "v.example.com", "/validate"))

    status, created, _ = await api.call("POST", WIDGETS, widget("w", bogus=True))
    assert status == 201
    assert created["spec"] == {"color": "green", "size": 1}  # patched, defaulted, pruned
    mutated = webhook.seen["/mutate"][0]
    assert mutated["operation"] == "CREATE"
    assert mutated["object"]["spec"] == {"color": "red", "bogus": True}  # before pruning
    assert mutated["oldObject"] is None
    validated = webhook.seen["/validate"][0]
    assert validated["object"]["spec"] == {"color": "green", "size": 1}  # as it will be stored
    assert validated["object"]["metadata"]["uid"]
    assert (validated["namespace"], validated["name"]) == ("default", "w")
    assert validated["resource"] == {"group": "example.com", "version": "v1", "resource": "widgets"}


async def test_a_denial_is_returned_as_kube_apiserver_renders_it(
    api: Api, webhook: Webhook
) -> None:
    webhook.answers["/validate"] = lambda r: {
        "uid": r["uid"],
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": "size must be even"},
        "warnings": ["widgets are deprecated"],
    }
    await api.register("Validating", hook(webhook, "v.example.com", "/validate"))
    status, body, _ = await api.call("POST", WIDGETS, widget("w", size=3))
    assert status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'admission webhook "v.example.com" denied the request: size must be even'
    )
    status, _, _ = await api.call("GET", f"{WIDGETS}/w")
    assert status == 404

    webhook.answers["/validate"] = lambda r: {"uid": r["uid"], "allowed": False}
    status, body, _ = await api.call("POST", WIDGETS, widget("w"))
    assert (status, body["message"]) == (
        400,
        'admission webhook "v.example.com" denied the request without explanation',
    )


async def test_warnings_reach_the_client_as_warning_headers(api: Api, webhook: Webhook) -> None:
    webhook.answers["/validate"] = lambda r: {
        "uid": r["uid"],
        "allowed": True,
        "warnings": ['color "red" is deprecated', "second"],
    }
    await api.register("Validating", hook(webhook, "v.example.com", "/validate"))
    status, _, headers = await api.call("POST", WIDGETS, widget("w"))
    assert status == 201
    assert headers["Warning"] == '299 - "color \\"red\\" is deprecated", 299 - "second"'


async def test_updates_and_patches_are_admitted_with_the_old_object(
    api: Api, webhook: Webhook
) -> None:
    status, _, _ = await api.call("POST", WIDGETS, widget("w"))
    assert status == 201
    webhook.answers["/validate"] = lambda r: (
        {"uid": r["uid"], "allowed": False, "status": {"code": 403, "message": "no blue"}}
        if r["object"]["spec"]["color"] == "blue"
        else allow(r)
    )
    await api.register("Validating", hook(webhook, "v.example.com", "/validate"))

    status, body, _ = await api.call(
        "PATCH", f"{WIDGETS}/w", {"spec": {"color": "blue"}}, "application/merge-patch+json"
    )
    assert (status, body["message"]) == (
        403,
        'admission webhook "v.example.com" denied the request: no blue',
    )
    status, patched, _ = await api.call(
        "PATCH", f"{WIDGETS}/w", {"spec": {"size": 4}}, "application/merge-patch+json"
    )
    assert (status, patched["spec"]["size"]) == (200, 4)
    review = webhook.seen["/validate"][-1]
    assert review["operation"] == "UPDATE"
    assert review["oldObject"]["spec"]["size"] == 1
    assert review["object"]["spec"]["size"] == 4


async def test_status_writes_reach_only_webhooks_whose_rule_names_status(
    api: Api, webhook: Webhook
) -> None:
    await api.register("Validating", hook(webhook, "main.example.com", "/main"))
    await api.register(
        "Validating", hook(webhook, "status.example.com", "/status", resources=["widgets/status"])
    )
    await api.call("POST", WIDGETS, widget("w"))
    status, _, _ = await api.call(
        "PATCH",
        f"{WIDGETS}/w/status",
        {"status": {"phase": "Ready"}},
        "application/merge-patch+json",
    )
    assert status == 200
    assert len(webhook.seen["/main"]) == 1  # the create only
    assert [r["subResource"] for r in webhook.seen["/status"]] == ["status"]


async def test_object_selector_limits_what_is_sent(api: Api, webhook: Webhook) -> None:
    await api.register(
        "Validating",
        hook(webhook, "v.example.com", "/validate", objectSelector={"matchLabels": {"team": "a"}}),
    )
    labelled = widget("labelled")
    labelled["metadata"]["labels"] = {"team": "a"}
    await api.call("POST", WIDGETS, labelled)
    await api.call("POST", WIDGETS, widget("plain"))
    assert [r["name"] for r in webhook.seen["/validate"]] == ["labelled"]


@pytest.mark.parametrize(("failure_policy", "expected_status"), [("Fail", 500), ("Ignore", 201)])
async def test_an_unreachable_webhook_fails_or_is_ignored_by_policy(
    api: Api, webhook: Webhook, failure_policy: str, expected_status: int
) -> None:
    dead = hook(webhook, "dead.example.com", "/x", failurePolicy=failure_policy)
    dead["clientConfig"]["url"] = f"https://127.0.0.1:{free_port()}/x"
    await api.register("Validating", dead)
    status, body, _ = await api.call("POST", WIDGETS, widget("w"))
    assert status == expected_status
    if failure_policy == "Fail":
        assert body["reason"] == "InternalError"
        assert body["message"].startswith(
            'Internal error occurred: failed calling webhook "dead.example.com": failed to call '
            f'webhook: Post "{dead["clientConfig"]["url"]}?timeout=10s": '
        )


async def test_the_server_certificate_must_chain_to_the_ca_bundle(
    api: Api, webhook: Webhook
) -> None:
    stranger = hook(webhook, "v.example.com", "/validate")
    other_ca = self_signed(["127.0.0.1"]).ca_pem
    stranger["clientConfig"]["caBundle"] = base64.b64encode(other_ca).decode()
    await api.register("Validating", stranger)
    status, body, _ = await api.call("POST", WIDGETS, widget("w"))
    assert status == 500
    assert "certificate verify failed" in body["message"]
    assert "/validate" not in webhook.seen


async def test_a_slow_webhook_times_out(api: Api, webhook: Webhook) -> None:
    webhook.delay = 2.0
    await api.register("Validating", hook(webhook, "slow.example.com", "/slow", timeoutSeconds=1))
    status, body, _ = await api.call("POST", WIDGETS, widget("w"))
    assert status == 500
    assert body["message"].endswith('?timeout=1s": context deadline exceeded')


async def test_dry_run_needs_a_webhook_without_side_effects(api: Api, webhook: Webhook) -> None:
    await api.register("Validating", hook(webhook, "v.example.com", "/v", sideEffects="Some"))
    status, body, _ = await api.call("POST", f"{WIDGETS}?dryRun=All", widget("w"))
    assert (status, body["message"]) == (
        400,
        'admission webhook "v.example.com" does not support dry run',
    )
