"""``ark-mesh dev`` (what ``make run`` calls): the whole mesh here, one query through it, serve.

Every part is a real process (:class:`~ark_mesh.devmesh.LocalMesh`), started concurrently with
one line per part as it becomes ready. A ``default`` Model (the built-in fake unless
``--model-url`` names a real endpoint), an ``assistant`` Agent and Ark's streaming ConfigMap are
applied; a Query is created the way ``kubectl apply`` would, its tokens streamed from
``ark.<tenant>.query.<uid>.chunk`` and its status printed. Then the mesh stays up (unless
``--once``) until Ctrl-C. Configs, the kubeconfig, the NATS store and every log live in one run
folder that is printed at start and kept after exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ark_mesh.devmesh.presets import Preset

from . import output
from .errors import Exit
from .state import DevState, home, remove_state, write_state

if TYPE_CHECKING:
    from ark_mesh.devmesh.mesh import LocalMesh

__all__ = ["run"]

QUERY_NAME = "hello-ark"


def _run_folder() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return home() / "runs" / f"{stamp}-{os.getpid()}"


async def run(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir or _run_folder()
    preset: Preset = args.preset
    output.say(f"ark-mesh dev: preset {preset}; configs and logs in {workdir}")
    # Said before the mesh's code loads (seconds of imports), so the terminal is never silent.
    from ark_mesh.devmesh.mesh import LocalMesh

    began = time.monotonic()

    def ready(part: str, seconds: float) -> None:
        output.say(f"  ready  {part:<22} {seconds:5.1f}s")

    mesh = LocalMesh(
        preset=preset,
        workdir=workdir,
        model_url=args.model_url,
        api_key=args.api_key,
        model_id=args.model,
        streaming=True,
        on_ready=ready,
        nats_nodes=args.nats_cluster,
        nats_auth=args.nats_auth,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(mesh.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await mesh.stop()
        output.say(f"interrupted while starting; logs kept in {workdir}")
        return Exit.INTERRUPTED
    stopping.cancel()
    try:
        starting.result()
    except Exception as exc:
        output.say(f"the mesh did not start: {exc}\nlogs kept in {workdir}")
        return Exit.UNREACHABLE
    try:
        broker_url = _broker_url(mesh)
        state = DevState(
            pid=os.getpid(),
            preset=preset,
            namespace=mesh.namespace,
            workdir=str(workdir),
            kubeconfig=str(mesh.kubeconfig),
            # Comma-separated for a cluster: the other commands split it (NATS's own convention).
            nats_url=",".join(_tool_urls(mesh)) or None,
            broker_url=broker_url,
        )
        state_path = write_state(state)
        output.say(f"mesh ready in {time.monotonic() - began:.1f}s")
        code: int = Exit.OK
        if not args.no_query:
            code = await _first_query(mesh, args)
        if args.once:
            return code
        output.say(
            "\nThe mesh keeps running. Try:\n"
            f'  ark-mesh query --agent assistant "hi"\n'
            f"  ark-mesh tail 'ark.{mesh.namespace}.>'\n"
            f"  kubectl --kubeconfig {mesh.kubeconfig} get queries\n"
            + (
                f"  NATS: {','.join(mesh.nats_urls)}  (subjects ark.{mesh.namespace}.>)\n"
                if mesh.nats_urls
                else ""
            )
            + (
                f"  broker API: {broker_url}/v1/queries  (OpenAI-compatible: {broker_url}/openai/v1)\n"
                if broker_url
                else ""
            )
            + f"  logs: {workdir}/*.log   (state for the other commands: {state_path})\n"
            "Ctrl-C stops everything; the logs stay."
        )
        await stop.wait()
        output.say("stopping ...")
        return Exit.OK
    finally:
        remove_state(os.getpid())
        await mesh.stop()
        output.say(f"stopped; logs kept in {workdir}")


def _tool_urls(mesh: LocalMesh) -> list[str]:
    """NATS URLs for the other commands: with ``--nats-auth``, the operator's credentials in
    them (the state file is the user's own; the printed URLs never carry them)."""
    if mesh.credentials is not None:
        return mesh.credentials.operator_urls(mesh.nats_urls)
    return mesh.nats_urls


def _broker_url(mesh: LocalMesh) -> str | None:
    broker = mesh.services.get("broker")
    if broker is None:
        return None
    return f"http://127.0.0.1:{broker.config['http']['port']}"


async def _first_query(mesh: LocalMesh, args: argparse.Namespace) -> int:
    """Create the greeting Query as ``kubectl apply`` would and follow it to its end."""
    from ark_mesh.contracts import ObjectMeta, Query, QuerySpec, QueryTarget

    from .query import follow_kube

    query = Query(
        metadata=ObjectMeta(name=QUERY_NAME, namespace=mesh.namespace),
        spec=QuerySpec(input=args.input, target=QueryTarget(type="agent", name="assistant")),
    )
    output.say(f"\nQuery {QUERY_NAME} -> agent/assistant: {args.input}")
    async with await mesh.client() as client:
        created = await client.create(query)
    ending = await follow_kube(
        str(mesh.kubeconfig),
        ",".join(_tool_urls(mesh)) or None,
        mesh.namespace,
        QUERY_NAME,
        created.metadata.uid or "",
        within=args.timeout,
    )
    output.ending(ending)
    return ending.exit_code
