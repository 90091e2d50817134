"""``make run``: the mesh on this machine, one query through it, then keep serving.

Starts every part as a real process (:class:`~ark_mesh.testing.mesh.LocalMesh`), applies a
``default`` Model (the built-in OpenAI-compatible fake unless ``--model-url`` names a real
endpoint), an ``assistant`` Agent and Ark's streaming ConfigMap (so model calls stream token by
token), creates a Query the way ``kubectl apply`` would, streams
its tokens from ``ark.<tenant>.query.<uid>.chunk`` and prints the final status. Then it stays up
(unless ``--once``) and prints how to reach the emulated cluster and NATS, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from ark_mesh.bus import Bus, ConnectionSettings, StreamReader
from ark_mesh.contracts import Chunk, Query, decoder_for, subjects
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing import ark_objects
from ark_mesh.testing.mesh import PRESETS, LocalMesh, Preset

__all__ = ["main"]

QUERY_NAME = "hello-ark"


def _broker_url(mesh: LocalMesh) -> str:
    return f"http://127.0.0.1:{mesh.services['broker'].config['http']['port']}"


def _say(text: str = "") -> None:
    print(text, flush=True)


async def _wait_terminal(mesh: LocalMesh, within: float) -> Query:
    async with await mesh.client() as client, asyncio.timeout(within):
        while True:
            query = await client.get(Query, mesh.namespace, QUERY_NAME)
            if query.status is not None and query.status.phase in ("done", "error", "canceled"):
                return query
            await asyncio.sleep(0.1)


async def _uid(mesh: LocalMesh) -> str:
    async with await mesh.client() as client:
        query = await client.get(Query, mesh.namespace, QUERY_NAME)
        return query.metadata.uid or ""


async def _stream_tokens(mesh: LocalMesh, uid: str) -> None:
    """Print the query's tokens as they arrive on its chunk subject, until the final chunk."""
    assert mesh.nats is not None
    bus = await Bus.connect(ConnectionSettings(servers=(mesh.nats.url,)))
    try:
        reader = StreamReader(bus)
        subject = subjects.query_chunk(mesh.namespace, uid)
        async for entry in reader.read(
            subject, decoder=decoder_for(Chunk).decode, until=lambda e: e.message.is_final
        ):
            chunk = entry.message
            for choice in chunk.choices:
                if choice.delta.content and not chunk.is_final:
                    sys.stdout.write(choice.delta.content)
                    sys.stdout.flush()
        _say()
    finally:
        await bus.close()


async def run(args: argparse.Namespace) -> int:
    preset: Preset = args.preset
    _say(f"starting the local mesh (preset {preset}) ...")
    workdir: Path | None = args.workdir
    async with LocalMesh(
        preset=preset,
        workdir=workdir,
        model_url=args.model_url,
        api_key=args.api_key,
        model_id=args.model,
        streaming=True,
    ) as mesh:
        parts = [
            "Kubernetes API emulator",
            "fake OpenAI-compatible model" if mesh.fake_llm else "model " + (args.model_url or ""),
        ]
        if mesh.nats is not None:
            parts.insert(0, f"nats-server {mesh.nats.url}")
        parts += sorted(mesh.services)
        _say("running: " + ", ".join(parts))
        async with await mesh.client() as client:
            await client.create(ark_objects.query(QUERY_NAME, mesh.namespace, args.input))
        _say(f"\nQuery {QUERY_NAME} -> agent/assistant: {args.input}\n")
        if mesh.nats is not None:
            uid = await _uid(mesh)
            await asyncio.wait_for(_stream_tokens(mesh, uid), timeout=args.timeout)
        query = await _wait_terminal(mesh, args.timeout)
        status = query.status
        assert status is not None
        summary = {
            "phase": status.phase,
            "content": status.response.content if status.response else None,
            "tokenUsage": {
                "promptTokens": status.token_usage.prompt_tokens,
                "completionTokens": status.token_usage.completion_tokens,
                "totalTokens": status.token_usage.total_tokens,
            }
            if status.token_usage
            else None,
            "duration": status.duration,
            "conditions": [
                {"type": c.type, "status": c.status, "reason": c.reason}
                for c in status.conditions or []
            ],
        }
        _say("status: " + json.dumps(summary, indent=2))
        if args.once:
            return 0 if status.phase == "done" else 1
        _say(
            "\nThe mesh keeps running. Try:\n"
            f"  kubectl --kubeconfig {mesh.kubeconfig} get queries\n"
            f"  kubectl --kubeconfig {mesh.kubeconfig} apply -f <your-query.yaml>\n"
            + (f"  NATS: {mesh.nats.url}  (subjects ark.{mesh.namespace}.>)\n" if mesh.nats else "")
            + (
                f"  broker API: {_broker_url(mesh)}/v1/queries  "
                f"(OpenAI-compatible: {_broker_url(mesh)}/openai/v1)\n"
                if "broker" in mesh.services
                else ""
            )
            + f"  logs: {mesh.workdir}/*.log\n"
            "Ctrl-C stops everything."
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _say("stopping ...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="scale-flexible")
    parser.add_argument("--input", default="Hello, Ark! Which mesh am I talking to?")
    parser.add_argument("--once", action="store_true", help="exit after the first query")
    parser.add_argument("--model-url", help="a real OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--api-key", help="API key for --model-url")
    parser.add_argument("--model", default="fake-model", help="model id for --model-url")
    parser.add_argument(
        "--workdir", type=lambda p: Path(p).absolute(), help="keep configs and logs here"
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    # The services log to their own files; this process only narrates.
    configure_logging("ark-mesh-demo", log_format="console", level="warning")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
