"""Run the fake model server as a process: ``python -m ark_mesh.testing.fake_llm --port N``.

The first line on stdout is ``fake-llm listening on http://HOST:PORT`` once the socket accepts
connections, so a parent started with ``--port 0`` learns the port without guessing or polling.
The server stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ark_mesh.testing.fake_llm.script import Script, ScriptError, load_script
from ark_mesh.testing.fake_llm.server import FakeModelServer


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ark_mesh.testing.fake_llm",
        description="OpenAI-compatible fake model server with scripted replies.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 picks a free one)")
    parser.add_argument("--script", help="YAML or JSON file with rules (see script.py)")
    return parser.parse_args(argv)


async def _serve(host: str, port: int, script: Script) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = FakeModelServer(script)
    await server.start(host, port)
    try:
        print(f"fake-llm listening on {server.url}", flush=True)
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        script = load_script(args.script) if args.script else Script()
    except ScriptError as exc:
        print(f"fake-llm: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(args.host, args.port, script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
