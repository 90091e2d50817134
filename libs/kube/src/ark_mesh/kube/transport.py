"""The I/O seam of the adapter: one HTTP exchange, or one line-delimited stream, with the API.

Everything above this module works on paths, query parameters and JSON-ready values, and
raises the adapter's own errors; nothing above it imports kubernetes-asyncio. That keeps the
untyped library behind one narrow, typed boundary (this file) and makes a fake transport a
few lines long. :class:`ApiClientTransport` is the real one: kubernetes-asyncio's
``ApiClient`` brings kubeconfig and in-cluster configuration, TLS and token refresh.

kubernetes-asyncio is imported when a transport is built, not with this module: its
``client`` package loads every API model (~65 MiB resident), which a process configured
without Kubernetes (a fake transport, a manifest file of resources) never needs (issue 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from ark_mesh.kube.errors import ConnectionLostError, KubeError, error_from_status

__all__ = ["ApiClientTransport", "HttpResponse", "Transport"]

Query = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    """What the adapter needs from HTTP. Non-2xx answers are returned, not raised."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> HttpResponse: ...

    def stream(
        self, path: str, *, query: Query = (), request_timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """A GET whose body is read line by line (watch). Non-2xx raises :class:`KubeError`."""
        ...

    async def close(self) -> None: ...


class ApiClientTransport:
    """:class:`Transport` over a kubernetes-asyncio ``ApiClient``."""

    def __init__(self, api_client: Any) -> None:
        self._api = api_client

    @classmethod
    async def from_kubeconfig(
        cls, path: str | None = None, *, context: str | None = None
    ) -> ApiClientTransport:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        from kubernetes_asyncio import client as _k8s_client
        from kubernetes_asyncio import config as _k8s_config

        configuration = _k8s_client.Configuration()
        await _k8s_config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
        return cls(_k8s_client.ApiClient(configuration=configuration))

    @classmethod
    def in_cluster(cls) -> ApiClientTransport:
        """From the pod's service account (token, CA and ``KUBERNETES_SERVICE_*``)."""
        from kubernetes_asyncio import client as _k8s_client
        from kubernetes_asyncio import config as _k8s_config

        configuration = _k8s_client.Configuration()
        _k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
        return cls(_k8s_client.ApiClient(configuration=configuration))

    async def close(self) -> None:
        await self._api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: Query,
        body: Any,
        content_type: str,
        request_timeout: float | None,
    ) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionLostError(f"{method} {path}: {exc!r}") from exc
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> HttpResponse:
        response = await self._send(method, path, query, body, content_type, request_timeout)
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionLostError(f"{method} {path}: {exc!r}") from exc
        finally:
            response.release()
        return HttpResponse(response.status, dict(response.headers), data)

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, query: Query = (), request_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        # A watch may stay silent for long; only a total timeout (the server's timeoutSeconds
        # plus a margin, chosen by the caller) bounds it.
        response = await self._send("GET", path, query, None, "application/json", request_timeout)
        try:
            if response.status >= 300:
                raw = await response.read()
                raise _error(response.status, raw, dict(response.headers))
            yield _lines(response, path)
        finally:
            response.close()


async def _lines(response: aiohttp.ClientResponse, path: str) -> AsyncIterator[bytes]:
    while True:
        try:
            line = await response.content.readline()
        except (aiohttp.ClientError, TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise ConnectionLostError(f"watch {path} was cut: {exc!r}") from exc
        if not line:
            return
        if line.strip():
            yield line


def _error(status: int, raw: bytes, headers: Mapping[str, str]) -> KubeError:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = {"message": raw.decode(errors="replace")[:500]}
    return error_from_status(status, body if isinstance(body, Mapping) else None, headers)
