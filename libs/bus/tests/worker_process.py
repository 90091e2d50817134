"""A worker service in its own process, for the crash and drain tests.

Started by the tests as ``python worker_process.py --url nats://… [options]``. Each handler
invocation is recorded in the ``ATTEMPTS`` stream; the handler's *effect* is a KV ``create``
of ``done.<msg id>`` in bucket ``effects``, which doubles as the idempotency record: a second
invocation for the same message finds the key, skips the effect and says so on
``test.skipped.<msg id>``. ``--hang-after-effect`` makes the handler stop dead right after its
effect (before the ack), as a process that is about to be killed would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random

from nats.js.errors import KeyWrongLastSequenceError
from opentelemetry import trace

from ark_mesh.bus import Bus, MessageContext, Worker, WorkerSettings, shutdown_signal
from ark_mesh.contracts import EmbeddingsRequest
from ark_mesh.telemetry import configure_logging


async def main(args: argparse.Namespace) -> None:
    configure_logging("test-worker", log_format="json")
    bus = await Bus.connect(servers=(args.url,), name=f"worker-{os.getpid()}")
    effects = await bus.key_value("effects")
    pid = str(os.getpid()).encode()

    async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
        msg_id = context.msg_id or message.request_id
        span = trace.get_current_span().get_span_context()
        await bus.js.publish(
            f"attempts.{msg_id}",
            pid,
            headers={"delivery": str(context.delivery), "trace-id": format(span.trace_id, "032x")},
        )
        if args.work_max > 0:
            await asyncio.sleep(random.uniform(args.work_min, args.work_max))
        try:
            await effects.create(f"done.{msg_id}", pid)
        except KeyWrongLastSequenceError:
            await bus.nc.publish(f"test.skipped.{msg_id}", pid)
            return
        if args.hang_after_effect:
            await bus.nc.publish("test.hung", pid)
            await bus.nc.flush()
            await asyncio.Event().wait()

    worker = Worker.for_type(
        bus,
        ("ARK_WORK", "embeddings-reconciler"),
        EmbeddingsRequest,
        handle,
        settings=WorkerSettings(slots=args.slots, grace_period=args.grace, service="test-worker"),
    )
    stop = shutdown_signal()
    await worker.start()
    await bus.nc.publish("test.ready", pid)
    await bus.nc.flush()
    await stop.wait()
    await worker.stop()
    print(json.dumps({"pid": os.getpid(), "stats": worker.stats.__dict__}), flush=True)
    await bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--grace", type=float, default=20.0)
    parser.add_argument("--work-min", type=float, default=0.0)
    parser.add_argument("--work-max", type=float, default=0.0)
    parser.add_argument("--hang-after-effect", action="store_true")
    asyncio.run(main(parser.parse_args()))
