"""Tenants isolated on the bus (issue 13, decision 55): NATS users and permissions, end to end.

The mesh runs with ``nats_auth`` (a user per service and per tenant, passwords in files, the
permissions of :mod:`ark_mesh.bus.permissions`), every service a real process. Tenant A's own
NATS client reads its own data and is refused, by the server, everything of tenant B: core
subscriptions and publishes on ``ark.B.>``, B's KV entries and B's stream messages through the
JetStream API, including a consumer whose create subject names A but whose body filters B. Both
tenants' queries still resolve through the broker. A service with a wrong password never becomes
ready and says why in its log.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import nats
import nats.errors
import openai
import pytest
from nats.js import api

from ark_mesh.broker import hash_token
from ark_mesh.bus.permissions import service_user
from ark_mesh.contracts import subjects
from ark_mesh.devmesh.natsauth import MeshCredentials
from ark_mesh.kube.client import ApiResource
from ark_mesh.testing import ark_objects
from ark_mesh.testing.fake_llm import Match, Reply, Rule
from ark_mesh.testing.nats_server import NatsServer, free_port
from ark_mesh.testing.processes import ServiceProcess, ServiceProcessError

pytestmark = pytest.mark.slow

NAMESPACES = ApiResource(
    group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False
)

TENANT_A = "default"
TENANT_B = "team-b"
TOKENS = {TENANT_A: "token-a", TENANT_B: "token-b"}
BROKER = {
    "broker": {
        "auth": {
            "mode": "token",
            "tokens": [
                {"tenant": tenant, "sha256": hash_token(token)} for tenant, token in TOKENS.items()
            ],
        }
    }
}


class Violations:
    """What nats-py's error callback heard: the server's permission violations."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.seen = asyncio.Event()

    async def record(self, error: Exception) -> None:
        self.errors.append(str(error))
        self.seen.set()

    def heard(self, fragment: str) -> bool:
        # nats-py reports the subject lower-cased.
        return any(fragment.lower() in error.lower() for error in self.errors)

    async def expect(self, fragment: str, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not self.heard(fragment):
                self.seen.clear()
                if not self.heard(fragment):
                    await self.seen.wait()


async def _run_query(http: aiohttp.ClientSession, base: str, tenant: str, text: str) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[tenant]}"}
    async with http.post(
        f"{base}/v1/queries",
        json={"input": text, "target": {"type": "agent", "name": "assistant"}},
        headers=headers,
    ) as response:
        assert response.status == 202, await response.text()
        accepted = await response.json()
    async with asyncio.timeout(120):
        while True:
            async with http.get(f"{base}/v1/queries/{accepted['id']}", headers=headers) as got:
                assert got.status == 200, await got.text()
                body = await got.json()
            if body["status"].get("phase") in ("done", "error", "canceled"):
                return body
            await asyncio.sleep(0.1)


async def _cancel_a_running_query(http: aiohttp.ClientSession, base: str, tenant: str) -> Any:
    """A query that streams slowly, canceled through the broker once it runs: the cancel goes
    over core NATS and KV ``ark-cancel`` from the broker's user to the reconciler's."""
    headers = {"Authorization": f"Bearer {TOKENS[tenant]}"}
    async with http.post(
        f"{base}/v1/queries",
        json={"input": "endless story", "target": {"type": "agent", "name": "assistant"}},
        headers=headers,
    ) as response:
        assert response.status == 202, await response.text()
        url = f"{base}/v1/queries/{(await response.json())['id']}"
    async with asyncio.timeout(60):
        while True:
            async with http.get(url, headers=headers) as got:
                phase = (await got.json())["status"].get("phase")
            if phase == "running":
                break
            assert phase in (None, "pending"), phase
            await asyncio.sleep(0.05)
    async with http.post(f"{url}/cancel", headers=headers) as response:
        assert response.status == 202, await response.text()
    async with asyncio.timeout(60):
        while True:
            async with http.get(url, headers=headers) as got:
                body = await got.json()
            if body["status"].get("phase") in ("done", "error", "canceled"):
                return body
            await asyncio.sleep(0.05)


async def _api(nc: nats.NATS, subject: str, body: dict[str, Any] | None = None) -> Any:
    reply = await nc.request(subject, json.dumps(body or {}).encode(), timeout=3)
    return json.loads(reply.data) if reply.data else {"headers": dict(reply.headers or {})}


async def test_a_tenant_reads_only_its_own_subjects_and_both_tenants_resolve(start_mesh) -> None:
    mesh, _ = await start_mesh(
        preset="scale-strict",
        overrides=BROKER,
        nats_auth=True,
        tenants=(TENANT_A, TENANT_B),
        streaming=True,
    )
    assert mesh.credentials is not None
    assert mesh.fake_llm is not None
    await mesh.fake_llm.control.add_rule(
        Rule(match=Match(user="endless"), reply=Reply(content="tok " * 2000, chunk_delay=0.02))
    )
    async with await mesh.client() as client:
        await client.create_object(
            NAMESPACES,
            None,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT_B}},
        )
        await client.create(
            ark_objects.model("default", TENANT_B, mesh.fake_llm.base_url, api_key="test-key")
        )
        await client.create(ark_objects.agent("assistant", TENANT_B))
    base = f"http://127.0.0.1:{mesh.services['broker'].config['http']['port']}"
    async with aiohttp.ClientSession() as http:
        done_a, done_b = await asyncio.gather(
            _run_query(http, base, TENANT_A, "Question of tenant A"),
            _run_query(http, base, TENANT_B, "Question of tenant B"),
        )
    assert done_a["status"]["phase"] == "done", done_a
    assert done_b["status"]["phase"] == "done", done_b
    assert "Question of tenant B" in done_b["status"]["response"]["content"]
    id_a, id_b = done_a["id"], done_b["id"]
    async with aiohttp.ClientSession() as http:
        canceled = await _cancel_a_running_query(http, base, TENANT_A)
    assert canceled["status"]["phase"] == "canceled", canceled
    # The responses and embeddings reconcilers, and KV ark-responses, under their own users.
    openai_a = openai.AsyncOpenAI(
        base_url=f"{base}/openai/v1", api_key=TOKENS[TENANT_A], max_retries=0
    )
    first = await openai_a.responses.create(model="model/default", input="My name is Ada.")
    assert first.status == "completed"
    follow = await openai_a.responses.create(
        model="model/default", input="And again?", previous_response_id=first.id
    )
    assert follow.status == "completed"
    vectors = await openai_a.embeddings.create(model="model/default", input=["a", "b"])
    assert len(vectors.data) == 2
    await openai_a.close()

    violations = Violations()
    nc = await nats.connect(
        mesh.nats_urls, error_cb=violations.record, **mesh.credentials.tenant_options(TENANT_A)
    )
    try:
        js = nc.jetstream()
        # Its own data: the chunks of its query through a consumer filtered to its subjects,
        # and its read-model entry by direct get.
        own = await js.subscribe(
            subjects.query_chunk(TENANT_A, id_a),
            stream=subjects.ARK_CHUNKS,
            ordered_consumer=True,
            config=api.ConsumerConfig(name=f"a-{uuid.uuid4().hex}"),
        )
        first = await own.next_msg(timeout=10)
        assert first.subject == subjects.query_chunk(TENANT_A, id_a)
        await own.unsubscribe()
        entry = await nc.request(
            f"$JS.API.DIRECT.GET.KV_{subjects.QUERIES_BUCKET}.$KV.{subjects.QUERIES_BUCKET}."
            f"{TENANT_A}.{id_a}",
            b"",
            timeout=5,
        )
        assert entry.data
        assert (entry.headers or {}).get("Nats-Subject", "").endswith(id_a)
        assert violations.errors == []

        # Tenant B's subjects: refused by the server.
        await nc.subscribe(f"{subjects.ROOT}.{TENANT_B}.>")
        await violations.expect(f'subscription to "ark.{TENANT_B}.>"')
        await nc.publish(subjects.query_cancel(TENANT_B, id_b), b"{}")
        await nc.publish(subjects.work_query(TENANT_B), b"{}")
        await nc.flush()
        await violations.expect(f'publish to "ark.{TENANT_B}.query.{id_b}.cancel"')
        await violations.expect(f'publish to "ark.{TENANT_B}.work.query"')

        # B's KV entry and B's stream messages through the JetStream API.
        kv_b = f"$JS.API.DIRECT.GET.KV_{subjects.QUERIES_BUCKET}.$KV.{subjects.QUERIES_BUCKET}.{TENANT_B}.{id_b}"
        chunk_b = subjects.query_chunk(TENANT_B, id_b)
        for subject, body in (
            (kv_b, None),
            (f"$JS.API.DIRECT.GET.{subjects.ARK_CHUNKS}.{chunk_b}", None),
            (f"$JS.API.DIRECT.GET.{subjects.ARK_CHUNKS}", {"last_by_subj": chunk_b}),
            (f"$JS.API.STREAM.MSG.GET.{subjects.ARK_CHUNKS}", {"last_by_subj": chunk_b}),
            (
                f"$JS.API.CONSUMER.CREATE.{subjects.ARK_CHUNKS}.b-reader.{chunk_b}",
                {"stream_name": subjects.ARK_CHUNKS, "config": {"filter_subject": chunk_b}},
            ),
            (
                f"$JS.API.CONSUMER.CREATE.{subjects.ARK_CHUNKS}",
                {"config": {"filter_subject": chunk_b}},
            ),
            (
                f"$JS.API.STREAM.INFO.{subjects.ARK_CHUNKS}",
                {"subjects_filter": f"ark.{TENANT_B}.>"},
            ),
        ):
            with pytest.raises(nats.errors.TimeoutError):
                await _api(nc, subject, body)
            await violations.expect(f'publish to "{subject}"')

        # A create subject that names A's subjects, with a body that filters B's: the server
        # compares the two and refuses.
        name = f"a-{uuid.uuid4().hex}"
        refused = await _api(
            nc,
            f"$JS.API.CONSUMER.CREATE.{subjects.ARK_CHUNKS}.{name}.ark.{TENANT_A}.query.*.chunk",
            {
                "stream_name": subjects.ARK_CHUNKS,
                "config": {
                    "name": name,
                    "filter_subject": chunk_b,
                    "deliver_subject": f"_INBOX_{TENANT_A}.{name}",
                    "ack_policy": "none",
                },
            },
        )
        assert "did not match filtered subject" in refused["error"]["description"], refused
    finally:
        await nc.close()

    # B's query was neither canceled nor changed by any of it.
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TOKENS[TENANT_B]}"}
        async with http.get(f"{base}/v1/queries/{id_b}", headers=headers) as response:
            assert (await response.json())["status"]["phase"] == "done"
    for process in mesh.services.values():
        assert "permission denied" not in process.log_path.read_text(errors="replace"), process.name


async def test_a_service_with_a_wrong_password_is_never_ready_and_says_why(tmp_path) -> None:
    credentials = MeshCredentials(tmp_path / "nats-auth")
    server = NatsServer(tmp_path / "nats", extra_args=("-c", str(credentials.write())))
    await server.astart()
    try:
        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-the-password\n")
        broker = ServiceProcess(
            "broker",
            "ark_mesh.broker",
            {
                "bus": {
                    "connection": {
                        "servers": [server.url],
                        "auth": {"user": service_user("broker"), "password": {"file": str(wrong)}},
                    }
                },
                "http": {"host": "127.0.0.1", "port": free_port()},
                "auth": {"mode": "none", "defaultTenant": TENANT_A},
            },
            tmp_path,
        )
        with pytest.raises(ServiceProcessError) as failed:
            await broker.start(ready_within=60)
        log = broker.log_path.read_text(errors="replace")
        assert "nats refused the credentials" in log, log
        assert "user 'ark-broker'" in log, log
        assert "exited with 1" in str(failed.value)
    finally:
        await server.astop()
