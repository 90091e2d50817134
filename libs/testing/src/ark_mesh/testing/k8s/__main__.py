"""Run the emulator as a process: ``python -m ark_mesh.testing.k8s --port 0 --crds DIR``.

Prints one line ``listening on http://127.0.0.1:<port>`` once it accepts connections (so a
parent started with ``--port 0`` learns the port), then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ark_mesh.testing.k8s.emulator import KubeEmulator
from ark_mesh.testing.k8s.server import EmulatorConfig


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ark_mesh.testing.k8s", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--crds",
        nargs="*",
        default=[],
        metavar="DIR_OR_FILE",
        help="CRD YAML files or directories to register at start",
    )
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument(
        "--history-size",
        type=int,
        default=1000,
        help="changes a watch can resume across before it gets 410 Gone",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=1.0,
        help="seconds between BOOKMARK events on idle watches",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        history_size=args.history_size, bookmark_interval=args.bookmark_interval
    )
    emulator = KubeEmulator(crd_paths=args.crds, config=config, kubeconfig_path=args.kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = await emulator.start(args.host, args.port)
    print(f"listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    try:
        asyncio.run(_serve(args))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
