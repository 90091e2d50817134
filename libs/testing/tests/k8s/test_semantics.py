"""Server rules a controller can observe, checked over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ark_mesh.testing.k8s import FaultRule, KubeEmulator
from ark_mesh.testing.k8s.process import EmulatorProcess
from ark_mesh.testing.k8s.tracking import ObjectTracker

QUERIES = "/apis/ark.mckinsey.com/v1alpha1/namespaces/default/queries"
GADGETS = "/apis/example.com/v1/gadgets"
MERGE = "application/merge-patch+json"


class Api:
    """Plain HTTP calls: status code and decoded body, nothing hidden."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, self.base + path, data=data, headers={"Content-Type": content_type}
        ) as response:
            text = await response.text()
            decoded = json.loads(text) if text and text.startswith(("{", "[")) else text
            return response.status, decoded, dict(response.headers)

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        status, decoded, _ = await self.call(method, path, body, **kw)
        assert status < 300, (status, decoded)
        result: dict[str, Any] = decoded
        return result

    async def watch_lines(self, path: str) -> list[dict[str, Any]]:
        async with self.session.get(self.base + path) as response:
            assert response.status == 200
            return [json.loads(line) for line in (await response.text()).splitlines() if line]


@pytest.fixture
async def api(kube_emulator: KubeEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, kube_emulator.url)


def query(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": name, **meta},
        "spec": {"input": "hi", "target": {"type": "agent", "name": "a1"}},
    }


async def test_generation_moves_only_with_spec(api: Api, kube_emulator: KubeEmulator) -> None:
    with ObjectTracker(kube_emulator, "queries", "default", "g1") as tracker:
        created = await api.ok("POST", QUERIES, query("g1"))
        assert created["metadata"]["generation"] == 1
        spec = await api.ok(
            "PATCH", f"{QUERIES}/g1", {"spec": {"input": "new"}}, content_type=MERGE
        )
        assert spec["metadata"]["generation"] == 2
        status = await api.ok(
            "PATCH", f"{QUERIES}/g1/status", {"status": {"phase": "running"}}, content_type=MERGE
        )
        assert status["metadata"]["generation"] == 2
        labelled = dict(status)
        labelled["metadata"] = {
            **status["metadata"],
            "labels": {"seen": "yes"},
            "annotations": {"a": "b"},
        }
        metadata_only = await api.ok("PUT", f"{QUERIES}/g1", labelled)
        assert metadata_only["metadata"]["generation"] == 2
        # a write that changes nothing stores nothing: same resourceVersion, no watch event
        same = await api.ok("PUT", f"{QUERIES}/g1", metadata_only)
        assert same["metadata"]["resourceVersion"] == metadata_only["metadata"]["resourceVersion"]

    assert tracker.generation_bumps == 1
    assert tracker.reconcile_triggers == 4  # ADDED + spec + status + metadata; not the no-op
    assert (tracker.spec_writes, tracker.status_writes, tracker.metadata_writes) == (1, 1, 1)
    activity = kube_emulator.activity("queries", "default", "g1")
    assert (activity.generation_bumps, activity.noop_writes, activity.status_writes) == (1, 1, 1)
    async with asyncio.timeout(30):
        await tracker.settle(quiet=0.2)


async def test_without_status_subresource_status_is_spec_like(api: Api) -> None:
    created = await api.ok(
        "POST",
        GADGETS,
        {
            "apiVersion": "example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "g"},
            "spec": {"level": 1},
            "status": {"seen": True},
        },
    )
    assert created["status"] == {"seen": True}  # kept: no status endpoint to own it
    bumped = await api.ok("PATCH", f"{GADGETS}/g", {"status": {"seen": False}}, content_type=MERGE)
    assert bumped["metadata"]["generation"] == 2
    status, _, _ = await api.call("GET", f"{GADGETS}/g/status")
    assert status == 404


async def test_status_subresource_resets_status_on_create_and_owns_it(api: Api) -> None:
    body = query("s1")
    body["status"] = {"phase": "done"}
    created = await api.ok("POST", QUERIES, body)
    assert "status" not in created
    replaced = await api.ok(
        "PUT",
        f"{QUERIES}/s1/status",
        {**created, "spec": {"input": "ignored"}, "status": {"phase": "queued"}},
    )
    assert replaced["status"] == {"phase": "queued"}
    assert replaced["spec"]["input"] == "hi"


async def test_updates_need_a_fresh_resource_version(api: Api) -> None:
    created = await api.ok("POST", QUERIES, query("u1"))
    no_version = dict(created)
    no_version["metadata"] = {
        k: v for k, v in created["metadata"].items() if k != "resourceVersion"
    }
    status, body, _ = await api.call("PUT", f"{QUERIES}/u1", no_version)
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    await api.ok("PATCH", f"{QUERIES}/u1", {"spec": {"input": "x"}}, content_type=MERGE)
    status, body, _ = await api.call("PUT", f"{QUERIES}/u1", created)
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on queries.ark.mckinsey.com "u1": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "u1", "group": "ark.mckinsey.com", "kind": "queries"}
    # a patch carrying a resourceVersion makes it a precondition
    status, body, _ = await api.call(
        "PATCH",
        f"{QUERIES}/u1",
        {"metadata": {"resourceVersion": "1"}, "spec": {"input": "y"}},
        content_type=MERGE,
    )
    assert status == 409


async def test_finalizers_block_deletion_and_no_new_ones_while_deleting(api: Api) -> None:
    await api.ok("POST", QUERIES, query("f1", finalizers=["example.com/a", "example.com/b"]))
    status, marked, _ = await api.call("DELETE", f"{QUERIES}/f1")
    assert status == 202
    assert marked["metadata"]["deletionTimestamp"]
    status, body, _ = await api.call(
        "PATCH",
        f"{QUERIES}/f1",
        {"metadata": {"finalizers": ["example.com/a", "example.com/b", "example.com/c"]}},
        content_type=MERGE,
    )
    assert status == 422
    assert "no new finalizers" in body["message"]
    await api.ok(
        "PATCH",
        f"{QUERIES}/f1",
        {"metadata": {"finalizers": ["example.com/b"]}},
        content_type=MERGE,
    )
    await api.ok("GET", f"{QUERIES}/f1")
    await api.ok("PATCH", f"{QUERIES}/f1", {"metadata": {"finalizers": None}}, content_type=MERGE)
    status, _, _ = await api.call("GET", f"{QUERIES}/f1")
    assert status == 404


async def test_namespaces_must_exist_and_deletion_empties_them(
    api: Api, kube_emulator: KubeEmulator
) -> None:
    status, body, _ = await api.call(
        "POST", "/apis/ark.mckinsey.com/v1alpha1/namespaces/nowhere/queries", query("q")
    )
    assert (status, body["message"]) == (404, 'namespaces "nowhere" not found')
    await api.ok(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    )
    path = "/apis/ark.mckinsey.com/v1alpha1/namespaces/team-a/queries"
    await api.ok("POST", path, query("plain"))
    await api.ok("POST", path, query("held", finalizers=["example.com/x"]))
    terminating = await api.ok("DELETE", "/api/v1/namespaces/team-a")
    assert terminating["status"]["phase"] == "Terminating"
    status, _, _ = await api.call("POST", path, query("late"))
    assert status == 403
    assert [i["metadata"]["name"] for i in (await api.ok("GET", path))["items"]] == ["held"]
    await api.ok("PATCH", f"{path}/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
    status, _, _ = await api.call("GET", "/api/v1/namespaces/team-a")
    assert status == 404


async def test_event_apis_share_one_resource(api: Api) -> None:
    await api.ok(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e1"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "c",
            "reportingInstance": "i",
            "action": "Run",
            "reason": "Started",
            "type": "Normal",
            "note": "hello",
            "regarding": {"kind": "Query", "name": "q1", "namespace": "default"},
        },
    )
    core = await api.ok(
        "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dq1"
    )
    assert [
        (e["message"], e["involvedObject"]["name"], e["reportingComponent"]) for e in core["items"]
    ] == [("hello", "q1", "c")]
    status, body, _ = await api.call(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e2"},
            "type": "Odd",
        },
    )
    assert status == 422
    assert {c["field"] for c in body["details"]["causes"]} == {
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "type",
    }


async def test_secret_string_data_is_folded_into_data(api: Api) -> None:
    created = await api.ok(
        "POST",
        "/api/v1/namespaces/default/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"token": "abc"},
        },
    )
    assert "stringData" not in created
    assert created["type"] == "Opaque"
    assert base64.b64decode(created["data"]["token"]) == b"abc"


async def test_unknown_fields_warn_by_default_and_fail_strictly(api: Api) -> None:
    body = query("w1")
    body["spec"]["bogus"] = 1
    status, created, headers = await api.call("POST", QUERIES, body)
    assert status == 201
    assert "bogus" not in created["spec"]
    assert headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'
    body["metadata"]["name"] = "w2"
    status, failed, _ = await api.call("POST", QUERIES + "?fieldValidation=Strict", body)
    assert status == 400
    assert 'strict decoding error: unknown field "spec.bogus"' in failed["message"]


async def test_crds_created_through_the_api_are_served_and_removed(api: Api) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.demo.io"},
        "spec": {
            "group": "demo.io",
            "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"n": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    created = await api.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert {c["type"] for c in created["status"]["conditions"]} == {"Established", "NamesAccepted"}
    discovery = await api.ok("GET", "/apis/demo.io/v1")
    assert [r["name"] for r in discovery["resources"]] == ["things"]
    path = "/apis/demo.io/v1/namespaces/default/things"
    await api.ok(
        "POST",
        path,
        {"apiVersion": "demo.io/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"n": 1}},
    )
    status, body, _ = await api.call(
        "POST",
        path,
        {
            "apiVersion": "demo.io/v1",
            "kind": "Thing",
            "metadata": {"name": "u"},
            "spec": {"n": "one"},
        },
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.n"
    await api.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.demo.io")
    status, _, _ = await api.call("GET", path)
    assert status == 404
    bad = dict(crd, metadata={"name": "wrong"})
    status, body, _ = await api.call(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.name"


async def test_served_versions_share_storage(api: Api) -> None:
    await api.ok(
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"color": "red"},
        },
    )
    old = await api.ok("GET", "/apis/example.com/v1beta1/namespaces/default/widgets/w")
    assert old["apiVersion"] == "example.com/v1beta1"
    assert old["spec"]["color"] == "red"


async def test_watch_filters_by_selector_and_reports_410(
    api: Api, kube_emulator: KubeEmulator
) -> None:
    start = (await api.ok("GET", QUERIES))["metadata"]["resourceVersion"]
    await api.ok("POST", QUERIES, query("x", labels={"team": "a"}))
    await api.ok(
        "PATCH", f"{QUERIES}/x", {"metadata": {"labels": {"team": "b"}}}, content_type=MERGE
    )
    await api.ok(
        "PATCH", f"{QUERIES}/x", {"metadata": {"labels": {"team": "a"}}}, content_type=MERGE
    )
    events = await api.watch_lines(
        f"{QUERIES}?watch=true&labelSelector=team%3Da&timeoutSeconds=1&resourceVersion={start}"
    )
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED"]
    initial = await api.watch_lines(
        f"{QUERIES}?watch=1&timeoutSeconds=1&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan"
    )
    assert [e["type"] for e in initial][:2] == ["ADDED", "BOOKMARK"]
    assert initial[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    kube_emulator.compact()
    gone = await api.watch_lines(f"{QUERIES}?watch=1&resourceVersion={start}")
    assert [e["type"] for e in gone] == ["ERROR"]
    assert (gone[0]["object"]["code"], gone[0]["object"]["reason"]) == (410, "Expired")


async def test_bad_requests_name_the_problem(api: Api) -> None:
    status, body, _ = await api.call("GET", QUERIES + "?labelSelector=a%20in%20()")
    assert status == 400
    assert "values set can't be empty" in body["message"]
    status, body, _ = await api.call("GET", QUERIES + "?fieldSelector=spec.input%3Dx")
    assert status == 400
    assert "field label not supported: spec.input" in body["message"]
    status, body, _ = await api.call("POST", QUERIES, query("Bad_Name"))
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    status, body, _ = await api.call("POST", QUERIES, {**query("k"), "kind": "Agent"})
    assert status == 400
    assert "does not match the expected kind" in body["message"]
    status, body, _ = await api.call("GET", "/apis/ark.mckinsey.com/v1alpha1/nothings")
    assert (status, body["reason"]) == (404, "NotFound")


async def test_faults_are_served_as_the_real_server_would(
    api: Api, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.faults.fail(429, verb="list", retry_after=7)
    status, body, headers = await api.call("GET", QUERIES)
    assert (status, body["reason"], headers["Retry-After"]) == (429, "TooManyRequests", "7")
    assert body["details"]["retryAfterSeconds"] == 7
    kube_emulator.faults.fail(500, verb="create", path="/queries$", times=2)
    for _ in range(2):
        status, body, _ = await api.call("POST", QUERIES, query("z"))
        assert (status, body["reason"]) == (500, "InternalError")
    await api.ok("POST", QUERIES, query("z"))
    assert kube_emulator.faults.pending == []
    assert [r.injected for r in kube_emulator.log.select(verb="create", resource="queries")] == [
        True,
        True,
        False,
    ]


async def test_a_dropped_watch_ends_without_a_clean_chunked_end(
    api: Api, kube_emulator: KubeEmulator
) -> None:
    kube_emulator.faults.drop_watch(after_events=1)
    await api.ok("POST", QUERIES, query("d1"))
    await api.ok("POST", QUERIES, query("d2"))
    async with api.session.get(f"{kube_emulator.url}{QUERIES}?watch=1") as response:
        first = await response.content.readline()
        assert json.loads(first)["object"]["metadata"]["name"] == "d1"
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.content.read()


async def test_subprocess_emulator_is_driven_over_its_control_endpoint(
    kube_emulator_process: EmulatorProcess,
) -> None:
    emulator = kube_emulator_process
    async with aiohttp.ClientSession() as session:
        api = Api(session, emulator.url)
        await api.ok("POST", QUERIES, query("p1"))
        await emulator.inject(FaultRule(status=409, verb="patch"))
        status, _, _ = await api.call(
            "PATCH", f"{QUERIES}/p1/status", {"status": {"phase": "running"}}, content_type=MERGE
        )
        assert status == 409
        await api.ok(
            "PATCH", f"{QUERIES}/p1/status", {"status": {"phase": "running"}}, content_type=MERGE
        )
        activity = await emulator.activity("queries", "default", "p1")
        assert (activity.creates, activity.status_writes, activity.generation) == (1, 1, 1)

        watch = asyncio.create_task(api.watch_lines(f"{QUERIES}?watch=1&timeoutSeconds=30"))
        async with asyncio.timeout(30):
            assert await emulator.wait_for_watches(1) == 1
        assert await emulator.drop_watches() == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            await watch
        requests = await emulator.requests()
        assert any(r["verb"] == "watch" for r in requests)
