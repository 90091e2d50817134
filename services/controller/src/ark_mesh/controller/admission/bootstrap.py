"""Self-signed bootstrap: certificates for the webhook Service when cert-manager is not used.

At start the controller makes sure a ``kubernetes.io/tls`` Secret holds a CA and a serving
certificate for ``<service>.<namespace>.svc`` (the first replica creates it; the others find
it, so every replica serves the same certificate), writes it where the webhook server reads
it, and puts the CA into the ``caBundle`` of its webhook configurations — the job
cert-manager's cainjector does otherwise.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ark_mesh.controller.admission.certs import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    ServingCertificate,
    self_signed,
)
from ark_mesh.controller.admission.registration import CONFIGURATION_RESOURCES
from ark_mesh.kube import (
    AlreadyExistsError,
    ApiResource,
    ConflictError,
    KubeClient,
    KubeError,
    NotFoundError,
)
from ark_mesh.telemetry import get_logger

__all__ = ["bootstrap_certificate", "inject_ca_bundle", "keep_ca_bundle"]

log = get_logger("ark_mesh.controller.admission")

SECRETS: Final = ApiResource("", "v1", "secrets", "Secret")


async def bootstrap_certificate(
    client: KubeClient, *, namespace: str, secret: str, service: str, cert_dir: Path
) -> ServingCertificate:
    """The shared serving certificate (created on first start), written into ``cert_dir``."""
    try:
        found = await client.get_object(SECRETS, namespace, secret)
    except NotFoundError:
        found = None
    if found is None:
        hosts = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
        fresh = self_signed(hosts)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": secret, "namespace": namespace},
            "data": {
                CERT_FILE: base64.b64encode(fresh.cert_pem).decode(),
                KEY_FILE: base64.b64encode(fresh.key_pem).decode(),
                CA_FILE: base64.b64encode(fresh.ca_pem).decode(),
            },
        }
        try:
            found = await client.create_object(SECRETS, namespace, body)
            log.info("webhook certificate created", secret=f"{namespace}/{secret}")
        except AlreadyExistsError:  # another replica won the race: use its certificate
            found = await client.get_object(SECRETS, namespace, secret)
    data = found.get("data") or {}
    certificate = ServingCertificate(
        ca_pem=base64.b64decode(data.get(CA_FILE, "")),
        cert_pem=base64.b64decode(data.get(CERT_FILE, "")),
        key_pem=base64.b64decode(data.get(KEY_FILE, "")),
    )
    certificate.write(cert_dir)
    return certificate


async def inject_ca_bundle(
    client: KubeClient, ca_pem: bytes, configurations: Sequence[tuple[str, str]]
) -> bool:
    """Set ``caBundle`` on every webhook of the named ``(kind, name)`` configurations.

    ``True`` when all of them carry it; ``False`` when one does not exist (yet).
    """
    bundle = base64.b64encode(ca_pem).decode()
    complete = True
    for kind, name in configurations:
        resource = CONFIGURATION_RESOURCES[kind]
        for _ in range(5):
            try:
                current = await client.get_object(resource, None, name)
            except NotFoundError:
                complete = False
                break
            webhooks = current.get("webhooks") or []
            if all((w.get("clientConfig") or {}).get("caBundle") == bundle for w in webhooks):
                break
            for webhook in webhooks:
                webhook.setdefault("clientConfig", {})["caBundle"] = bundle
            try:
                await client.replace_object(resource, None, name, current)
                log.info("webhook caBundle injected", kind=kind, name=name)
                break
            except ConflictError:
                continue
    return complete


async def keep_ca_bundle(
    client: KubeClient,
    ca_pem: bytes,
    configurations: Sequence[tuple[str, str]],
    *,
    interval: float = 30.0,
) -> None:
    """Keep the caBundle injected for as long as the controller runs.

    Helm creates webhook configurations after Deployments, so at first start they may not
    exist yet (retried every second until they do); later, a re-apply of the chart that
    resets them is repaired within ``interval``.
    """
    while True:
        try:
            complete = await inject_ca_bundle(client, ca_pem, configurations)
        except KubeError as exc:
            log.warning("webhook caBundle injection failed; retrying", error=str(exc))
            complete = False
        await asyncio.sleep(interval if complete else 1.0)
