"""Shared contract cases: each runs through the real kubectl and through kubernetes-asyncio.

A case receives a :class:`Client` — ``KubectlClient`` drives the real kubectl binary,
``AsyncioClient`` kubernetes-asyncio's generated API classes, and failures of either surface
as :class:`KubeFailureError` with the HTTP code and the server's reason — and the emulator; it must not care which
client it got. If a case passes with one client and fails with the other, the emulator
answers something one of them does not accept — which is exactly what these tests catch.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio import watch as k8s_watch
from kubernetes_asyncio.client.exceptions import ApiException

from ark_mesh.testing.k8s import KubeEmulator
from ark_mesh.testing.k8s.kubectl import Kubectl, KubectlError

# --- the two clients behind one interface ---------------------------------------------------


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str

    @property
    def kubectl_name(self) -> str:
        return f"{self.plural}.{self.version}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


QUERIES = Res("ark.mckinsey.com", "v1alpha1", "queries")
WIDGETS = Res("example.com", "v1", "widgets")
CONFIGMAPS = Res("", "v1", "configmaps")


class KubeFailureError(Exception):
    def __init__(self, code: int | None, reason: str | None, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class Client(Protocol):
    name: str

    async def create(
        self, res: Res, obj: Mapping[str, Any], namespace: str = "default"
    ) -> dict[str, Any]: ...

    async def get(self, res: Res, name: str, namespace: str = "default") -> dict[str, Any]: ...

    async def list(
        self,
        res: Res,
        namespace: str | None = "default",
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]: ...

    async def patch(
        self,
        res: Res,
        name: str,
        body: Any,
        patch_type: str,
        *,
        status: bool = False,
        namespace: str = "default",
    ) -> dict[str, Any]: ...

    async def replace(
        self, res: Res, obj: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]: ...

    async def delete(self, res: Res, name: str, namespace: str = "default") -> None: ...

    async def watch(
        self,
        res: Res,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int,
        bookmarks: bool = False,
    ) -> list[dict[str, Any]]: ...


class KubectlClient:
    name = "kubectl"

    def __init__(self, kubectl: Kubectl, workdir: Path) -> None:
        self.kubectl = kubectl
        self.workdir = workdir

    async def _json(self, *args: str, stdin: str | None = None) -> Any:
        try:
            return await self.kubectl.json(*args, stdin=stdin)
        except KubectlError as exc:
            raise KubeFailureError(exc.code, exc.reason, exc.message) from exc

    async def create(
        self, res: Res, obj: Mapping[str, Any], namespace: str = "default"
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "create", "-n", namespace, "-f", "-", stdin=json.dumps(obj)
        )
        return result

    async def get(self, res: Res, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = await self._json("get", res.kubectl_name, name, "-n", namespace)
        return result

    async def list(
        self,
        res: Res,
        namespace: str | None = "default",
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        args = ["get", res.kubectl_name]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if label_selector:
            args += ["-l", label_selector]
        if field_selector:
            args += ["--field-selector", field_selector]
        if page_size:
            args += ["--chunk-size", str(page_size)]
        result = await self._json(*args)
        items: list[dict[str, Any]] = result["items"]
        return items

    async def patch(
        self,
        res: Res,
        name: str,
        body: Any,
        patch_type: str,
        *,
        status: bool = False,
        namespace: str = "default",
    ) -> dict[str, Any]:
        args = [
            "patch",
            res.kubectl_name,
            name,
            "-n",
            namespace,
            "--type",
            patch_type,
            "-p",
            json.dumps(body),
        ]
        if status:
            args.append("--subresource=status")
        result: dict[str, Any] = await self._json(*args)
        return result

    async def replace(
        self, res: Res, obj: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        args = ["replace", "-f", "-"]
        if status:
            args.append("--subresource=status")
        result: dict[str, Any] = await self._json(*args, stdin=json.dumps(obj))
        return result

    async def delete(self, res: Res, name: str, namespace: str = "default") -> None:
        try:
            await self.kubectl.run(
                "delete", res.kubectl_name, name, "-n", namespace, "--wait=false"
            )
        except KubectlError as exc:
            raise KubeFailureError(exc.code, exc.reason, exc.message) from exc

    async def watch(
        self,
        res: Res,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int,
        bookmarks: bool = False,
    ) -> list[dict[str, Any]]:
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        path = res.path(namespace) + "?" + urllib.parse.urlencode(query)
        try:
            raw = await self.kubectl.raw(path)
        except KubectlError as exc:
            raise KubeFailureError(exc.code, exc.reason, exc.message) from exc
        events = [json.loads(line) for line in raw.splitlines() if line.strip()]
        for event in events:
            if event["type"] == "ERROR":
                status = event["object"]
                raise KubeFailureError(status["code"], status["reason"], status["message"])
        return events


class AsyncioClient:
    name = "kubernetes-asyncio"

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self.api = api
        self.custom = k8s_client.CustomObjectsApi(api)
        self.core = k8s_client.CoreV1Api(api)

    @staticmethod
    def _failure(exc: ApiException) -> KubeFailureError:
        try:
            status = json.loads(exc.body)
        except (TypeError, ValueError):
            return KubeFailureError(exc.status, None, str(exc.reason))
        return KubeFailureError(exc.status, status.get("reason"), status.get("message", ""))

    def _plain(self, obj: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)
        return result

    async def create(
        self, res: Res, obj: Mapping[str, Any], namespace: str = "default"
    ) -> dict[str, Any]:
        try:
            if res.group:
                return dict(
                    await self.custom.create_namespaced_custom_object(
                        res.group, res.version, namespace, res.plural, dict(obj)
                    )
                )
            return self._plain(await self.core.create_namespaced_config_map(namespace, dict(obj)))
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def get(self, res: Res, name: str, namespace: str = "default") -> dict[str, Any]:
        try:
            if res.group:
                return dict(
                    await self.custom.get_namespaced_custom_object(
                        res.group, res.version, namespace, res.plural, name
                    )
                )
            return self._plain(await self.core.read_namespaced_config_map(name, namespace))
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def list(
        self,
        res: Res,
        namespace: str | None = "default",
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        if page_size:
            kwargs["limit"] = page_size
        try:
            while True:
                if token:
                    kwargs["_continue"] = token
                if res.group and namespace:
                    page = await self.custom.list_namespaced_custom_object(
                        res.group, res.version, namespace, res.plural, **kwargs
                    )
                elif res.group:
                    page = await self.custom.list_cluster_custom_object(
                        res.group, res.version, res.plural, **kwargs
                    )
                elif namespace:
                    page = self._plain(
                        await self.core.list_namespaced_config_map(namespace, **kwargs)
                    )
                else:
                    page = self._plain(await self.core.list_config_map_for_all_namespaces(**kwargs))
                items.extend(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    return items
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def patch(
        self,
        res: Res,
        name: str,
        body: Any,
        patch_type: str,
        *,
        status: bool = False,
        namespace: str = "default",
    ) -> dict[str, Any]:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        try:
            if res.group:
                method = (
                    self.custom.patch_namespaced_custom_object_status
                    if status
                    else self.custom.patch_namespaced_custom_object
                )
                return dict(
                    await method(
                        res.group,
                        res.version,
                        namespace,
                        res.plural,
                        name,
                        body,
                        _content_type=content_type,
                    )
                )
            return self._plain(
                await self.core.patch_namespaced_config_map(
                    name, namespace, body, _content_type=content_type
                )
            )
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def replace(
        self, res: Res, obj: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        try:
            if res.group:
                method = (
                    self.custom.replace_namespaced_custom_object_status
                    if status
                    else self.custom.replace_namespaced_custom_object
                )
                return dict(
                    await method(
                        res.group,
                        res.version,
                        meta["namespace"],
                        res.plural,
                        meta["name"],
                        dict(obj),
                    )
                )
            return self._plain(
                await self.core.replace_namespaced_config_map(
                    meta["name"], meta["namespace"], dict(obj)
                )
            )
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def delete(self, res: Res, name: str, namespace: str = "default") -> None:
        try:
            if res.group:
                await self.custom.delete_namespaced_custom_object(
                    res.group, res.version, namespace, res.plural, name
                )
            else:
                await self.core.delete_namespaced_config_map(name, namespace)
        except ApiException as exc:
            raise self._failure(exc) from exc

    async def watch(
        self,
        res: Res,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int,
        bookmarks: bool = False,
    ) -> list[dict[str, Any]]:
        assert res.group, "the contract cases watch custom resources"
        events: list[dict[str, Any]] = []
        watcher = k8s_watch.Watch()
        if namespace:
            func, args = (
                self.custom.list_namespaced_custom_object,
                (res.group, res.version, namespace, res.plural),
            )
        else:
            func, args = (
                self.custom.list_cluster_custom_object,
                (res.group, res.version, res.plural),
            )
        try:
            async with watcher.stream(
                func,
                *args,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                allow_watch_bookmarks=bookmarks,
            ) as stream:
                async for event in stream:
                    events.append({"type": event["type"], "object": event["raw_object"]})
        except ApiException as exc:
            code = exc.status
            reason = str(exc.reason).split(":")[0]
            raise KubeFailureError(code, reason, str(exc.reason)) from exc
        return events


@pytest.fixture(params=["kubectl", "kubernetes-asyncio"])
async def client(
    request: pytest.FixtureRequest, kube_emulator: KubeEmulator, tmp_path: Path
) -> AsyncIterator[Client]:
    if request.param == "kubectl":
        kubectl = Kubectl(kube_emulator.kubeconfig_path, cache_dir=tmp_path / "kube-cache")
        yield KubectlClient(kubectl, tmp_path)
        return
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(kube_emulator.kubeconfig_path), client_configuration=configuration
    )
    async with k8s_client.ApiClient(configuration=configuration) as api:
        yield AsyncioClient(api)


# --- the cases ----------------------------------------------------------------------------

Case = Callable[[Client, KubeEmulator], Awaitable[None]]
CASES: list[Case] = []


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def query(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"input": "hello", "target": {"type": "agent", "name": "a1"}}
    body.update(spec)
    return {
        "apiVersion": "ark.mckinsey.com/v1alpha1",
        "kind": "Query",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


def widget(
    name: str, color: str = "red", labels: dict[str, str] | None = None, namespace: str = "default"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": meta,
        "spec": {"color": color},
    }


async def expect_failure(
    awaitable: Awaitable[Any], code: int, reason: str | None
) -> KubeFailureError:
    with pytest.raises(KubeFailureError) as caught:
        await awaitable
    assert caught.value.code == code, caught.value
    if reason is not None:
        assert caught.value.reason == reason, caught.value
    return caught.value


@case
async def create_get_and_server_fields(client: Client, kube: KubeEmulator) -> None:
    created = await client.create(QUERIES, query("q1"))
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert meta["resourceVersion"]
    assert meta["generation"] == 1
    assert created["spec"]["type"] == "user"  # the CRD's default was applied
    fetched = await client.get(QUERIES, "q1")
    assert fetched["metadata"]["uid"] == meta["uid"]
    assert fetched["metadata"]["resourceVersion"] == meta["resourceVersion"]


@case
async def create_twice_is_already_exists(client: Client, kube: KubeEmulator) -> None:
    await client.create(QUERIES, query("dup"))
    await expect_failure(client.create(QUERIES, query("dup")), 409, "AlreadyExists")


@case
async def get_missing_is_not_found(client: Client, kube: KubeEmulator) -> None:
    failure = await expect_failure(client.get(QUERIES, "nope"), 404, "NotFound")
    assert 'queries.ark.mckinsey.com "nope" not found' in failure.message


@case
async def invalid_object_names_the_field(client: Client, kube: KubeEmulator) -> None:
    bad = query("bad", target={"type": "robot", "name": "a1"})
    failure = await expect_failure(client.create(QUERIES, bad), 422, "Invalid")
    assert "spec.target.type" in failure.message
    assert 'Unsupported value: "robot"' in failure.message


@case
async def generate_name(client: Client, kube: KubeEmulator) -> None:
    body = query("")
    body["metadata"] = {"generateName": "gen-", "namespace": "default"}
    created = await client.create(QUERIES, body)
    name = created["metadata"]["name"]
    assert name.startswith("gen-")
    assert len(name) == len("gen-") + 5
    assert (await client.get(QUERIES, name))["metadata"]["name"] == name


@case
async def label_selectors_equality_and_sets(client: Client, kube: KubeEmulator) -> None:
    for name, labels in {
        "w-a": {"app": "x", "tier": "a"},
        "w-b": {"app": "x", "tier": "b"},
        "w-c": {"app": "y"},
    }.items():
        await client.create(WIDGETS, widget(name, labels=labels))

    async def names(selector: str) -> list[str]:
        items = await client.list(WIDGETS, label_selector=selector)
        return [item["metadata"]["name"] for item in items]

    assert await names("app=x") == ["w-a", "w-b"]
    assert await names("app=x,tier!=b") == ["w-a"]
    assert await names("tier in (a,b)") == ["w-a", "w-b"]
    assert await names("tier notin (a)") == ["w-b", "w-c"]
    assert await names("!tier") == ["w-c"]
    assert await names("tier") == ["w-a", "w-b"]


@case
async def field_selectors(client: Client, kube: KubeEmulator) -> None:
    await client.create(WIDGETS, widget("f-red", "red"))
    await client.create(WIDGETS, widget("f-blue", "blue"))
    by_name = await client.list(WIDGETS, field_selector="metadata.name=f-blue")
    assert [i["metadata"]["name"] for i in by_name] == ["f-blue"]
    by_color = await client.list(WIDGETS, field_selector="spec.color!=blue")
    assert [i["metadata"]["name"] for i in by_color] == ["f-red"]
    await expect_failure(client.list(WIDGETS, field_selector="spec.size=1"), 400, "BadRequest")


@case
async def pagination_with_limit_and_continue(client: Client, kube: KubeEmulator) -> None:
    for index in range(5):
        await client.create(WIDGETS, widget(f"p-{index}"))
    items = await client.list(WIDGETS, page_size=2)
    assert [i["metadata"]["name"] for i in items] == [f"p-{i}" for i in range(5)]
    limited = [r for r in kube.log.select(verb="list", resource="widgets") if "limit=2" in r.query]
    assert len(limited) == 3


@case
async def list_across_namespaces(client: Client, kube: KubeEmulator) -> None:
    kube.ensure_namespace("other")
    await client.create(WIDGETS, widget("here"))
    await client.create(WIDGETS, widget("there", namespace="other"), namespace="other")
    everywhere = await client.list(WIDGETS, None)
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere} == {
        ("default", "here"),
        ("other", "there"),
    }
    assert [i["metadata"]["name"] for i in await client.list(WIDGETS, "other")] == ["there"]


@case
async def merge_and_json_patch_bump_generation(client: Client, kube: KubeEmulator) -> None:
    await client.create(QUERIES, query("p1"))
    merged = await client.patch(QUERIES, "p1", {"spec": {"input": "bye"}}, "merge")
    assert merged["spec"]["input"] == "bye"
    assert merged["metadata"]["generation"] == 2
    patched = await client.patch(
        QUERIES, "p1", [{"op": "replace", "path": "/spec/input", "value": "again"}], "json"
    )
    assert patched["spec"]["input"] == "again"
    assert patched["metadata"]["generation"] == 3
    labelled = await client.patch(QUERIES, "p1", {"metadata": {"labels": {"a": "b"}}}, "merge")
    assert labelled["metadata"]["generation"] == 3  # metadata is not spec


@case
async def strategic_merge_patch_refused_on_custom_resources(
    client: Client, kube: KubeEmulator
) -> None:
    await client.create(QUERIES, query("smp"))
    await expect_failure(
        client.patch(QUERIES, "smp", {"spec": {"input": "x"}}, "strategic"), 415, None
    )
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"a": "1"},
    }
    await client.create(CONFIGMAPS, configmap)
    patched = await client.patch(CONFIGMAPS, "cm", {"data": {"b": "2"}}, "strategic")
    assert patched["data"] == {"a": "1", "b": "2"}


@case
async def status_subresource_isolation(client: Client, kube: KubeEmulator) -> None:
    await client.create(QUERIES, query("s1"))
    after_status = await client.patch(
        QUERIES,
        "s1",
        {"status": {"phase": "running"}, "spec": {"input": "ignored"}},
        "merge",
        status=True,
    )
    assert after_status["status"]["phase"] == "running"
    assert after_status["spec"]["input"] == "hello"  # /status never moves spec
    assert after_status["metadata"]["generation"] == 1
    after_main = await client.patch(
        QUERIES, "s1", {"status": {"phase": "done"}, "spec": {"input": "new"}}, "merge"
    )
    assert after_main["status"]["phase"] == "running"  # the main resource never moves status
    assert after_main["spec"]["input"] == "new"
    assert after_main["metadata"]["generation"] == 2
    replaced_status = copy.deepcopy(after_main)
    replaced_status["status"] = {"phase": "done"}
    result = await client.replace(QUERIES, replaced_status, status=True)
    assert result["status"]["phase"] == "done"
    assert result["metadata"]["generation"] == 2


@case
async def stale_resource_version_is_conflict(client: Client, kube: KubeEmulator) -> None:
    created = await client.create(QUERIES, query("c1"))
    await client.patch(QUERIES, "c1", {"spec": {"input": "moved"}}, "merge")
    stale = copy.deepcopy(created)
    stale["spec"]["input"] = "late"
    failure = await expect_failure(client.replace(QUERIES, stale), 409, "Conflict")
    assert "the object has been modified; please apply your changes to the latest version" in (
        failure.message
    )


@case
async def finalizers_hold_deletion(client: Client, kube: KubeEmulator) -> None:
    body = query("fin")
    body["metadata"]["finalizers"] = ["ark.mckinsey.com/finalizer"]
    await client.create(QUERIES, body)
    await client.delete(QUERIES, "fin")
    held = await client.get(QUERIES, "fin")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["ark.mckinsey.com/finalizer"]
    await client.patch(QUERIES, "fin", [{"op": "remove", "path": "/metadata/finalizers"}], "json")
    await expect_failure(client.get(QUERIES, "fin"), 404, "NotFound")


@case
async def watch_resumes_from_resource_version(client: Client, kube: KubeEmulator) -> None:
    created = await client.create(QUERIES, query("w1"))
    start = created["metadata"]["resourceVersion"]
    await client.patch(QUERIES, "w1", {"spec": {"input": "one"}}, "merge")
    await client.patch(QUERIES, "w1", {"status": {"phase": "running"}}, "merge", status=True)
    await client.create(QUERIES, query("w2"))
    await client.delete(QUERIES, "w1")
    events = await client.watch(QUERIES, "default", start, timeout_seconds=1)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
    assert seen == [("MODIFIED", "w1"), ("MODIFIED", "w1"), ("ADDED", "w2"), ("DELETED", "w1")]
    versions = [
        int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] != "BOOKMARK"
    ]
    assert versions == sorted(versions)
    assert versions[0] > int(start)


@case
async def watch_sends_bookmarks_when_asked(client: Client, kube: KubeEmulator) -> None:
    created = await client.create(QUERIES, query("b1"))
    rv = created["metadata"]["resourceVersion"]
    events = await client.watch(QUERIES, None, rv, timeout_seconds=1, bookmarks=True)
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    assert all(int(b["object"]["metadata"]["resourceVersion"]) >= int(rv) for b in bookmarks)
    without = await client.watch(QUERIES, None, rv, timeout_seconds=1)
    assert not [e for e in without if e["type"] == "BOOKMARK"]


@case
async def watch_from_compacted_version_is_gone(client: Client, kube: KubeEmulator) -> None:
    created = await client.create(QUERIES, query("g1"))
    old = created["metadata"]["resourceVersion"]
    await client.patch(QUERIES, "g1", {"spec": {"input": "newer"}}, "merge")
    kube.compact()
    failure = await expect_failure(
        client.watch(QUERIES, "default", old, timeout_seconds=1), 410, "Expired"
    )
    assert "too old resource version" in failure.message


@pytest.mark.parametrize("contract_case", CASES, ids=[c.__name__ for c in CASES])
async def test_contract(contract_case: Case, client: Client, kube_emulator: KubeEmulator) -> None:
    await contract_case(client, kube_emulator)
