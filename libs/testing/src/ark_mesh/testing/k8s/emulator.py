"""The emulator as one object: store, HTTP server, fault injection, request log, kubeconfig.

Use :class:`KubeEmulator` in-process (``async with KubeEmulator(crds=[...]) as kube:``); it
binds 127.0.0.1 on a free port. ``python -m ark_mesh.testing.k8s`` runs the same thing as a
process, and :mod:`ark_mesh.testing.k8s.process` drives that process from a test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from aiohttp import web

from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.faults import FaultInjector, FaultRule
from ark_mesh.testing.k8s.registry import Registry
from ark_mesh.testing.k8s.requestlog import RequestLog
from ark_mesh.testing.k8s.resources import CRD_RESOURCE, crd_list_from_documents
from ark_mesh.testing.k8s.server import CONTROL_PREFIX, ApiServer, EmulatorConfig
from ark_mesh.testing.k8s.store import ObjectActivity, ObjectKey, Store

__all__ = ["KubeEmulator", "load_crd_files", "write_kubeconfig"]


def load_crd_files(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The CRDs in YAML/JSON files and directories (directories: ``*.yaml``, ``*.yml``, ``*.json``)."""
    crds: list[dict[str, Any]] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            )
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"no CRD file or directory at {path}")
        for file in files:
            crds.extend(copy.deepcopy(_parsed_crds(file)))
    return crds


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PARSED: dict[tuple[Path, int, int], list[dict[str, Any]]] = {}


def _parsed_crds(file: Path) -> list[dict[str, Any]]:
    # Every test starts an emulator with the same CRD files: parse each version of a file once.
    stat = file.stat()
    key = (file.resolve(), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        documents = list(yaml.load_all(file.read_text(), Loader=_SafeLoader))
        _PARSED[key] = crd_list_from_documents(documents)
    return _PARSED[key]


def write_kubeconfig(path: str | Path, server_url: str, *, namespace: str = "default") -> Path:
    """A kubeconfig with one context pointing at ``server_url`` (plain HTTP, no credentials)."""
    target = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server_url}}],
        "users": [{"name": "emulator", "user": {}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
            }
        ],
        "current-context": "emulator",
        "preferences": {},
    }
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


class KubeEmulator:
    """A Kubernetes API server for tests. See the package docstring for what it emulates."""

    def __init__(
        self,
        *,
        crds: Iterable[Mapping[str, Any]] = (),
        crd_paths: Iterable[str | Path] = (),
        config: EmulatorConfig | None = None,
        kubeconfig_path: str | Path | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.registry = Registry(disabled_apis=self.config.disabled_apis)
        self.store = Store(self.registry, history_size=self.config.history_size)
        self.faults = FaultInjector()
        self.log = RequestLog()
        self.server = ApiServer(
            self.store,
            self.registry,
            config=self.config,
            faults=self.faults,
            log=self.log,
            control=self._control,
        )
        for crd in [*crds, *load_crd_files(crd_paths)]:
            self.add_crd(crd)
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(self.server.app(), handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        self._runner = runner
        self._url = f"http://{host}:{bound_port}"
        if self._kubeconfig_path is not None:
            write_kubeconfig(self._kubeconfig_path, self._url)
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            self.server.drop_watches()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("no kubeconfig_path was given to the emulator")
        return self._kubeconfig_path

    # --- test helpers --------------------------------------------------------------------

    def add_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Register a CRD as if it had been created through the API."""
        return self.store.create(CRD_RESOURCE, "", crd)

    def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` unless it exists (objects need their namespace to exist)."""
        namespaces = self.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        try:
            self.store.get(namespaces, "", name)
        except ApiError:
            self.store.create(
                namespaces,
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )

    async def wait_for_watches(self, count: int = 1) -> None:
        """Until at least ``count`` watch connections are open and streaming."""
        await self.server.wait_for_watches(count)

    def drop_watches(self) -> int:
        """Cut every open watch connection now; returns how many were open."""
        return self.server.drop_watches()

    def compact(self) -> None:
        """Forget the change history: every watch resuming from an older version gets 410."""
        self.store.compact()

    def activity(
        self, resource: str, namespace: str, name: str, *, group: str | None = None
    ) -> ObjectActivity:
        """Counters of one object (by plural resource name, e.g. ``queries``)."""
        key = self.object_key(resource, namespace, name, group)
        return self.store.activity.get(key, ObjectActivity()).snapshot()

    def object_key(self, resource: str, namespace: str, name: str, group: str | None) -> ObjectKey:
        storages = self.registry.storages_named(resource, group)
        if len(storages) != 1:
            raise KeyError(
                f"resource {resource!r} (group {group!r}) is "
                f"{'ambiguous' if storages else 'not served'}"
            )
        storage = storages.pop()
        scoped = any(rt.namespaced for rt in self.registry.by_storage(storage))
        return ObjectKey(storage, namespace if scoped else "", name)

    # --- control endpoint ----------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.StreamResponse:
        action = request.path[len(CONTROL_PREFIX) :]
        try:
            return await self._control_action(request, action)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _control_action(self, request: web.Request, action: str) -> web.StreamResponse:
        method = request.method
        if action == "health":
            return web.json_response({"ok": True, "resourceVersion": self.store.resource_version})
        if action == "faults" and method == "POST":
            rule = self.faults.inject(FaultRule.from_json(await request.json()))
            return web.json_response(rule.to_json(), status=201)
        if action == "faults" and method == "DELETE":
            self.faults.clear()
            return web.json_response({"cleared": True})
        if action == "faults" and method == "GET":
            return web.json_response([rule.to_json() for rule in self.faults.pending])
        if action == "watches" and method == "GET":
            # long-polls until enough watches are open, so a remote test needs no sleep loop
            await self.wait_for_watches(int(request.query.get("min", "1")))
            return web.json_response({"open": self.server.open_watches})
        if action == "watches/drop" and method == "POST":
            return web.json_response({"dropped": self.drop_watches()})
        if action == "compact" and method == "POST":
            self.compact()
            return web.json_response({"compactedResourceVersion": self.store.compacted_rv})
        if action == "requests" and method == "GET":
            return web.json_response([record.to_json() for record in self.log])
        if action == "requests" and method == "DELETE":
            self.log.clear()
            return web.json_response({"cleared": True})
        if action == "activity" and method == "GET":
            query = request.query
            activity = self.activity(
                query["resource"],
                query.get("namespace", ""),
                query["name"],
                group=query.get("group"),
            )
            return web.json_response(_activity_json(activity))
        if action == "config" and method == "PUT":
            changes = await request.json()
            if "history_size" in changes:
                self.store.set_history_size(int(changes["history_size"]))
                self.config.history_size = int(changes["history_size"])
            if "bookmark_interval" in changes:
                self.config.bookmark_interval = float(changes["bookmark_interval"])
            return web.json_response(
                {
                    "history_size": self.config.history_size,
                    "bookmark_interval": self.config.bookmark_interval,
                }
            )
        error = ApiError.no_such_route()
        return web.Response(
            body=json.dumps(error.status()), status=404, content_type="application/json"
        )


def _activity_json(activity: ObjectActivity) -> dict[str, Any]:
    return {name: getattr(activity, name) for name in activity.__dataclass_fields__}
