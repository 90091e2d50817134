"""``tail`` and ``dlq``: the mesh's subjects as a custom consumer sees them.

``tail`` subscribes to a subject pattern (NATS wildcards: ``*`` one token, ``>`` the rest) and
prints each message as it is published, decoded by its ``schema`` tag: one line per message,
``<subject>  <schema>  <JSON body>``. ``dlq`` reads the dead letters stored in ``ARK_DLQ``, each
with the subject it came from, the service that gave up, the deliveries and the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import msgspec

from ark_mesh.bus import (
    Bus,
    BusError,
    ConnectionSettings,
    StreamReader,
    TopologyMissingError,
    read_whole,
)
from ark_mesh.contracts import DeadLetter, DecodeError, decode_any, decoder_for

from . import output
from .errors import CliError, Exit
from .state import endpoints, nats_servers, no_mesh

__all__ = ["describe", "dlq", "tail"]


async def _connect(args: argparse.Namespace) -> tuple[Bus, str]:
    where = endpoints(
        namespace=args.namespace, broker_url=None, nats_url=args.nats_url, kubeconfig=None
    )
    if not where.nats_url:
        raise no_mesh("nats")
    try:
        bus = await asyncio.wait_for(
            Bus.connect(ConnectionSettings(servers=nats_servers(where.nats_url))), 10.0
        )
    except (BusError, OSError, TimeoutError) as exc:
        raise CliError(
            f"NATS at {where.nats_url} did not answer: {exc}", Exit.UNREACHABLE
        ) from None
    return bus, where.namespace


def describe(subject: str, data: bytes) -> str:
    """One line for a message: subject, schema id and the decoded body as compact JSON."""
    try:
        message = decode_any(data)
    except DecodeError as exc:
        return f"{subject}  (undecodable: {exc})  {len(data)} bytes"
    schema = getattr(message, "SCHEMA", type(message).__name__)
    return f"{subject}  {schema}  {msgspec.json.encode(message).decode()}"


async def tail(args: argparse.Namespace) -> int:
    bus, _ = await _connect(args)
    done = asyncio.Event()
    seen = 0

    async def on_message(msg: Any) -> None:
        nonlocal seen
        if done.is_set():
            return
        output.say(describe(msg.subject, msg.data))
        seen += 1
        if args.count is not None and seen >= args.count:
            done.set()

    try:
        subscription = await bus.nc.subscribe(args.pattern, cb=on_message)
        await bus.nc.flush()
        print(f"tailing {args.pattern} (Ctrl-C stops)", file=sys.stderr, flush=True)
        await done.wait()
        await subscription.unsubscribe()
    finally:
        await bus.close()
    return Exit.OK


async def dlq(args: argparse.Namespace) -> int:
    bus, namespace = await _connect(args)
    subject = f"ark.{namespace}.dlq.{args.kind}"
    found = 0
    try:
        reader = StreamReader(bus)
        async for entry in read_whole(
            reader,
            subject,
            decoder=decoder_for(DeadLetter).decode,
            caught_up=True,
            idle_timeout=5.0,
        ):
            letter = entry.message
            found += 1
            if args.json:
                output.say(
                    msgspec.json.encode({"seq": entry.seq, **msgspec.to_builtins(letter)}).decode()
                )
                continue
            output.say(
                f"#{entry.seq} {letter.dead_at}  {letter.subject}  by {letter.service or '-'} "
                f"after {letter.deliveries} deliveries\n    reason: {letter.reason}"
            )
    except TopologyMissingError:
        raise CliError(
            f"no dead-letter stream holds {subject}: the mesh has not provisioned ARK_DLQ "
            "(preset simple runs without NATS)",
            Exit.UNREACHABLE,
        ) from None
    finally:
        await bus.close()
    if not args.json:
        output.say(f"{found} dead letter(s) on {subject}")
    return Exit.OK
