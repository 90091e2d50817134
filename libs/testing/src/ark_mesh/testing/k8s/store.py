"""The emulator's storage: objects, one global resourceVersion, the change history and watchers.

Everything here is synchronous and runs on the server's event loop, so each operation is
atomic — the same guarantee etcd's compare-and-swap gives a real API server. The rules a
client can observe are those of the real server:

* ``resourceVersion`` is one global, strictly increasing counter; a write that changes
  nothing stores nothing, keeps the version and sends no watch event (that is what lets a
  controller that re-applies the same status avoid waking itself up);
* ``generation`` exists on custom resources, starts at 1 and grows only when something other
  than ``metadata`` (and ``status``, when the status subresource is enabled) changes;
* with the status subresource, writes to the main resource keep the stored ``status`` and
  writes to ``/status`` keep everything but ``status``;
* deleting an object with finalizers only stamps ``deletionTimestamp``; removing the last
  finalizer then deletes it, and no finalizer may be added meanwhile;
* the history of changes is bounded: a watch asking to resume before its start gets
  ``410 Expired``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ark_mesh.testing.k8s import openapi
from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.metadata import check_metadata
from ark_mesh.testing.k8s.openapi import FieldError
from ark_mesh.testing.k8s.registry import Registry
from ark_mesh.testing.k8s.resources import CRD_RESOURCE, ResourceType, StorageKey, validate_crd

__all__ = ["Change", "ObjectActivity", "ObjectKey", "Store", "Watcher"]

NAMESPACES: Final[StorageKey] = ("", "namespaces")
CRDS: Final[StorageKey] = CRD_RESOURCE.storage
SERVICE_ACCOUNTS: Final[StorageKey] = ("", "serviceaccounts")
INITIAL_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES: Final = frozenset({"default", "kube-system", "kube-public"})

_NAME_SUFFIX_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    storage: StorageKey
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Change:
    """One stored change, as watchers receive it (``obj`` is the stored form)."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: ObjectKey
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(slots=True)
class ObjectActivity:
    """What happened to one object (by namespace/name) since the emulator started.

    ``watch_events`` is what wakes a controller: every ADDED/MODIFIED/DELETED a watcher of the
    object's kind receives. ``noop_writes`` are writes the server accepted but that changed
    nothing (no new resourceVersion, no event).
    """

    creates: int = 0
    updates: int = 0
    status_writes: int = 0
    noop_writes: int = 0
    generation_bumps: int = 0
    deletes: int = 0
    conflicts: int = 0
    watch_events: int = 0
    generation: int = 0
    resource_version: str = ""

    def snapshot(self) -> ObjectActivity:
        return copy.copy(self)


class Watcher:
    """A registered watch: receives every change of one storage (optionally one namespace)."""

    def __init__(self, storage: StorageKey, namespace: str | None) -> None:
        self.storage = storage
        self.namespace = namespace
        # None is the "drop this connection" signal of fault injection
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def wants(self, change: Change) -> bool:
        return change.key.storage == self.storage and (
            self.namespace is None or self.namespace == change.key.namespace
        )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strip_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


def _without(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """All objects of the emulated cluster; see the module docstring for the rules."""

    def __init__(self, registry: Registry, *, history_size: int = 1000) -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self.registry = registry
        self._objects: dict[StorageKey, dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[Change] = deque()
        self._history_size = history_size
        self.compacted_rv = 0
        self._watchers: set[Watcher] = set()
        self.activity: dict[ObjectKey, ObjectActivity] = {}
        self.listeners: list[Callable[[Change], None]] = []
        ns_type = self._type_for(NAMESPACES)
        for name in INITIAL_NAMESPACES:
            self.create(
                ns_type, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )

    # --- bookkeeping ---------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def _type_for(self, storage: StorageKey) -> ResourceType:
        types = self.registry.by_storage(storage)
        if not types:
            raise KeyError(storage)
        return types[0]

    def _bucket(self, storage: StorageKey) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objects.setdefault(storage, {})

    def _activity(self, key: ObjectKey) -> ObjectActivity:
        return self.activity.setdefault(key, ObjectActivity())

    def _emit(self, change: Change) -> None:
        self._history.append(change)
        while len(self._history) > self._history_size:
            self.compacted_rv = self._history.popleft().rv
        activity = self._activity(change.key)
        activity.watch_events += 1
        activity.resource_version = str(change.rv)
        activity.generation = int(change.obj.get("metadata", {}).get("generation") or 0)
        for watcher in self._watchers:
            if watcher.wants(change):
                watcher.queue.put_nowait(change)
        for listener in self.listeners:
            listener(change)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def set_history_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("history_size must be at least 1")
        self._history_size = size
        while len(self._history) > size:
            self.compacted_rv = self._history.popleft().rv

    def compact(self) -> None:
        """Forget the whole history, as an etcd compaction would (old watches then get 410)."""
        if self._history:
            self.compacted_rv = self._history[-1].rv
            self._history.clear()
        self.compacted_rv = max(self.compacted_rv, self._rv)

    # --- reads ---------------------------------------------------------------------------

    def _find(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self._bucket(rt.storage).get((namespace if rt.namespaced else "", name))
        if obj is None:
            raise ApiError.not_found(rt.qualified_resource, name, rt.group, rt.plural)
        return obj

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        return rt.to_served(copy.deepcopy(self._find(rt, namespace, name)))

    def objects(self, storage: StorageKey, namespace: str | None) -> Iterator[dict[str, Any]]:
        bucket = self._bucket(storage)
        for ns, name in sorted(bucket):
            if namespace is None or ns == namespace:
                yield bucket[(ns, name)]

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Callable[[Mapping[str, Any]], bool],
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        list_rv = self._rv
        start: tuple[str, str] | None = None
        if continue_token:
            list_rv, start = self._decode_continue(continue_token)
        matched = [
            obj
            for obj in self.objects(rt.storage, namespace)
            if predicate(obj) and (start is None or _sort_key(obj) > start)
        ]
        metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if limit is not None and limit > 0 and len(matched) > limit:
            page, rest = matched[:limit], matched[limit:]
            metadata["continue"] = self._encode_continue(list_rv, _sort_key(page[-1]))
            metadata["remainingItemCount"] = len(rest)
            matched = page
        items = []
        for obj in matched:
            item = rt.to_served(copy.deepcopy(obj))
            if not rt.custom:
                # typed built-in lists carry no per-item apiVersion/kind, like the real server
                item.pop("apiVersion", None)
                item.pop("kind", None)
            items.append(item)
        return {
            "apiVersion": rt.api_version,
            "kind": rt.list_kind,
            "metadata": metadata,
            "items": items,
        }

    def _encode_continue(self, rv: int, start: tuple[str, str]) -> str:
        raw = json.dumps({"v": "emulator.continue/1", "rv": rv, "start": list(start)}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_continue(self, token: str) -> tuple[int, tuple[str, str]]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(decoded["rv"]), (str(decoded["start"][0]), str(decoded["start"][1]))
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as exc:
            raise ApiError.bad_request(f"continue key is not valid: {exc}") from exc
        if rv < self.compacted_rv:
            raise ApiError.expired(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            )
        return rv, start

    # --- watches -------------------------------------------------------------------------

    def watch(
        self, rt: ResourceType, namespace: str | None, since: int | None
    ) -> tuple[list[Change], Watcher]:
        """Changes to replay and a registered watcher for what follows, with no gap between.

        ``since=None`` replays the current state as synthetic ADDED events (what a watch
        without ``resourceVersion`` or with ``"0"`` does); a number replays the history after
        it, or raises ``410 Expired`` when that part of the history is gone.
        """
        if since is None:
            replay = [
                Change(
                    int(obj["metadata"]["resourceVersion"]),
                    "ADDED",
                    _key_of(rt.storage, obj),
                    obj,
                    None,
                )
                for obj in self.objects(rt.storage, namespace)
            ]
        else:
            if since < self.compacted_rv:
                raise ApiError.expired(
                    f"too old resource version: {since} ({self.compacted_rv + 1})"
                )
            replay = [
                change
                for change in self._history
                if change.rv > since
                and change.key.storage == rt.storage
                and (namespace is None or change.key.namespace == namespace)
            ]
        watcher = Watcher(rt.storage, namespace)
        self._watchers.add(watcher)
        return replay, watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    # --- writes --------------------------------------------------------------------------

    def create(
        self, rt: ResourceType, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        obj = self._check_envelope(rt, body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise ApiError.bad_request("resourceVersion should not be set on objects to be created")
        namespace = self._check_namespace(rt, namespace, meta)
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
                meta["name"] = f"{meta['generateName']}{suffix}"
            else:
                raise ApiError.invalid(
                    rt.qualified_kind,
                    rt.kind,
                    rt.group,
                    "",
                    [
                        FieldError(
                            "metadata.name",
                            openapi.REQUIRED,
                            "Required value: name or generateName is required",
                        )
                    ],
                )
        name = str(meta["name"])
        if rt.namespaced:
            self._require_live_namespace(rt, namespace, name)
        key = ObjectKey(rt.storage, namespace, name)
        bucket = self._bucket(rt.storage)
        if (namespace, name) in bucket:
            raise ApiError.already_exists(rt.qualified_resource, name, rt.group, rt.plural)

        for server_owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ):
            meta.pop(server_owned, None)
        if rt.status_subresource:
            obj.pop("status", None)  # status is reset on create when it has its own endpoint
        if rt.storage == NAMESPACES:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        if rt.storage == CRDS:
            self._admit_crd(obj)

        obj = rt.to_storage(obj)
        obj, errors = rt.admit(obj)
        errors = rt.check_name(name) + check_metadata(obj["metadata"]) + errors
        if errors:
            raise ApiError.invalid(rt.qualified_kind, rt.kind, rt.group, name, errors)
        meta = obj["metadata"]
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.custom or rt.generation:
            meta["generation"] = 1
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            return rt.to_served(obj)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        bucket[(namespace, name)] = obj
        activity = self._activity(key)
        activity.creates += 1
        if rt.storage == CRDS:
            self.registry.register_crd(obj)
        self._emit(Change(rv, "ADDED", key, copy.deepcopy(obj), None))
        if rt.storage == NAMESPACES:
            self._default_service_account(name)
        return rt.to_served(copy.deepcopy(obj))

    def _default_service_account(self, namespace: str) -> None:
        # the service-account controller's job: every namespace gets a "default" account
        accounts = self.registry.storage_type(SERVICE_ACCOUNTS)
        if accounts is not None:
            self.create(
                accounts,
                namespace,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            )

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics: the body replaces the object, guarded by its ``resourceVersion``."""
        new = self._check_envelope(rt, body)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        self._check_namespace(rt, namespace, meta)
        if meta.get("name") != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        old = self._find(rt, namespace, name)
        requested = meta.get("resourceVersion")
        if not requested and not rt.unconditional_update:
            raise ApiError.invalid(
                rt.qualified_kind,
                rt.kind,
                rt.group,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        openapi.INVALID,
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._replace(rt, old, rt.to_storage(new), requested, subresource, dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        apply: Callable[[dict[str, Any]], Any],
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply ``apply`` to the served form of the current object, then store as an update.

        A patch that sets ``metadata.resourceVersion`` makes it a precondition, as on a real
        server; otherwise a patch never conflicts.
        """
        old = self._find(rt, namespace, name)
        current_rv = old["metadata"]["resourceVersion"]
        patched = apply(rt.to_served(copy.deepcopy(old)))
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patched object is not a JSON object")
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if meta.get("name") != name or (rt.namespaced and meta.get("namespace") != namespace):
            raise ApiError.bad_request("a patch may not change an object's name or namespace")
        requested = meta.get("resourceVersion") or current_rv
        return self._replace(
            rt,
            old,
            rt.to_storage(self._check_envelope(rt, patched)),
            requested,
            subresource,
            dry_run,
        )

    def _replace(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        body: dict[str, Any],
        requested_rv: Any,
        subresource: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        old_meta = old["metadata"]
        name = str(old_meta["name"])
        namespace = str(old_meta.get("namespace", ""))
        key = ObjectKey(rt.storage, namespace, name)
        activity = self._activity(key)
        if requested_rv and str(requested_rv) != old_meta["resourceVersion"]:
            activity.conflicts += 1
            raise ApiError.stale(rt.qualified_resource, name, rt.group, rt.plural)
        body_uid = body.get("metadata", {}).get("uid")
        if body_uid and body_uid != old_meta.get("uid"):
            activity.conflicts += 1
            raise ApiError.conflict(
                rt.qualified_resource,
                name,
                rt.group,
                rt.plural,
                f"Precondition failed: UID in precondition: {body_uid}, UID in object meta: "
                f"{old_meta.get('uid')}",
            )

        if subresource == "status":
            # only status moves; everything else is the stored object
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new_meta = new.setdefault("metadata", {})
            for server_owned in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "generateName",
            ):
                if server_owned in old_meta:
                    new_meta[server_owned] = copy.deepcopy(old_meta[server_owned])
                else:
                    new_meta.pop(server_owned, None)
            new_meta.pop("managedFields", None)
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if rt.storage == NAMESPACES:
                new["spec"] = copy.deepcopy(old.get("spec", {}))
                new["status"] = copy.deepcopy(old.get("status", {}))
            if rt.storage == CRDS:
                self._admit_crd(new)

        if old_meta.get("deletionTimestamp"):
            added = [
                f
                for f in new["metadata"].get("finalizers") or []
                if f not in (old_meta.get("finalizers") or [])
            ]
            if added:
                raise ApiError.invalid(
                    rt.qualified_kind,
                    rt.kind,
                    rt.group,
                    name,
                    [
                        FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is "
                            f"being deleted, found new finalizers {json.dumps(added)}",
                        )
                    ],
                )

        new, errors = rt.admit(new)
        errors = check_metadata(new["metadata"]) + errors
        if errors:
            raise ApiError.invalid(rt.qualified_kind, rt.kind, rt.group, name, errors)

        new_meta = new["metadata"]
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        if rt.custom or rt.generation:
            ignored = ("metadata", "status") if rt.status_subresource else ("metadata",)
            if _without(new, *ignored) != _without(old, *ignored):
                new_meta["generation"] = int(old_meta.get("generation") or 0) + 1

        if _strip_rv(new) == _strip_rv(old):
            activity.noop_writes += 1
            return rt.to_served(copy.deepcopy(old))
        if dry_run:
            return rt.to_served(new)

        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            return self._remove(rt, key, new)

        rv = self._next_rv()
        new_meta["resourceVersion"] = str(rv)
        self._bucket(rt.storage)[(namespace, name)] = new
        if subresource == "status":
            activity.status_writes += 1
        else:
            activity.updates += 1
        if new_meta.get("generation") != old_meta.get("generation"):
            activity.generation_bumps += 1
        if rt.storage == CRDS:
            self.registry.register_crd(new)
        self._emit(Change(rv, "MODIFIED", key, copy.deepcopy(new), copy.deepcopy(old)))
        return rt.to_served(copy.deepcopy(new))

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete or, with finalizers, mark for deletion. Returns (object, removed now)."""
        old = self._find(rt, namespace, name)
        old_meta = old["metadata"]
        key = ObjectKey(rt.storage, str(old_meta.get("namespace", "")), name)
        preconditions = (options or {}).get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old_meta.get("uid"):
            raise ApiError.conflict(
                rt.qualified_resource,
                name,
                rt.group,
                rt.plural,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in "
                f"object meta: {old_meta.get('uid')}",
            )
        if preconditions.get("resourceVersion") and (
            preconditions["resourceVersion"] != old_meta["resourceVersion"]
        ):
            raise ApiError.conflict(
                rt.qualified_resource,
                name,
                rt.group,
                rt.plural,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                f"{old_meta['resourceVersion']}",
            )
        if dry_run:
            return rt.to_served(copy.deepcopy(old)), not old_meta.get("finalizers")
        if rt.storage == NAMESPACES:
            if name in PROTECTED_NAMESPACES:
                raise ApiError.forbidden(
                    rt.qualified_resource, name, "this namespace may not be deleted"
                )
            return self._delete_namespace(rt, old), False
        if old_meta.get("finalizers"):
            if old_meta.get("deletionTimestamp"):
                return rt.to_served(copy.deepcopy(old)), False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._bucket(rt.storage)[(key.namespace, name)] = new
            self._activity(key).deletes += 1
            self._emit(Change(rv, "MODIFIED", key, copy.deepcopy(new), copy.deepcopy(old)))
            return rt.to_served(copy.deepcopy(new)), False
        self._activity(key).deletes += 1
        return self._remove(rt, key, copy.deepcopy(old)), True

    def _remove(self, rt: ResourceType, key: ObjectKey, final: dict[str, Any]) -> dict[str, Any]:
        bucket = self._bucket(rt.storage)
        old = bucket.pop((key.namespace, key.name))
        rv = self._next_rv()
        final["metadata"]["resourceVersion"] = str(rv)
        self._emit(Change(rv, "DELETED", key, copy.deepcopy(final), old))
        if rt.storage == CRDS:
            self._drop_crd_instances(final)
        if key.namespace:
            self._finish_namespace(key.namespace)
        return rt.to_served(copy.deepcopy(final))

    # --- namespaces and CRDs -------------------------------------------------------------

    def _require_live_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self._bucket(NAMESPACES).get(("", namespace))
        if ns is None:
            raise ApiError.not_found("namespaces", namespace, "", "namespaces")
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError.forbidden(
                rt.qualified_resource,
                name,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def _delete_namespace(self, rt: ResourceType, ns: dict[str, Any]) -> dict[str, Any]:
        name = str(ns["metadata"]["name"])
        key = ObjectKey(NAMESPACES, "", name)
        if not ns["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(ns)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["status"] = {"phase": "Terminating"}
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._bucket(NAMESPACES)[("", name)] = new
            self._activity(key).deletes += 1
            self._emit(Change(rv, "MODIFIED", key, copy.deepcopy(new), copy.deepcopy(ns)))
            # the namespace controller's job: delete the content, then the namespace
            for storage, bucket in list(self._objects.items()):
                for ns_name, obj_name in [k for k in bucket if k[0] == name]:
                    content_type = self._type_for(storage)
                    if (ns_name, obj_name) in bucket:
                        self.delete(content_type, ns_name, obj_name)
            self._finish_namespace(name)
        current = self._bucket(NAMESPACES).get(("", name)) or ns
        return rt.to_served(copy.deepcopy(current))

    def _finish_namespace(self, name: str) -> None:
        ns = self._bucket(NAMESPACES).get(("", name))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(k[0] == name for bucket in self._objects.values() for k in bucket):
            return
        self._remove(self._type_for(NAMESPACES), ObjectKey(NAMESPACES, "", name), copy.deepcopy(ns))

    def _admit_crd(self, crd: dict[str, Any]) -> None:
        errors = validate_crd(crd)
        if errors:
            name = str((crd.get("metadata") or {}).get("name", ""))
            raise ApiError.invalid(
                CRD_RESOURCE.qualified_kind, CRD_RESOURCE.kind, CRD_RESOURCE.group, name, errors
            )
        spec = crd["spec"]
        storage = [v["name"] for v in spec["versions"] if v.get("storage")]
        crd["status"] = {
            "acceptedNames": copy.deepcopy(spec["names"]),
            "storedVersions": storage,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now_rfc3339(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now_rfc3339(),
                },
            ],
        }

    def _drop_crd_instances(self, crd: Mapping[str, Any]) -> None:
        types = self.registry.unregister_crd(str(crd["metadata"]["name"]))
        if not types:
            return
        storage = types[0].storage
        bucket = self._bucket(storage)
        for ns, name in sorted(bucket):
            final = copy.deepcopy(bucket[(ns, name)])
            del bucket[(ns, name)]
            rv = self._next_rv()
            final["metadata"]["resourceVersion"] = str(rv)
            self._emit(Change(rv, "DELETED", ObjectKey(storage, ns, name), final, None))
        self._objects.pop(storage, None)

    # --- shared checks -------------------------------------------------------------------

    def _check_envelope(self, rt: ResourceType, body: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ApiError.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(dict(body))
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if rt.custom and not kind:
            raise ApiError.bad_request(f"Object 'Kind' is missing in '{json.dumps(obj)}'")
        if api_version and api_version != rt.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str, meta: Mapping[str, Any]) -> str:
        body_ns = meta.get("namespace")
        if rt.namespaced:
            if body_ns and body_ns != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            return namespace
        return ""


def _key_of(storage: StorageKey, obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return ObjectKey(storage, str(meta.get("namespace", "")), str(meta["name"]))


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return (str(meta.get("namespace", "")), str(meta["name"]))
