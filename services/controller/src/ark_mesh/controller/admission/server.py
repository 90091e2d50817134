"""The controller's admission webhook server: AdmissionReview v1 over HTTPS, one route per kind.

The rules and defaults are pure functions (:mod:`.rules`, :mod:`.defaults`); this module is
the only part that reads the cluster — the references a verdict lists, ``ArkConfig/default``
and the Memory it names — through the controller's own kube client. Every replica serves
webhooks, leader or not, as controller-runtime's webhook server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from ark_mesh.contracts import ArkConfig, Memory
from ark_mesh.controller.admission import defaults, rules
from ark_mesh.controller.admission.bootstrap import (
    SECRETS,
    bootstrap_certificate,
    keep_ca_bundle,
)
from ark_mesh.controller.admission.certs import CERT_FILE, KEY_FILE
from ark_mesh.controller.admission.registration import ADMITTED_KINDS, GROUP, AdmittedKind
from ark_mesh.controller.admission.review import allowed, denied, json_patch
from ark_mesh.controller.config import WebhookConfig
from ark_mesh.kube import ApiResource, KubeClient, KubeError, NotFoundError
from ark_mesh.telemetry import get_logger

__all__ = ["AdmissionServer", "Admitter", "serve_admission"]

log = get_logger("ark_mesh.controller.admission")

Obj = Mapping[str, Any]

VALIDATORS: Final[Mapping[str, Callable[[Obj], rules.Verdict]]] = {
    "query": rules.validate_query,
    "agent": rules.validate_agent,
    "model": rules.validate_model,
    "team": rules.validate_team,
    "tool": rules.validate_tool,
    "mcpserver": rules.validate_mcpserver,
    "memory": rules.validate_memory,
    "evaluator": rules.validate_evaluator,
    "executionengine": rules.validate_executionengine,
    "a2aserver": rules.validate_a2aserver,
}

_CORE: Final = {
    "Secret": SECRETS,
    "ConfigMap": ApiResource("", "v1", "configmaps", "ConfigMap"),
}
ARK_CONFIG: Final = ApiResource.of(ArkConfig)
MEMORIES: Final = ApiResource.of(Memory)
ARK_CONFIG_NAME: Final = "default"


def _resource(kind: str) -> ApiResource:
    if kind in _CORE:
        return _CORE[kind]
    for admitted in ADMITTED_KINDS:
        if admitted.kind == kind:
            return ApiResource(GROUP, admitted.version, admitted.plural, kind)
    raise KeyError(kind)


class Admitter:
    """Answers AdmissionReview requests; cluster reads go through ``client``."""

    def __init__(self, client: KubeClient, *, fallback_query_ttl: str) -> None:
        self._client = client
        self._fallback_ttl = fallback_query_ttl

    async def review(
        self, admitted: AdmittedKind, review: Obj, *, mutating: bool
    ) -> dict[str, Any]:
        request = review.get("request")
        if not isinstance(request, Mapping):
            raise ValueError("the AdmissionReview has no request")
        uid = str(request.get("uid") or "")
        obj = request.get("object")
        operation = str(request.get("operation") or "")
        if not isinstance(obj, Mapping) or operation not in ("CREATE", "UPDATE"):
            return allowed(uid)  # DELETE/CONNECT carry nothing Ark checks
        obj = _with_namespace(obj, request)
        try:
            if mutating:
                return await self._mutate(admitted, uid, obj, operation)
            return await self._validate(admitted, uid, obj)
        except rules.RefusedError as refused:
            return denied(uid, refused.message)

    async def _mutate(
        self, admitted: AdmittedKind, uid: str, obj: Obj, operation: str
    ) -> dict[str, Any]:
        match admitted.key:
            case "query":
                changed = defaults.default_query(obj, operation, await self._query_defaults(obj))
            case "agent":
                changed = defaults.default_agent(obj)
            case "model":
                changed = defaults.default_model(obj)
            case "team":
                changed = defaults.default_team(obj)
            case _:
                return allowed(uid)
        return allowed(uid, patch=json_patch(obj, changed))

    async def _validate(self, admitted: AdmittedKind, uid: str, obj: Obj) -> dict[str, Any]:
        verdict = VALIDATORS[admitted.key](obj)
        warnings = list(verdict.warnings)
        if verdict.refusal is not None:
            return denied(uid, verdict.refusal, warnings=warnings)
        for reference in verdict.references:
            try:
                refusal = await self._check(reference)
            except _UnreadableError as exc:
                warnings.append(str(exc))
                continue
            if refusal is not None:
                return denied(uid, refusal, warnings=warnings)
        return allowed(uid, warnings=warnings)

    async def _check(self, reference: rules.Reference) -> str | None:
        """``None`` when the reference resolves, else the refusal naming it.

        A kind the controller may not read (scale-strict grants no Secret access) cannot be
        checked: :class:`_UnreadableError` turns that into a warning, never a refusal.
        """
        try:
            found = await self._client.get_object(
                _resource(reference.kind), reference.namespace, reference.name
            )
        except KubeError as exc:
            if exc.code == 403:
                raise _UnreadableError(
                    f"{reference.kind.lower()} '{reference.name}' in namespace "
                    f"'{reference.namespace}' was not checked: the controller may not read it"
                ) from exc
            return reference.refusal(exc.message)
        if reference.key:
            data = {**(found.get("data") or {}), **(found.get("binaryData") or {})}
            if reference.key not in data:
                return reference.refusal(None)
        return None

    async def _query_defaults(self, query: Obj) -> defaults.QueryDefaults:
        ark_config = await self._get_or_none(ARK_CONFIG, None, ARK_CONFIG_NAME)
        namespace = str((query.get("metadata") or {}).get("namespace") or "")
        memory_ns, memory_name = defaults.default_memory_ref(ark_config, namespace)
        memory = await self._get_or_none(MEMORIES, memory_ns, memory_name) if memory_name else None
        return defaults.QueryDefaults(ark_config, memory, self._fallback_ttl)

    async def _get_or_none(
        self, resource: ApiResource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object, or ``None`` when it (or its kind: no ArkConfig CRD) does not exist."""
        try:
            return await self._client.get_object(resource, namespace, name)
        except NotFoundError:
            return None
        except KubeError as exc:
            # Defaults must not block writes: Ark's webhook also falls back when the read fails.
            log.warning("admission default lookup failed", kind=resource.kind, error=str(exc))
            return None


class _UnreadableError(Exception):
    """A reference the controller's RBAC does not let it read."""


def _with_namespace(obj: Obj, request: Obj) -> Obj:
    """The object with the request's namespace in its metadata (a create may omit it)."""
    namespace = request.get("namespace")
    meta = obj.get("metadata")
    if not namespace or (isinstance(meta, Mapping) and meta.get("namespace")):
        return obj
    return {
        **obj,
        "metadata": {**(meta if isinstance(meta, Mapping) else {}), "namespace": namespace},
    }


@dataclass
class AdmissionServer:
    """HTTPS server of the webhook routes; reloads its certificate when the files change
    (cert-manager renews them in place)."""

    admitter: Admitter
    cert_dir: Path
    host: str = "0.0.0.0"
    port: int = 9443

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._context: ssl.SSLContext | None = None
        self._loaded: tuple[float, float] = (0.0, 0.0)
        self.serving = False
        self.tasks: list[asyncio.Task[None]] = []  # e.g. keeping the caBundle injected

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        for admitted in ADMITTED_KINDS:
            for mutating in (True, False) if admitted.mutating else (False,):
                app.router.add_post(
                    admitted.path(mutating=mutating), self._handler(admitted, mutating)
                )
        return app

    def _handler(self, admitted: AdmittedKind, mutating: bool) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            try:
                review = await request.json()
                if not isinstance(review, Mapping):
                    raise ValueError("the body is not an AdmissionReview object")
                answer = await self.admitter.review(admitted, review, mutating=mutating)
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(answer)

        return handle

    def _files(self) -> tuple[Path, Path]:
        return self.cert_dir / CERT_FILE, self.cert_dir / KEY_FILE

    def _ssl_context(self) -> ssl.SSLContext:
        cert, key = self._files()
        stamp = (cert.stat().st_mtime, key.stat().st_mtime)
        if self._context is None or stamp != self._loaded:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            context.sni_callback = self._refresh
            self._context, self._loaded = context, stamp
        return self._context

    def _refresh(self, connection: ssl.SSLObject, _: str | None, __: ssl.SSLContext) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            connection.context = self._ssl_context()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context())
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        self.serving = True
        log.info("admission webhooks serving", port=self.port)

    async def wait_for_certificate(self, within: float) -> None:
        """Until the certificate files exist (a Secret mount can lag the pod start)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not all(path.exists() for path in self._files()):
            if loop.time() >= deadline:
                raise FileNotFoundError(f"no {CERT_FILE}/{KEY_FILE} in {self.cert_dir}")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self.serving = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_admission(
    client: KubeClient, config: WebhookConfig, *, fallback_query_ttl: str
) -> AdmissionServer:
    """Start the webhook server of ``config``: bootstrap or await its certificate, serve."""
    cert_dir = Path(config.cert_dir)
    server = AdmissionServer(
        Admitter(client, fallback_query_ttl=fallback_query_ttl),
        cert_dir,
        host=config.host,
        port=config.port,
    )
    bootstrap = config.self_signed
    certificate = None
    if bootstrap is not None:
        certificate = await bootstrap_certificate(
            client,
            namespace=bootstrap.namespace,
            secret=bootstrap.secret,
            service=bootstrap.service,
            cert_dir=cert_dir,
        )
    await server.wait_for_certificate(config.certificate_wait)
    await server.start()
    if bootstrap is not None and certificate is not None:
        configurations = [
            ("MutatingWebhookConfiguration", bootstrap.mutating_configuration),
            ("ValidatingWebhookConfiguration", bootstrap.validating_configuration),
        ]
        server.tasks.append(
            asyncio.create_task(
                keep_ca_bundle(client, certificate.ca_pem, configurations), name="ca-bundle"
            )
        )
    return server
