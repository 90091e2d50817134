"""The HTTP face of the emulator: Kubernetes REST paths, discovery and watch streams (aiohttp).

Routing is by hand rather than through aiohttp's router because Kubernetes paths are a small
grammar (``/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>[/<subresource>]]``)
whose meaning depends on which resources are registered at request time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml
from aiohttp import web

from ark_mesh.testing.k8s import openapi_docs
from ark_mesh.testing.k8s.admission import AdmissionChain
from ark_mesh.testing.k8s.errors import ApiError, status_success
from ark_mesh.testing.k8s.faults import FaultInjector, FaultRule
from ark_mesh.testing.k8s.patches import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from ark_mesh.testing.k8s.protobuf import PROTOBUF, decode_protobuf
from ark_mesh.testing.k8s.registry import Registry
from ark_mesh.testing.k8s.requestlog import RequestLog, RequestRecord
from ark_mesh.testing.k8s.resources import ResourceType
from ark_mesh.testing.k8s.selectors import FieldSelector, LabelSelector
from ark_mesh.testing.k8s.store import Change, Store, Watcher
from ark_mesh.testing.k8s.tables import render_table, wants_table

__all__ = ["ApiServer", "EmulatorConfig"]

CONTROL_PREFIX: Final = "/_emulator/"
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_JSON: Final = "application/json"


@dataclass(slots=True)
class EmulatorConfig:
    """Knobs of one emulator instance.

    ``history_size`` is how many changes a watch can resume across (older → 410);
    ``bookmark_interval`` is how often an idle watch that allows bookmarks gets one (real
    servers use about a minute; tests want it short); ``default_watch_timeout`` applies when a
    watch gives no ``timeoutSeconds``; ``disabled_apis`` lists group/versions not served
    (``"events.k8s.io/v1"``), as on a cluster started with them turned off.
    """

    history_size: int = 1000
    bookmark_interval: float = 1.0
    default_watch_timeout: float = 1800.0
    server_version: str = "v1.32.0"
    disabled_apis: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    rt: ResourceType
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str | None
    subresource: str


def _flag(value: str | None) -> bool:
    return value in _TRUE


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=_JSON,
        headers=dict(headers or {}),
    )


class _WatchDroppedError(Exception):
    """Raised inside a watch handler to cut its connection without a clean end."""


class ApiServer:
    """Serves one :class:`Store` over HTTP, applying faults and recording requests."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        config: EmulatorConfig | None = None,
        faults: FaultInjector | None = None,
        log: RequestLog | None = None,
        control: Callable[[web.Request], Any] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config if config is not None else EmulatorConfig()
        self.faults = faults if faults is not None else FaultInjector()
        self.log = log if log is not None else RequestLog()
        self._control = control
        self._watches: set[Watcher] = set()
        self._watches_changed = asyncio.Event()
        self.admission = AdmissionChain(store)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    async def wait_for_watches(self, count: int) -> None:
        """Until at least ``count`` watch connections are open (the stream has started)."""
        while len(self._watches) < count:
            self._watches_changed.clear()
            await self._watches_changed.wait()

    def drop_watches(self) -> int:
        """Cut every open watch connection now (without a clean end); returns how many."""
        for watcher in self._watches:
            watcher.queue.put_nowait(None)
        return len(self._watches)

    # --- entry point -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX) and self._control is not None:
            response: web.StreamResponse = await self._control(request)
            return response
        verb, target = "get", None
        injected = False
        try:
            verb, target = self._route(request)
            rule = self.faults.take(verb, request.path)
            if rule is not None:
                if rule.latency:
                    await asyncio.sleep(rule.latency)
                error = rule.error(verb, request.path)
                if error is not None:
                    injected = True
                    raise error
            if target is None:
                response = self._discovery(request)
            else:
                response = await self._dispatch(request, verb, target, rule)
        except ApiError as exc:
            response = _json_response(exc.status(), exc.code, exc.headers)
        self._record(request, verb, target, response.status, injected=injected)
        return response

    def _record(
        self,
        request: web.Request,
        verb: str,
        target: Target | None,
        status: int,
        *,
        injected: bool,
    ) -> None:
        self.log.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=request.query_string,
                verb=verb if target is not None else "discovery",
                group=target.rt.group if target else "",
                version=target.rt.version if target else "",
                resource=target.rt.plural if target else "",
                subresource=target.subresource if target else "",
                namespace=(target.namespace or "") if target else "",
                name=(target.name or "") if target else "",
                status=status,
                injected=injected,
                content_type=request.headers.get("Content-Type", ""),
            )
        )

    # --- routing ---------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Target | None]:
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return "get", None
        if not rest:
            return "get", None
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] == "status")
        ):
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3:
            raise ApiError.no_such_route()
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise ApiError.no_such_route()
        if rt.namespaced is False and namespace is not None:
            raise ApiError.no_such_route()
        if subresource and subresource not in rt.subresources():
            raise ApiError.no_such_route()
        if rt.namespaced and namespace is None and name is not None:
            raise ApiError.no_such_route()
        method = request.method
        if name is None:
            verb = {
                "GET": "watch" if _flag(request.query.get("watch")) else "list",
                "POST": "create",
                "DELETE": "deletecollection",
            }.get(method)
        else:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None or (
            name is None and namespace is None and verb == "create" and rt.namespaced
        ):
            raise ApiError.method_not_allowed(method)
        return verb, Target(rt, namespace, name, subresource)

    # --- discovery -------------------------------------------------------------------------

    def _discovery(self, request: web.Request) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
        body: Any = None
        if parts == ["version"]:
            major, minor = self.config.server_version.lstrip("v").split(".")[:2]
            body = {
                "major": major,
                "minor": minor,
                "gitVersion": self.config.server_version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.23.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        elif parts == ["api"]:
            body = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
                ],
            }
        elif parts == ["api", "v1"]:
            body = self.registry.api_resource_list("", "v1")
        elif parts == ["apis"]:
            body = self.registry.api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            body = self.registry.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = self.registry.api_resource_list(parts[1], parts[2])
        elif parts == ["openapi", "v2"]:
            return _openapi_v2(request)
        elif parts == ["openapi", "v3"]:
            body = openapi_docs.root_document(self.registry)
        elif parts[:2] == ["openapi", "v3"] and len(parts) == 4 and parts[2] == "api":
            body = openapi_docs.group_version_document(self.registry, "", parts[3])
        elif parts[:2] == ["openapi", "v3"] and len(parts) == 5 and parts[2] == "apis":
            body = openapi_docs.group_version_document(self.registry, parts[3], parts[4])
        elif parts in (["healthz"], ["readyz"], ["livez"]):
            return web.Response(text="ok")
        if body is None:
            return web.Response(status=404, text="404 page not found\n")
        return _json_response(body)

    # --- resource verbs --------------------------------------------------------------------

    async def _dispatch(
        self, request: web.Request, verb: str, target: Target, rule: FaultRule | None
    ) -> web.StreamResponse:
        rt, namespace = target.rt, target.namespace or ""
        query = request.query
        dry_run = query.get("dryRun") == "All"
        if verb == "get":
            assert target.name is not None
            return self._object(request, rt, self.store.get(rt, namespace, target.name))
        if verb == "list":
            return self._list(request, target)
        if verb == "watch":
            return await self._watch(request, target, rule)
        if verb == "create":
            body = await _read_object(request)
            headers = self._field_validation(request, rt, body)
            created = await self.admission.create(rt, namespace, body, dry_run=dry_run)
            return _json_response(created.obj, 201, created.warning_headers(headers))
        assert target.name is not None or verb == "deletecollection"
        if verb == "update":
            assert target.name is not None
            body = await _read_object(request)
            headers = self._field_validation(request, rt, body)
            updated = await self.admission.update(
                rt, namespace, target.name, body, subresource=target.subresource, dry_run=dry_run
            )
            return _json_response(updated.obj, 200, updated.warning_headers(headers))
        if verb == "patch":
            assert target.name is not None
            return await self._patch(request, target, dry_run)
        if verb == "delete":
            assert target.name is not None
            options = await _read_json(request, optional=True) or {}
            obj, removed = self.store.delete(rt, namespace, target.name, options, dry_run=dry_run)
            if removed and not rt.custom:
                return _json_response(
                    status_success(target.name, rt.group, rt.plural, obj["metadata"]["uid"])
                )
            return _json_response(obj, 200 if removed else 202)
        if verb == "deletecollection":
            return self._delete_collection(request, target)
        raise ApiError.method_not_allowed(request.method)

    def _object(self, request: web.Request, rt: ResourceType, obj: dict[str, Any]) -> web.Response:
        if wants_table(request.headers.get("Accept", "")):
            table = render_table(
                rt,
                [obj],
                resource_version=obj["metadata"]["resourceVersion"],
                include_object=request.query.get("includeObject", "Metadata"),
            )
            return _json_response(table)
        return _json_response(obj)

    def _predicate(
        self, request: web.Request, rt: ResourceType
    ) -> Callable[[Mapping[str, Any]], bool]:
        labels = LabelSelector.parse(request.query.get("labelSelector"))
        fields = FieldSelector.parse(request.query.get("fieldSelector"), rt.field_selector_fields())

        def matches(obj: Mapping[str, Any]) -> bool:
            return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)

        return matches

    def _list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        limit_text = request.query.get("limit")
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid limit {limit_text!r}") from exc
        listed = self.store.list_objects(
            rt,
            target.namespace if rt.namespaced else None,
            self._predicate(request, rt),
            limit=limit,
            continue_token=request.query.get("continue") or None,
        )
        if wants_table(request.headers.get("Accept", "")):
            items = [
                {**item, "apiVersion": rt.api_version, "kind": rt.kind} for item in listed["items"]
            ]
            return _json_response(
                render_table(
                    rt,
                    items,
                    resource_version=listed["metadata"]["resourceVersion"],
                    include_object=request.query.get("includeObject", "Metadata"),
                    continue_token=listed["metadata"].get("continue"),
                )
            )
        return _json_response(listed)

    def _field_validation(
        self, request: web.Request, rt: ResourceType, body: Any
    ) -> dict[str, str]:
        """Strict → 400 on unknown fields; Warn (the default) → Warning headers; Ignore."""
        mode = request.query.get("fieldValidation", "Warn")
        if mode == "Ignore" or not isinstance(body, Mapping):
            return {}
        unknown = rt.unknown_fields(body)
        if not unknown:
            return {}
        if mode == "Strict":
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise ApiError.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {listed}"
            )
        return {"Warning": ", ".join(f'299 - "unknown field \\"{path}\\""' for path in unknown)}

    async def _patch(self, request: web.Request, target: Target, dry_run: bool) -> web.Response:
        rt = target.rt
        assert target.name is not None
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        body = await _read_json(request)
        accepted = [JSON_PATCH, MERGE_PATCH, "application/apply-patch+yaml"]
        if not rt.custom:
            accepted.append(STRATEGIC_MERGE_PATCH)
        if content_type == STRATEGIC_MERGE_PATCH and not rt.custom:
            if not isinstance(body, Mapping):
                raise ApiError.bad_request("a strategic merge patch must be a JSON object")

            def apply(obj: dict[str, Any]) -> Any:
                return apply_strategic_merge_patch(obj, body)

        elif content_type == MERGE_PATCH:
            if not isinstance(body, Mapping):
                raise ApiError.bad_request("a merge patch must be a JSON object")

            def apply(obj: dict[str, Any]) -> Any:
                return apply_merge_patch(obj, body)

        elif content_type == JSON_PATCH:

            def apply(obj: dict[str, Any]) -> Any:
                return apply_json_patch(obj, body)

        else:
            raise ApiError.unsupported_media_type(content_type, accepted)
        patched = await self.admission.patch(
            rt,
            target.namespace or "",
            target.name,
            apply,
            subresource=target.subresource,
            dry_run=dry_run,
        )
        return _json_response(patched.obj, 200, patched.warning_headers({}))

    def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        listed = self.store.list_objects(
            rt, target.namespace if rt.namespaced else None, self._predicate(request, rt)
        )
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            obj, _ = self.store.delete(rt, meta.get("namespace", ""), meta["name"])
            deleted.append(obj)
        if rt.custom:
            return _json_response(
                {
                    "apiVersion": rt.api_version,
                    "kind": rt.list_kind,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": deleted,
                }
            )
        return _json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        )

    # --- watch -----------------------------------------------------------------------------

    async def _watch(
        self, request: web.Request, target: Target, rule: FaultRule | None
    ) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        predicate = self._predicate(request, rt)
        since = _parse_rv(query.get("resourceVersion"))
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        initial_end = _flag(query.get("sendInitialEvents"))
        as_table = wants_table(request.headers.get("Accept", ""))
        include_object = query.get("includeObject", "Metadata")
        timeout_text = query.get("timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else self.config.default_watch_timeout
        except ValueError as exc:
            raise ApiError.bad_request(f"invalid timeoutSeconds {timeout_text!r}") from exc
        if since is not None and since > self.store.resource_version:
            raise ApiError(
                504,
                "Timeout",
                f"Timeout: Too large resource version: {since}, current: "
                f"{self.store.resource_version}",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )

        response = web.StreamResponse(status=200, headers={"Content-Type": _JSON})
        response.enable_chunked_encoding()
        try:
            replay, watcher = self.store.watch(
                rt, target.namespace if rt.namespaced else None, since
            )
        except ApiError as exc:
            # Like the real server: the watch itself succeeds, then carries the error as an
            # ERROR event (how clients learn that their resourceVersion is too old).
            await response.prepare(request)
            await _write_event(response, {"type": "ERROR", "object": exc.status()})
            await response.write_eof()
            return response

        def encode(obj: dict[str, Any]) -> dict[str, Any]:
            served = rt.to_served(dict(obj))
            if as_table:
                return render_table(
                    rt,
                    [served],
                    resource_version=served["metadata"]["resourceVersion"],
                    include_object=include_object,
                )
            return served

        def bookmark(*, initial_end: bool = False) -> dict[str, Any]:
            meta: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return {
                "type": "BOOKMARK",
                "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
            }

        drop_after = rule.drop_watch_after if rule is not None else None
        sent = 0
        self._watches.add(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_bookmark = loop.time()
        try:
            await response.prepare(request)
            self._watches_changed.set()
            for change in replay:
                event_type = _classify(change, predicate)
                if event_type is not None:
                    await _write_event(response, {"type": event_type, "object": encode(change.obj)})
                    sent += 1
                    self._maybe_drop(request, drop_after, sent)
            if initial_end and bookmarks:
                await _write_event(response, bookmark(initial_end=True))
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                poll = min(remaining, self.config.bookmark_interval if bookmarks else 1.0)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), poll)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    if bookmarks and loop.time() - last_bookmark >= self.config.bookmark_interval:
                        await _write_event(response, bookmark())
                        last_bookmark = loop.time()
                    continue
                if item is None:
                    self._maybe_drop(request, 0, 0)
                    continue
                event_type = _classify(item, predicate)
                if event_type is None:
                    continue
                await _write_event(response, {"type": event_type, "object": encode(item.obj)})
                sent += 1
                self._maybe_drop(request, drop_after, sent)
            if bookmarks:
                await _write_event(response, bookmark())
            await response.write_eof()
        except (_WatchDroppedError, ConnectionError):
            pass
        finally:
            self._watches.discard(watcher)
            self._watches_changed.set()
            self.store.unwatch(watcher)
        return response

    @staticmethod
    def _maybe_drop(request: web.Request, drop_after: int | None, sent: int) -> None:
        if drop_after is None or sent < drop_after:
            return
        # close() flushes what was written, then ends the TCP stream mid-body: the client sees
        # a chunked response that never terminates, as when a proxy or the server dies.
        if request.transport is not None:
            request.transport.close()
        raise _WatchDroppedError


_OPENAPI_V2_PROTOBUF: Final = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _openapi_v2(request: web.Request) -> web.Response:
    """An OpenAPI v2 document with no definitions, so kubectl's client-side validation passes.

    kubectl validates a ``kind: List`` (and anything when the server lacks ``fieldValidation``)
    against ``/openapi/v2``, which it reads as protobuf; a kind missing from the document is
    not checked, so an empty one leaves validation to the server, as for every other request.
    """
    if _OPENAPI_V2_PROTOBUF in request.headers.get("Accept", ""):
        # gnostic's openapi_v2.Document with only `swagger` (field 1) = "2.0"
        # answered as the real server labels it ("@" is not valid in a Content-Type)
        return web.Response(
            body=b"\n\x032.0",
            content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )
    return _json_response(
        {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "emulator"}, "paths": {}}
    )


def _classify(change: Change, predicate: Callable[[Mapping[str, Any]], bool]) -> str | None:
    """The event a filtered watcher sees: objects entering/leaving a selector are ADDED/DELETED."""
    now = predicate(change.obj)
    if change.type in ("ADDED", "DELETED"):
        return change.type if now else None
    before = change.old is not None and predicate(change.old)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None


async def _write_event(response: web.StreamResponse, event: Mapping[str, Any]) -> None:
    await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")


def _parse_rv(text: str | None) -> int | None:
    if text is None or text in ("", "0"):
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise ApiError.bad_request(f'invalid resource version "{text}"') from exc
    if value < 0:
        raise ApiError.bad_request(f'invalid resource version "{text}"')
    return value


async def _read_object(request: web.Request) -> Any:
    """The body of a create/update in whichever encoding the client chose (JSON, YAML, protobuf)."""
    content_type = request.headers.get("Content-Type", _JSON).split(";")[0].strip()
    if content_type == PROTOBUF:
        return decode_protobuf(await request.read())
    if content_type in ("application/yaml", "application/x-yaml"):
        try:
            return yaml.safe_load(await request.read())
        except yaml.YAMLError as exc:
            raise ApiError.bad_request(
                f"couldn't get version/kind; yaml parse error: {exc}"
            ) from exc
    return await _read_json(request)


async def _read_json(request: web.Request, *, optional: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return None
        raise ApiError.bad_request("the request body is empty")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
