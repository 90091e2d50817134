"""Dynamic admission: the emulator calls registered webhooks the way kube-apiserver does.

``MutatingWebhookConfiguration`` and ``ValidatingWebhookConfiguration``
(``admissionregistration.k8s.io/v1``) are stored like any cluster-scoped object. Every create,
update or patch is matched against their ``rules`` (operations, apiGroups, apiVersions,
resources with subresources — a status write reaches a webhook only when its rule names
``<plural>/status``), ``namespaceSelector`` and ``objectSelector``; the matching webhooks are
called over HTTPS with an ``admission.k8s.io/v1`` ``AdmissionReview``, the server certificate
checked against ``clientConfig.caBundle``. The order is the real server's:

1. mutating webhooks, in configuration-name order, each seeing the previous one's JSONPatch;
2. schema defaulting, pruning and validation (a dry-run write into the store);
3. validating webhooks, on the object exactly as it would be stored;
4. the write itself.

A denial becomes the ``Status`` kube-apiserver returns — the webhook's ``result.code``
(controller-runtime's ``Denied`` is 403 Forbidden), message ``admission webhook "<name>" denied
the request: <message>`` — so kubectl prints what it prints on a cluster. Webhook warnings
become ``Warning`` headers. A webhook that cannot be reached fails the request with 500 under
``failurePolicy: Fail`` and is skipped under ``Ignore``. ``clientConfig.service`` cannot be
reached from outside a cluster: the emulator treats it as unreachable. Not emulated: DELETE and
CONNECT operations (never sent), ``reinvocationPolicy``, ``matchConditions`` (CEL) and
``matchPolicy: Equivalent`` across versions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from ark_mesh.testing.k8s.errors import ApiError
from ark_mesh.testing.k8s.patches import apply_json_patch
from ark_mesh.testing.k8s.resources import ResourceType, named_group
from ark_mesh.testing.k8s.selectors import LabelSelector, Requirement

if TYPE_CHECKING:
    from ark_mesh.testing.k8s.store import Store

__all__ = ["WEBHOOK_CONFIGURATION_TYPES", "AdmissionChain", "Admitted"]

GROUP: Final = "admissionregistration.k8s.io"
MUTATING: Final = (GROUP, "mutatingwebhookconfigurations")
VALIDATING: Final = (GROUP, "validatingwebhookconfigurations")
DEFAULT_TIMEOUT_SECONDS: Final = 10
_PATCH_RETRIES: Final = 5
_ADMIN_USER: Final = {
    "username": "kubernetes-admin",
    "groups": ["system:masters", "system:authenticated"],
}


WEBHOOK_CONFIGURATION_TYPES: Final = (
    named_group(
        GROUP,
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
    ),
    named_group(
        GROUP,
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
    ),
)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A write's result and the warnings the webhooks attached to it."""

    obj: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def warning_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus these warnings in the ``Warning`` header (``299 - "text"``)."""
        merged = dict(headers)
        if not self.warnings:
            return merged
        rendered = ", ".join(f"299 - {json.dumps(text)}" for text in self.warnings)
        merged["Warning"] = f"{merged['Warning']}, {rendered}" if "Warning" in merged else rendered
        return merged


@dataclass(frozen=True, slots=True)
class _Webhook:
    name: str
    spec: Mapping[str, Any]
    mutating: bool

    @property
    def failure_policy(self) -> str:
        return str(self.spec.get("failurePolicy") or "Fail")

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)


@dataclass(slots=True)
class _Request:
    """One write going through admission: what every AdmissionReview of it shares."""

    rt: ResourceType
    operation: str  # CREATE | UPDATE
    namespace: str
    name: str
    subresource: str
    dry_run: bool
    old: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


class AdmissionChain:
    """Wraps the store's writes with the webhook calls of the registered configurations."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ssl_contexts: dict[str, ssl.SSLContext] = {}

    # --- the three writes ------------------------------------------------------------------

    async def create(
        self, rt: ResourceType, namespace: str, body: Mapping[str, Any], *, dry_run: bool
    ) -> Admitted:
        hooks = self._matching(rt, "CREATE", "", namespace, body)
        if not hooks:
            return Admitted(self._store.create(rt, namespace, body, dry_run=dry_run))
        obj = copy.deepcopy(dict(body))
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced and isinstance(meta, dict):
            meta.setdefault("namespace", namespace)
        request = _Request(
            rt, "CREATE", namespace, str(meta.get("name") or ""), "", dry_run, old=None
        )
        obj = await self._mutate(hooks, request, obj)
        trial = self._store.create(rt, namespace, obj, dry_run=True)
        request.name = str(trial["metadata"]["name"])
        await self._validate(hooks, request, trial)
        if not obj["metadata"].get("name"):
            obj["metadata"]["name"] = request.name  # the name generateName picked, validated
        created = self._store.create(rt, namespace, obj, dry_run=dry_run)
        return Admitted(created, tuple(request.warnings))

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str,
        dry_run: bool,
    ) -> Admitted:
        hooks = self._matching(rt, "UPDATE", subresource, namespace, body)
        if not hooks:
            return Admitted(
                self._store.update(
                    rt, namespace, name, body, subresource=subresource, dry_run=dry_run
                )
            )
        old = self._store.get(rt, namespace, name)
        request = _Request(rt, "UPDATE", namespace, name, subresource, dry_run, old=old)
        obj = await self._mutate(hooks, request, copy.deepcopy(dict(body)))
        trial = self._store.update(rt, namespace, name, obj, subresource=subresource, dry_run=True)
        await self._validate(hooks, request, trial)
        updated = self._store.update(
            rt, namespace, name, obj, subresource=subresource, dry_run=dry_run
        )
        return Admitted(updated, tuple(request.warnings))

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        apply: Callable[[dict[str, Any]], Any],
        *,
        subresource: str,
        dry_run: bool,
    ) -> Admitted:
        """A patch is admitted as the UPDATE it produces; a conflict with a write that landed
        while the webhooks ran is retried on the new object, as the real server retries."""
        hooks: list[_Webhook] = []
        if self._registered():
            current = self._store.get(rt, namespace, name)
            hooks = self._matching(rt, "UPDATE", subresource, namespace, current)
        if not hooks:
            return Admitted(
                self._store.patch(
                    rt, namespace, name, apply, subresource=subresource, dry_run=dry_run
                )
            )
        for attempt in range(_PATCH_RETRIES):
            if attempt:
                current = self._store.get(rt, namespace, name)
            patched = apply(copy.deepcopy(current))
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise ApiError(422, "Invalid", "the patched object is not a JSON object")
            precondition = bool(patched["metadata"].get("resourceVersion"))
            if not precondition:
                patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            request = _Request(rt, "UPDATE", namespace, name, subresource, dry_run, old=current)
            obj = await self._mutate(hooks, request, patched)

            def replacement(_: dict[str, Any], obj: dict[str, Any] = obj) -> dict[str, Any]:
                return copy.deepcopy(obj)

            trial = self._store.patch(
                rt,
                namespace,
                name,
                replacement,
                subresource=subresource,
                dry_run=True,
            )
            await self._validate(hooks, request, trial)
            try:
                written = self._store.patch(
                    rt,
                    namespace,
                    name,
                    replacement,
                    subresource=subresource,
                    dry_run=dry_run,
                )
            except ApiError as exc:
                if exc.code == 409 and not precondition and attempt + 1 < _PATCH_RETRIES:
                    continue
                raise
            return Admitted(written, tuple(request.warnings))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # --- matching --------------------------------------------------------------------------

    def _registered(self) -> bool:
        return any(
            True for storage in (MUTATING, VALIDATING) for _ in self._store.objects(storage, None)
        )

    def _matching(
        self,
        rt: ResourceType,
        operation: str,
        subresource: str,
        namespace: str,
        obj: Mapping[str, Any],
    ) -> list[_Webhook]:
        hooks: list[_Webhook] = []
        for storage, mutating in ((MUTATING, True), (VALIDATING, False)):
            for configuration in self._store.objects(storage, None):
                for spec in configuration.get("webhooks") or ():
                    if isinstance(spec, Mapping) and self._applies(
                        spec, rt, operation, subresource, namespace, obj
                    ):
                        hooks.append(_Webhook(str(spec.get("name", "")), spec, mutating))
        return hooks

    def _applies(
        self,
        spec: Mapping[str, Any],
        rt: ResourceType,
        operation: str,
        subresource: str,
        namespace: str,
        obj: Mapping[str, Any],
    ) -> bool:
        resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
        if not any(
            _rule_matches(rule, rt, operation, resource) for rule in spec.get("rules") or ()
        ):
            return False
        labels = (obj.get("metadata") or {}).get("labels")
        if not _selector(spec.get("objectSelector")).matches(labels):
            return False
        if rt.namespaced and spec.get("namespaceSelector"):
            ns_type = self._store.registry.storage_type(("", "namespaces"))
            ns_labels: Mapping[str, str] | None = None
            if ns_type is not None:
                try:
                    ns_labels = self._store.get(ns_type, "", namespace)["metadata"].get("labels")
                except ApiError:
                    ns_labels = None
            if not _selector(spec.get("namespaceSelector")).matches(ns_labels):
                return False
        return True

    # --- calling ---------------------------------------------------------------------------

    async def _mutate(
        self, hooks: Sequence[_Webhook], request: _Request, obj: dict[str, Any]
    ) -> dict[str, Any]:
        for hook in hooks:
            if hook.mutating:
                response = await self._review(hook, request, obj)
                if response is None:
                    continue
                patch = response.get("patch")
                if patch:
                    if response.get("patchType", "JSONPatch") != "JSONPatch":
                        raise ApiError.internal(
                            f'received invalid webhook response: webhook "{hook.name}" '
                            f"returned patchType {response.get('patchType')!r}"
                        )
                    operations = json.loads(base64.b64decode(patch))
                    obj = apply_json_patch(obj, operations)
        return obj

    async def _validate(
        self, hooks: Sequence[_Webhook], request: _Request, obj: dict[str, Any]
    ) -> None:
        validating = [hook for hook in hooks if not hook.mutating]
        # the real server calls validating webhooks in parallel; the first denial wins
        await asyncio.gather(*(self._review(hook, request, obj) for hook in validating))

    async def _review(
        self, hook: _Webhook, request: _Request, obj: dict[str, Any]
    ) -> dict[str, Any] | None:
        """One AdmissionReview round trip: the allowed response, or raise the denial/failure.

        ``None`` means the webhook failed under ``failurePolicy: Ignore``.
        """
        if request.dry_run and hook.spec.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise ApiError.bad_request(f'admission webhook "{hook.name}" does not support dry run')
        uid = str(uuid.uuid4())
        review = _review_request(uid, request, obj)
        try:
            response = await self._post(hook, review)
            if response.get("uid") != uid:
                raise _CallError(
                    f"expected response.uid={uid!r}, got {response.get('uid')!r}",
                    invalid_response=True,
                )
        except _CallError as exc:
            if hook.failure_policy == "Ignore":
                return None
            prefix = (
                f"received invalid webhook response: {exc}"
                if exc.invalid_response
                else f"failed to call webhook: {exc}"
            )
            raise ApiError.internal(f'failed calling webhook "{hook.name}": {prefix}') from exc
        request.warnings.extend(str(w) for w in response.get("warnings") or ())
        if not response.get("allowed"):
            raise _denial(hook.name, response.get("status"))
        return response

    async def _post(self, hook: _Webhook, review: Mapping[str, Any]) -> dict[str, Any]:
        config = hook.spec.get("clientConfig") or {}
        url = config.get("url")
        if not url:
            service = config.get("service") or {}
            raise _CallError(
                f'service "{service.get("name")}.{service.get("namespace")}" is not reachable '
                "from the emulator (only clientConfig.url is)"
            )
        timeout = hook.timeout
        target = f"{url}{'&' if '?' in url else '?'}timeout={int(timeout)}s"
        try:
            context = self._ssl_context(str(config.get("caBundle") or ""))
        except (ValueError, ssl.SSLError) as exc:
            raise _CallError(f"could not load caBundle: {exc}") from exc
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(target, json=review, ssl=context) as http,
            ):
                body = await http.read()
                if http.status != 200:
                    raise _CallError(
                        f"expected webhook response of 200, got {http.status}: "
                        f"{body[:200].decode(errors='replace')}",
                        invalid_response=True,
                    )
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            reason = "context deadline exceeded" if isinstance(exc, TimeoutError) else str(exc)
            raise _CallError(f'Post "{target}": {reason}') from exc
        try:
            decoded = json.loads(body)
            response = decoded["response"]
            if not isinstance(response, dict):
                raise TypeError("response is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise _CallError(
                f"no response in the AdmissionReview: {exc}", invalid_response=True
            ) from exc
        return response

    def _ssl_context(self, ca_bundle: str) -> ssl.SSLContext:
        context = self._ssl_contexts.get(ca_bundle)
        if context is None:
            context = ssl.create_default_context()
            if ca_bundle:
                context = ssl.create_default_context(
                    cadata=base64.b64decode(ca_bundle).decode("ascii")
                )
            self._ssl_contexts[ca_bundle] = context
        return context


class _CallError(Exception):
    def __init__(self, message: str, *, invalid_response: bool = False) -> None:
        super().__init__(message)
        self.invalid_response = invalid_response


def _rule_matches(rule: Mapping[str, Any], rt: ResourceType, operation: str, resource: str) -> bool:
    def listed(values: Any, value: str) -> bool:
        return isinstance(values, list) and ("*" in values or value in values)

    if not listed(rule.get("operations"), operation):
        return False
    if not listed(rule.get("apiGroups"), rt.group) or not listed(
        rule.get("apiVersions"), rt.version
    ):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and rt.namespaced) or (scope == "Namespaced" and not rt.namespaced):
        return False
    plural, _, sub = resource.partition("/")
    for pattern in rule.get("resources") or ():
        if pattern == "*/*":
            return True
        p_plural, slash, p_sub = str(pattern).partition("/")
        if p_plural not in ("*", plural):
            continue
        if not slash:
            if not sub:  # "*" and "queries" name main resources only, never subresources
                return True
        elif sub and p_sub in ("*", sub):
            return True
    return False


def _selector(spec: Any) -> LabelSelector:
    """A ``metav1.LabelSelector`` object (matchLabels/matchExpressions) as requirements."""
    if not isinstance(spec, Mapping):
        return LabelSelector()
    requirements = [
        Requirement(str(key), "=", (str(value),))
        for key, value in (spec.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in spec.get("matchExpressions") or ():
        operator = operators.get(str(expression.get("operator")))
        if operator is not None:
            values = tuple(str(v) for v in expression.get("values") or ())
            requirements.append(Requirement(str(expression.get("key")), operator, values))
    return LabelSelector(tuple(requirements))


def _review_request(uid: str, request: _Request, obj: Mapping[str, Any]) -> dict[str, Any]:
    rt = request.rt
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    options_kind = "CreateOptions" if request.operation == "CREATE" else "UpdateOptions"
    body: dict[str, Any] = {
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": request.name,
        "operation": request.operation,
        "userInfo": _ADMIN_USER,
        "object": obj,
        "oldObject": request.old,
        "dryRun": request.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    }
    if request.subresource:
        body["subResource"] = request.subresource
        body["requestSubResource"] = request.subresource
    if rt.namespaced:
        body["namespace"] = request.namespace
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


def _denial(name: str, result: Any) -> ApiError:
    """kube-apiserver's rendering of a webhook's refusal (``webhookerrors.ToStatusErr``)."""
    status: Mapping[str, Any] = result if isinstance(result, Mapping) else {}
    code = int(status.get("code") or 0)
    if code < 400:
        code = 400
    denied = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    details = status.get("details")
    return ApiError(
        code,
        str(status.get("reason") or ""),
        message,
        details=details if isinstance(details, Mapping) else None,
    )
