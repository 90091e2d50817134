"""``query``, ``get``, ``list``, ``cancel``: queries through the broker API or as Query CRs.

Through the broker (default when one is known) a query is ``POST /v1/queries`` and its tokens
come from ``GET /v1/queries/{id}/stream`` (SSE); as a Query CR (``--via kube``) it is created
through the Kubernetes API and its tokens read from its chunk subject on NATS. Either way the
command prints tokens as they come, then the phase, token usage and duration, and exits with
the phase's code (see ``ark-mesh --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec

from ark_mesh.bus import Bus, ConnectionSettings, StreamReader
from ark_mesh.contracts import (
    Chunk,
    ObjectMeta,
    Query,
    QuerySpec,
    QueryTarget,
    decoder_for,
    subjects,
)
from ark_mesh.contracts.approvals import approval_task_name
from ark_mesh.kube import KubeClient
from ark_mesh.kube.errors import KubeError, NotFoundError

from . import output
from .errors import CliError, Exit
from .output import Ending
from .state import Endpoints, endpoints, nats_servers, no_mesh

__all__ = ["cancel", "follow_kube", "get", "listing", "query"]

TERMINAL = frozenset({"done", "error", "canceled"})
TARGET_TYPES = ("agent", "team", "model", "tool")


def _where(args: argparse.Namespace) -> tuple[Endpoints, str]:
    found = endpoints(
        namespace=args.namespace,
        broker_url=args.broker_url,
        nats_url=args.nats_url,
        kubeconfig=args.kubeconfig,
        token=args.token,
    )
    via = args.via or ("broker" if found.broker_url else "kube")
    if via == "broker" and not found.broker_url:
        raise no_mesh("broker")
    if via == "kube" and not found.kubeconfig:
        raise no_mesh("kubernetes")
    return found, via


# --------------------------------------------------------------------------- query


async def query(args: argparse.Namespace) -> int:
    where, via = _where(args)
    kind, name = next((k, getattr(args, k)) for k in TARGET_TYPES if getattr(args, k))
    began = time.monotonic()
    if via == "broker":
        assert where.broker_url is not None
        end = await _query_broker(where, args, kind, name, began)
    else:
        assert where.kubeconfig is not None
        query_name = args.name or f"cli-{uuid.uuid4().hex[:8]}"
        query = Query(
            metadata=ObjectMeta(name=query_name, namespace=where.namespace),
            spec=QuerySpec(
                input=args.input,
                target=QueryTarget(type=kind, name=name),  # type: ignore[arg-type]
                timeout=args.query_timeout,
            ),
        )
        async with _kube(where.kubeconfig) as client:
            try:
                created = await client.create(query)
            except KubeError as exc:
                raise CliError(f"the Query was refused: {exc}", Exit.REJECTED) from None
        output.say(f"query {query_name} ({kind}/{name}) in {where.namespace}")
        end = await follow_kube(
            where.kubeconfig,
            where.nats_url,
            where.namespace,
            query_name,
            created.metadata.uid or "",
            within=args.timeout,
            began=began,
        )
    output.ending(end)
    return end.exit_code


async def follow_kube(
    kubeconfig: str,
    nats_url: str | None,
    namespace: str,
    name: str,
    uid: str,
    *,
    within: float,
    began: float | None = None,
) -> Ending:
    """Print a Query CR's tokens from NATS (when there is NATS) and wait for its end."""
    began = time.monotonic() if began is None else began
    streamed = asyncio.Event()
    tokens = (
        asyncio.ensure_future(_stream_bus(nats_url, namespace, uid, streamed)) if nats_url else None
    )
    status: dict[str, Any] | None = None
    announced: set[str] = set()
    try:
        with contextlib.suppress(TimeoutError):
            async with _kube(kubeconfig) as client, asyncio.timeout(within):
                while True:
                    query = await client.get(Query, namespace, name)
                    status = msgspec.to_builtins(query.status) if query.status else None
                    if status and status.get("phase") in TERMINAL:
                        break
                    _announce_approval(status, namespace, announced)
                    await asyncio.sleep(0.1)
        if tokens is not None and streamed.is_set() and status and status.get("phase") in TERMINAL:
            # The final chunk is published before the terminal status; let the reader reach it.
            # Nothing streamed yet (a query that never reached the model): the answer, if any,
            # is printed from the status instead, so there is nothing to wait for.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tokens), 5.0)
    finally:
        if tokens is not None:
            await _stop(tokens)
    return Ending(status, time.monotonic() - began, streamed=streamed.is_set())


def _announce_approval(status: dict[str, Any] | None, namespace: str, announced: set[str]) -> None:
    """Say once per approval how to answer it, while the query waits at ``input-required``."""
    if not status or status.get("phase") != "input-required":
        return
    task_id = ((status.get("response") or {}).get("a2a") or {}).get("taskId")
    if not task_id or task_id in announced:
        return
    announced.add(task_id)
    task = approval_task_name(task_id)
    decision = json.dumps(json.dumps({"decision": "approved"}))
    output.say(
        f"waiting for approval ({task}); approve with: kubectl patch a2atask {task} -n {namespace}"
        f' --type merge -p \'{{"spec":{{"input":{decision}}}}}\' (or "rejected")'
    )


async def _stop(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` until it ends. nats-py swallows a cancel that lands inside a flush, so one
    ``cancel()`` can be lost and the reader would wait for a final chunk forever (a query the
    controller ends before dispatching it has none on the bus)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    await asyncio.gather(task, return_exceptions=True)


async def _stream_bus(nats_url: str, namespace: str, uid: str, streamed: asyncio.Event) -> None:
    bus = await Bus.connect(ConnectionSettings(servers=nats_servers(nats_url)))
    try:
        reader = StreamReader(bus)
        async for entry in reader.read(
            subjects.query_chunk(namespace, uid),
            decoder=decoder_for(Chunk).decode,
            until=lambda e: e.message.is_final,
        ):
            for choice in entry.message.choices:
                if choice.delta.content and not entry.message.is_final:
                    streamed.set()
                    output.token(choice.delta.content)
    finally:
        await bus.close()


async def _query_broker(
    where: Endpoints, args: argparse.Namespace, kind: str, name: str, began: float
) -> Ending:
    body: dict[str, Any] = {"input": args.input, "target": {"type": kind, "name": name}}
    if args.name:
        body["name"] = args.name
    if args.query_timeout:
        body["timeout"] = args.query_timeout
    async with _http(where) as http:
        accepted = await _call(http, "POST", "/v1/queries", json=body)
        query_id = str(accepted["id"])
        output.say(
            f"query {accepted.get('name')} id {query_id} ({kind}/{name}) in {accepted.get('namespace')}"
        )
        streamed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.timeout):
                async for text in _sse_tokens(http, f"/v1/queries/{query_id}/stream"):
                    streamed = True
                    output.token(text)
        status: dict[str, Any] | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(1.0, args.timeout - (time.monotonic() - began))):
                while True:
                    record = await _call(http, "GET", f"/v1/queries/{query_id}")
                    status = record.get("status") or None
                    if status and status.get("phase") in TERMINAL:
                        break
                    await asyncio.sleep(0.1)
    return Ending(status, time.monotonic() - began, streamed=streamed)


async def _sse_tokens(http: aiohttp.ClientSession, path: str) -> AsyncIterator[str]:
    """The content deltas of an SSE stream of OpenAI chunks, until ``[DONE]``."""
    try:
        async with http.get(
            _tenanted(http, path), timeout=aiohttp.ClientTimeout(total=None)
        ) as response:
            await _raise_for(response)
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield str(content)
    except aiohttp.ClientConnectionError as exc:
        raise CliError(f"the broker closed the stream: {exc}", Exit.UNREACHABLE) from None


# --------------------------------------------------------------------------- get / list / cancel


async def get(args: argparse.Namespace) -> int:
    where, via = _where(args)
    if via == "broker":
        async with _http(where) as http:
            record = await _call(http, "GET", f"/v1/queries/{args.query}")
        output.say(output.as_json(record))
        return Exit.OK
    assert where.kubeconfig is not None
    async with _kube(where.kubeconfig) as client:
        try:
            query = await client.get(Query, where.namespace, args.query)
        except NotFoundError:
            raise CliError(
                f"no Query {args.query!r} in namespace {where.namespace}", Exit.REJECTED
            ) from None
    output.say(output.as_json(msgspec.to_builtins(query)))
    return Exit.OK


async def listing(args: argparse.Namespace) -> int:
    where, via = _where(args)
    rows: list[tuple[str, str, str]] = []
    if via == "broker":
        async with _http(where) as http:
            listing = await _call(http, "GET", "/v1/queries")
        for item in listing.get("items") or []:
            phase = (item.get("status") or {}).get("phase") or "-"
            rows.append((str(item.get("id")), str(item.get("name")), str(phase)))
        header = ("ID", "NAME", "PHASE")
    else:
        assert where.kubeconfig is not None
        async with _kube(where.kubeconfig) as client:
            queries = await client.list(Query, where.namespace)
        for query in queries:
            phase = query.status.phase if query.status and query.status.phase else "-"
            rows.append((query.metadata.uid or "-", query.metadata.name or "-", phase))
        header = ("UID", "NAME", "PHASE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        output.say(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return Exit.OK


async def cancel(args: argparse.Namespace) -> int:
    where, via = _where(args)
    if via == "broker":
        async with _http(where) as http:
            answer = await _call(http, "POST", f"/v1/queries/{args.query}/cancel")
        asked = answer.get("cancelRequested")
        output.say(f"query {args.query}: " + ("cancel requested" if asked else "already ended"))
        return Exit.OK
    assert where.kubeconfig is not None
    async with _kube(where.kubeconfig) as client:
        try:
            await client.patch(Query, where.namespace, args.query, {"spec": {"cancel": True}})
        except NotFoundError:
            raise CliError(
                f"no Query {args.query!r} in namespace {where.namespace}", Exit.REJECTED
            ) from None
    output.say(f"query {args.query}: spec.cancel set")
    return Exit.OK


# --------------------------------------------------------------------------- transports


@contextlib.asynccontextmanager
async def _kube(kubeconfig: str) -> AsyncIterator[KubeClient]:
    try:
        client = await KubeClient.from_kubeconfig(kubeconfig)
    except (OSError, ValueError, KubeError) as exc:
        raise CliError(f"cannot use kubeconfig {kubeconfig}: {exc}", Exit.UNREACHABLE) from None
    try:
        yield client
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise CliError(
            f"the Kubernetes API of {kubeconfig} did not answer: {exc}", Exit.UNREACHABLE
        ) from None
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _http(where: Endpoints) -> AsyncIterator[aiohttp.ClientSession]:
    assert where.broker_url is not None
    async with aiohttp.ClientSession(
        base_url=where.broker_url.rstrip("/") + "/",
        headers={"Authorization": f"Bearer {where.token}"} if where.token else None,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as http:
        _NAMESPACE[id(http)] = where.namespace
        try:
            yield http
        except aiohttp.ClientConnectionError as exc:
            raise CliError(
                f"the broker at {where.broker_url} did not answer: {exc}", Exit.UNREACHABLE
            ) from None
        finally:
            _NAMESPACE.pop(id(http), None)


async def _call(
    http: aiohttp.ClientSession, method: str, path: str, *, json: Any = None
) -> dict[str, Any]:
    async with http.request(method, _tenanted(http, path), json=json) as response:
        await _raise_for(response)
        answer: dict[str, Any] = await response.json()
        return answer


_NAMESPACE: dict[int, str] = {}


def _tenanted(http: aiohttp.ClientSession, path: str) -> str:
    """``path`` relative to the base URL, with the namespace the broker takes the tenant from
    (ignored with token auth, where the token decides)."""
    return f"{path.lstrip('/')}?namespace={_NAMESPACE[id(http)]}"


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    text = await response.text()
    try:
        error = json.loads(text).get("error") or {}
        message = error.get("message") or text
        field = error.get("field")
    except (ValueError, AttributeError):
        message, field = text, None
    where = f" (field {field})" if field else ""
    raise CliError(
        f"the broker refused {response.method} {response.url.path}: "
        f"{response.status} {message}{where}",
        Exit.REJECTED if response.status < 500 else Exit.UNREACHABLE,
    )
