"""``ark-mesh``: run the mesh on this machine and talk to it.

The console script of ``ark-mesh-devmesh``. This module only builds the parser; each command's
code lives in its own module (:mod:`.dev`; :mod:`.query` for ``query``/``get``/``list``/
``cancel``; :mod:`.bus` for ``tail``/``dlq``) and is imported when that command runs, so
``--help`` and the first line of ``dev`` do not wait for the Kubernetes and NATS clients to load.
A :class:`~ark_mesh.cli.errors.CliError` becomes its message on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ark_mesh.devmesh.presets import PRESETS

from .errors import CliError, Exit

__all__ = ["Exit", "main", "parser"]

EPILOG = """\
Where the mesh is: `ark-mesh dev` writes a state file (under $ARK_MESH_HOME, default
$XDG_STATE_HOME/ark-mesh or ~/.local/state/ark-mesh) that the other commands read; flags
(--broker-url, --nats-url, --kubeconfig) and $ARK_MESH_BROKER_URL / $ARK_MESH_NATS_URL win.

Exit codes (stable):
  0  done (the query ended `done`, or the command did what it was asked)
  1  the query ended `error`
  2  invalid arguments
  3  the query ended `canceled`
  4  the query timed out (TimedOutInQueue/TimedOutInExecution) or did not end within --timeout
  5  no mesh to talk to, or it did not answer
  6  the mesh refused the request (unknown query, invalid body)
130  interrupted (Ctrl-C)

Examples:
  ark-mesh dev                                  # the whole mesh here; Ctrl-C stops it
  ark-mesh query --agent assistant "hi"         # tokens as they come, then phase and usage
  ark-mesh tail 'ark.default.>'                 # every message of tenant default, decoded
  ark-mesh dlq                                  # dead letters and why
"""

DEV = """\
Start the whole mesh on this machine (what `make run` does), send one query through it, serve.

Every part is a real process: nats-server with JetStream, a Kubernetes API emulator with the
ark-mesh CRDs, an OpenAI-compatible fake model (or --model-url), and the preset's services,
started at the same time with one line per part as it becomes ready. A `default` Model, an
`assistant` Agent and Ark's streaming ConfigMap are applied, a Query is created and its tokens
streamed. The mesh then stays up (unless --once) until Ctrl-C; configs, kubeconfig, NATS store
and every log are in a run folder that is printed at start and kept after exit.
"""

QUERY = """\
Send a query to an agent, team, model or tool, print its tokens as they come, then its phase,
token usage and duration; the exit code is the phase's (0 done, 1 error, 3 canceled, 4 timed out).

Through the broker (the default when one is known): POST /v1/queries, tokens from its SSE
stream. As a Query CR (--via kube): created through the Kubernetes API, tokens from its chunk
subject on NATS (when there is NATS), status from the CR.
"""

TAIL = """\
Subscribe to a subject pattern (NATS wildcards: `*` one token, `>` the rest) and print each
message as it is published, decoded by its schema tag, one line each:
`<subject>  <schema>  <JSON body>`. This is what a custom consumer sees.
"""

DLQ = """\
List the dead letters stored in ARK_DLQ for the namespace: the subject each came from, the
service that gave up, how many deliveries it had, and the reason.
"""

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    target: str,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(target=target)
    return parser


def _mesh_options(
    parser: argparse.ArgumentParser, *, http: bool = True, namespace: bool = True
) -> None:
    group = parser.add_argument_group("where the mesh is (default: the running `ark-mesh dev`)")
    if http:
        group.add_argument("--broker-url", help="broker API base URL [$ARK_MESH_BROKER_URL]")
    group.add_argument(
        "--nats-url", help="NATS server URL, or several separated by commas [$ARK_MESH_NATS_URL]"
    )
    if http:
        group.add_argument("--kubeconfig", help="kubeconfig of the cluster [$KUBECONFIG]")
        group.add_argument("--token", help="bearer token if the broker wants one [$ARK_MESH_TOKEN]")
    if namespace:
        group.add_argument("-n", "--namespace", help="namespace (= tenant) [default: the mesh's]")
    if http:
        group.add_argument(
            "--via",
            choices=("broker", "kube"),
            help="the broker API or Query CRs (default: the broker when one is known)",
        )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ark-mesh",
        description="Run ark-mesh on this machine and talk to it: queries, subjects, dead letters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(title="commands", metavar="COMMAND", required=True)

    dev = _command(
        commands, "dev", "dev:run", "start the whole mesh here (what `make run` does)", DEV
    )
    dev.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="scale-flexible",
        help="which services run, as in the chart (helm/ark-mesh/presets.yaml; default %(default)s)",
    )
    dev.add_argument(
        "--input",
        default="Hello, Ark! Which mesh am I talking to?",
        help="the first query's input (default: a greeting)",
    )
    dev.add_argument("--no-query", action="store_true", help="start the mesh, send no query")
    dev.add_argument(
        "--once", action="store_true", help="exit after the first query (status: its phase's)"
    )
    dev.add_argument(
        "--nats-cluster",
        nargs="?",
        type=int,
        const=3,
        default=1,
        metavar="NODES",
        help="run NATS as a JetStream cluster of NODES nodes (default 3) with every stream, "
        "KV bucket and consumer replicated on all of them, as the chart's scale presets do",
    )
    dev.add_argument(
        "--nats-auth",
        action="store_true",
        help="run NATS with a user and permissions per service (decision 55; passwords in "
        "files of the run folder) instead of open; the other commands use the operator user",
    )
    dev.add_argument("--model-url", help="a real OpenAI-compatible base URL (…/v1)")
    dev.add_argument("--api-key", help="API key for --model-url")
    dev.add_argument("--model", default="fake-model", help="model id for --model-url")
    dev.add_argument(
        "--workdir",
        type=lambda p: Path(p).absolute(),
        help="the run folder for configs and logs (default: a new one under $ARK_MESH_HOME/runs)",
    )
    dev.add_argument(
        "--timeout", type=float, default=120.0, help="seconds the first query may take"
    )

    query = _command(
        commands,
        "query",
        "query:query",
        "send a query, stream its tokens, exit with its phase",
        QUERY,
    )
    targets = query.add_mutually_exclusive_group(required=True)
    for kind in ("agent", "team", "model", "tool"):
        targets.add_argument(f"--{kind}", metavar="NAME", help=f"send to the {kind} NAME")
    query.add_argument("input", help="the user message")
    query.add_argument("--name", help="the Query's name (default: generated)")
    query.add_argument("--query-timeout", help="the Query's spec.timeout, e.g. 30s (Ark: 5m)")
    query.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the end (default 300)"
    )
    _mesh_options(query)

    get = _command(commands, "get", "query:get", "print one query as JSON")
    get.add_argument("query", help="its id (broker) or name (--via kube)")
    _mesh_options(get)

    listing = _command(commands, "list", "query:listing", "list the namespace's queries")
    _mesh_options(listing)

    cancel = _command(commands, "cancel", "query:cancel", "ask a query to stop (ends `canceled`)")
    cancel.add_argument("query", help="its id (broker) or name (--via kube)")
    _mesh_options(cancel)

    tail = _command(
        commands, "tail", "bus:tail", "print a subject pattern's messages, decoded", TAIL
    )
    tail.add_argument("pattern", help="subject pattern, e.g. 'ark.default.>'")
    tail.add_argument("--count", type=int, help="exit after this many messages")
    _mesh_options(tail, http=False, namespace=False)
    tail.set_defaults(namespace=None)

    dlq = _command(commands, "dlq", "bus:dlq", "list the dead letters with their reasons", DLQ)
    dlq.add_argument("--kind", default="*", help="only this kind (work.<kind>; default: all)")
    dlq.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    _mesh_options(dlq, http=False)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    module, _, function = str(args.target).partition(":")
    try:
        handler: Handler = getattr(importlib.import_module(f"ark_mesh.cli.{module}"), function)
        from ark_mesh.telemetry import configure_logging

        # Only warnings, on stderr: stdout is the command's output (tokens, tail lines, JSON).
        configure_logging("ark-mesh", log_format="console", level="warning")
        return int(asyncio.run(handler(args)))
    except CliError as exc:
        print(f"ark-mesh: {exc}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        return int(Exit.INTERRUPTED)
