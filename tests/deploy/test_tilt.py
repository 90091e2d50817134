"""The Tiltfile, evaluated by starlark-go (the Starlark engine Tilt embeds) with Tilt's builtins
replaced by recorders, then checked against the real artefacts it names: the Dockerfile's
stages, the chart rendered by the real helm with the very arguments the Tiltfile passes, and
the workloads that rendering produces.

Tilt itself cannot be installed here, so the stubs mirror the signatures of Tilt's API for the
builtins the Tiltfile uses: a misspelt keyword fails the evaluation as it would in Tilt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ark_mesh.testing.k8s.openapi import validate

from .conftest import CHART, REPO, Chart, Rendered

TILT = REPO / "tilt"
TILTFILE = TILT / "Tiltfile"
SERVICES = (
    "controller",
    "query-reconciler",
    "status-sync",
    "broker",
    "responses-reconciler",
    "embeddings-reconciler",
)


@dataclass
class TiltCalls:
    """What the Tiltfile asked Tilt to do, in order, per builtin."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def record(self, builtin: str, /, **arguments: Any) -> dict[str, Any]:
        call = {"builtin": builtin, **arguments}
        self.calls.setdefault(builtin, []).append(call)
        return call

    def __getitem__(self, name: str) -> list[dict[str, Any]]:
        return self.calls.get(name, [])


class TiltStubs:
    """Tilt's builtins as plain functions with Tilt's parameters. starlark-go keeps no
    reference to Python callables it is given, so this object owns them for the evaluation."""

    def __init__(self, calls: TiltCalls) -> None:
        self.calls = calls

    def min_tilt_version(self, version: str) -> None:
        self.calls.record("min_tilt_version", version=version)

    def blob(self, contents: str) -> dict[str, Any]:
        return {"blob": contents}

    def docker_build(
        self,
        ref: str,
        context: str,
        build_args: dict[str, str] | None = None,
        dockerfile: str = "Dockerfile",
        dockerfile_contents: str = "",
        live_update: list[dict[str, Any]] | None = None,
        match_in_env_vars: bool = False,
        ignore: list[str] | str | None = None,
        only: list[str] | str | None = None,
        entrypoint: list[str] | str | None = None,
        target: str = "",
        ssh: str = "",
        network: str = "",
        secret: str = "",
        extra_tag: str = "",
        container_args: list[str] | None = None,
        cache_from: list[str] | None = None,
        pull: bool = False,
        platform: str = "",
    ) -> None:
        self.calls.record(
            "docker_build",
            ref=ref,
            context=context,
            dockerfile=dockerfile,
            live_update=live_update or [],
            ignore=ignore or [],
            only=only or [],
            target=target,
        )

    def sync(self, local_path: str, remote_path: str) -> dict[str, Any]:
        return {"step": "sync", "local": local_path, "remote": remote_path}

    def run(
        self, cmd: str, trigger: list[str] | str | None = None, echo_off: bool = False
    ) -> dict[str, Any]:
        return {"step": "run", "cmd": cmd, "trigger": trigger or []}

    def fall_back_on(self, files: list[str] | str) -> dict[str, Any]:
        return {"step": "fall_back_on", "files": [files] if isinstance(files, str) else files}

    def helm(
        self,
        paths: str,
        name: str = "",
        namespace: str = "",
        values: list[str] | str | None = None,
        set: list[str] | str | None = None,
        kube_version: str = "",
        skip_crds: bool = False,
    ) -> dict[str, Any]:
        values = [values] if isinstance(values, str) else values or []
        set_values = [set] if isinstance(set, str) else set or []
        call = self.calls.record(
            "helm", paths=paths, name=name, namespace=namespace, values=values, set=set_values
        )
        return {"helm": len(self.calls["helm"]) - 1, **call}

    def k8s_yaml(self, yaml: Any, allow_duplicates: bool = False) -> None:
        self.calls.record("k8s_yaml", yaml=yaml)

    def watch_file(self, file_path: str) -> None:
        self.calls.record("watch_file", file_path=file_path)

    def port_forward(
        self,
        local_port: int,
        container_port: int | None = None,
        name: str | None = None,
        link_path: str | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        return {"local": local_port, "container": container_port or local_port, "name": name}

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        port_forwards: list[Any] | None = None,
        extra_pod_selectors: list[Any] | None = None,
        trigger_mode: int | None = None,
        resource_deps: list[str] | None = None,
        objects: list[str] | None = None,
        auto_init: bool = True,
        pod_readiness: str = "",
        links: list[Any] | None = None,
        labels: list[str] | None = None,
        discovery_strategy: str = "",
    ) -> None:
        self.calls.record(
            "k8s_resource",
            workload=workload,
            new_name=new_name or workload,
            port_forwards=port_forwards or [],
            resource_deps=resource_deps or [],
        )

    def local_resource(
        self,
        name: str,
        cmd: str = "",
        deps: list[str] | None = None,
        trigger_mode: int | None = None,
        resource_deps: list[str] | None = None,
        ignore: list[str] | None = None,
        auto_init: bool = True,
        serve_cmd: str = "",
        allow_parallel: bool = False,
        links: list[Any] | None = None,
        env: dict[str, str] | None = None,
        dir: str = "",
        labels: list[str] | None = None,
    ) -> None:
        self.calls.record(
            "local_resource",
            name=name,
            cmd=cmd,
            resource_deps=resource_deps or [],
            trigger_mode=trigger_mode,
            auto_init=auto_init,
        )

    def builtins(self) -> dict[str, Any]:
        names = [n for n in dir(self) if not n.startswith("_") and n not in ("calls", "builtins")]
        found = {name: getattr(self, name) for name in names}
        return {**found, "TRIGGER_MODE_AUTO": 0, "TRIGGER_MODE_MANUAL": 1}


@dataclass
class Evaluated:
    calls: TiltCalls
    stubs: TiltStubs


def evaluate(starlark: ModuleType, source: str) -> Evaluated:
    calls = TiltCalls()
    stubs = TiltStubs(calls)
    interpreter = starlark.Starlark(globals=stubs.builtins())
    interpreter.exec(source, filename=str(TILTFILE))
    return Evaluated(calls, stubs)


def from_tilt(path: str) -> Path:
    """Tilt resolves every path in a Tiltfile against the Tiltfile's directory."""
    return (TILT / path).resolve()


@pytest.fixture(scope="module")
def tilt(starlark: ModuleType) -> TiltCalls:
    return evaluate(starlark, TILTFILE.read_text()).calls


@pytest.fixture(scope="module")
def dev_render(tilt: TiltCalls, chart: Chart) -> Rendered:
    """The chart rendered exactly as the Tiltfile's helm() call asks (with CRDs, as Tilt does)."""
    (call,) = tilt["helm"]
    assert from_tilt(call["paths"]) == CHART
    assert not call["set"], "keep dev settings in values-dev.yaml"
    return chart.render(
        files=[from_tilt(v) for v in call["values"]],
        namespace=call["namespace"],
        release=call["name"],
        include_crds=True,
    )


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def test_the_evaluation_fails_on_tilt_mistakes(starlark: ModuleType) -> None:
    """The stubs are strict enough to matter: unknown names and keywords fail."""
    with pytest.raises(starlark.StarlarkError):
        evaluate(starlark, "docker_bulid('x', '.')")
    with pytest.raises(starlark.StarlarkError):
        evaluate(starlark, "docker_build('x', '.', live_updates=[])")


def test_one_image_built_from_the_dev_stage(tilt: TiltCalls) -> None:
    (build,) = tilt["docker_build"]
    assert from_tilt(build["context"]) == REPO
    assert from_tilt(build["dockerfile"]) == REPO / "Dockerfile"
    assert build["target"] in dockerfile_stages(), "target must be a stage of the Dockerfile"
    for path in build["only"]:
        assert (REPO / path).exists(), f"only= names {path}, which is not in the context"


def test_live_update_syncs_libs_and_services_then_restarts(tilt: TiltCalls) -> None:
    (build,) = tilt["docker_build"]
    steps = build["live_update"]
    assert steps[0]["step"] == "fall_back_on", "Tilt requires fall_back_on steps first"
    for path in steps[0]["files"]:
        assert from_tilt(path).exists(), path
    assert from_tilt("../uv.lock") in {from_tilt(p) for p in steps[0]["files"]}
    syncs = {from_tilt(s["local"]): s["remote"] for s in steps if s["step"] == "sync"}
    assert syncs == {REPO / "libs": "/app/libs", REPO / "services": "/app/services"}
    # The image really has the workspace there (editable install from /app).
    builder = "\n".join(dockerfile_stages()["builder"])
    assert "WORKDIR /app" in (REPO / "Dockerfile").read_text()
    assert "COPY libs/ libs/" in builder
    assert "COPY services/ services/" in builder
    assert steps[-1] == {"step": "run", "cmd": "kill -HUP 1", "trigger": []}


def test_restart_wrapper_is_pid_one_of_every_dev_container(
    tilt: TiltCalls, dev_render: Rendered
) -> None:
    """`kill -HUP 1` only restarts the service if PID 1 is the wrapper the dev stage installs."""
    (build,) = tilt["docker_build"]
    dev_stage = "\n".join(dockerfile_stages()[build["target"]])
    installed = re.search(r"COPY .*tilt/dev-restart\.sh\s+(\S+)", dev_stage)
    assert installed, "the dev stage must install tilt/dev-restart.sh"
    for workload in dev_render.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["image"].split(":")[0] != build["ref"]:
                continue
            assert container["command"][0] == installed.group(1), workload["metadata"]["name"]
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is False, "live_update writes the code"


def test_every_workload_has_a_resource_and_every_resource_a_workload(
    tilt: TiltCalls, dev_render: Rendered
) -> None:
    workloads = {w["metadata"]["name"] for w in dev_render.workloads()}
    resources = {r["workload"] for r in tilt["k8s_resource"]}
    assert resources == workloads
    expected = {dev_render.name(c) for c in (*SERVICES, "nats", "fake-model")}
    assert workloads == expected, "the dev loop runs every service, NATS and the fake model"


def test_workloads_use_the_image_tilt_builds(tilt: TiltCalls, dev_render: Rendered) -> None:
    (build,) = tilt["docker_build"]
    for component in (*SERVICES, "fake-model"):
        image = dev_render.container(component)["image"]
        assert image.split(":")[0] == build["ref"], component


def test_namespace_is_created_for_the_release(tilt: TiltCalls) -> None:
    (call,) = tilt["helm"]
    blobs = [c["yaml"]["blob"] for c in tilt["k8s_yaml"] if "blob" in c["yaml"]]
    namespaces = [yaml.safe_load(b) for b in blobs]
    assert {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": call["namespace"]}} in (
        namespaces
    )
    assert any(c["yaml"].get("helm") == 0 for c in tilt["k8s_yaml"]), "helm output is applied"


def test_port_forwards_reach_the_health_ports(tilt: TiltCalls, dev_render: Rendered) -> None:
    local_ports = []
    for resource in tilt["k8s_resource"]:
        workload = next(
            w for w in dev_render.workloads() if w["metadata"]["name"] == resource["workload"]
        )
        container_ports = {
            p["containerPort"]
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        forwards = resource["port_forwards"]
        assert forwards, f"{resource['new_name']} has no port forward"
        for forward in forwards:
            assert forward["container"] in container_ports, (resource["new_name"], forward)
            local_ports.append(forward["local"])
    assert len(local_ports) == len(set(local_ports)), "two forwards share a local port"
    for service in SERVICES:
        health = dev_render.container(service)["ports"][0]["containerPort"]
        (resource,) = [r for r in tilt["k8s_resource"] if r["workload"] == dev_render.name(service)]
        assert health in {f["container"] for f in resource["port_forwards"]}, service


def test_services_start_after_nats(tilt: TiltCalls, dev_render: Rendered) -> None:
    names = {r["new_name"] for r in tilt["k8s_resource"]} | {
        r["name"] for r in tilt["local_resource"]
    }
    by_workload = {r["workload"]: r for r in tilt["k8s_resource"]}
    nats = by_workload[dev_render.name("nats")]["new_name"]
    for service in SERVICES:
        deps = by_workload[dev_render.name(service)]["resource_deps"]
        assert nats in deps, f"{service} must wait for NATS"
    for resource in [*tilt["k8s_resource"], *tilt["local_resource"]]:
        assert set(resource["resource_deps"]) <= names, resource


def test_demo_query_targets_the_dev_agent(
    tilt: TiltCalls,
    dev_render: Rendered,
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (demo,) = tilt["local_resource"]
    assert demo["trigger_mode"] == 1, "a button, not a loop"
    assert demo["auto_init"] is False, "a button, not a loop"
    manifest = re.search(r"-f (\S+)", demo["cmd"])
    assert manifest, demo["cmd"]
    query = yaml.safe_load(from_tilt(manifest.group(1)).read_text())
    schema = crd_schemas[(query["apiVersion"], query["kind"])]
    assert not validate(schema, query)
    target = query["spec"]["target"]
    assert dev_render.has(target["type"].title(), target["name"])
    assert dev_render.namespace in demo["cmd"]
