"""Bus throughput: publish → consume → ack through ark-mesh's runtime vs raw nats-py.

Both sides move the same messages (same bytes, same ``Nats-Msg-Id`` and ``Ark-Schema``
headers) through the same work-queue stream and durable pull consumer of one nats-server
(file storage, loopback) started by this script, in the same run, alternating rounds so machine
noise hits both alike. A round is timed from the first publish to the moment the last message
is acknowledged (acks flushed to the server).

* **raw**: ``js.publish_async`` with nats-py's own window, and a ``fetch(batch)`` + decode +
  ``ack`` loop on a second connection.
* **runtime**: :class:`ark_mesh.bus.Publisher.publish_nowait` (bounded window) and a
  :class:`ark_mesh.bus.Worker` (decode, context, span, metrics, slots, heartbeats) with a no-op
  handler, on two connections. Telemetry as a service runs it without an OTLP endpoint.

* **runtime-encrypted** (``--encrypt``): the runtime with per-tenant AES-256-GCM payload
  encryption on for the bench tenant (sealed on publish, opened in the worker), to measure the
  cost of encryption at rest against the plain runtime.

Usage: ``uv run python bench/bus_throughput.py [--messages 20000] [--rounds 5] [--encrypt]``.
It stops by itself and prints a Markdown table with medians and the runtime/raw ratio (and the
encrypted/plain runtime ratio with ``--encrypt``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import nats
from nats.aio.msg import Msg

from ark_mesh.bus import (
    Bus,
    MessageContext,
    PayloadCipher,
    Publisher,
    PublisherSettings,
    Topology,
    TopologyConfig,
    Worker,
    WorkerSettings,
)
from ark_mesh.contracts import (
    MSG_ID_HEADER,
    SCHEMA_HEADER,
    EmbeddingsRequest,
    decoder_for,
    encode,
    subjects,
)
from ark_mesh.telemetry import configure_logging
from ark_mesh.testing.nats_server import NatsServer

TENANT = "bench"
DURABLE = "embeddings-reconciler"
SUBJECT = subjects.work_embeddings(TENANT)


def message(index: int) -> EmbeddingsRequest:
    return EmbeddingsRequest(
        request_id=f"req-{index:08d}",
        tenant=TENANT,
        namespace=TENANT,
        model="all-minilm-l6-v2",
        input=["The quick brown fox jumps over the lazy dog."],
        submitted_at="2026-01-01T00:00:00+00:00",
    )


async def reset(admin: Bus) -> None:
    """Empty the work stream and recreate the consumer so every round starts alike."""
    await admin.jsm.purge_stream(subjects.ARK_WORK)
    await admin.jsm.delete_consumer(subjects.ARK_WORK, DURABLE)
    await Topology(TopologyConfig()).provision(admin)


async def raw_round(url: str, count: int, window: int, batch: int, tag: str) -> float:
    producer = await nats.connect(url, name="raw-producer", skip_subject_validation=True)
    consumer = await nats.connect(url, name="raw-consumer", skip_subject_validation=True)
    js = producer.jetstream(publish_async_max_pending=window)
    sub = await consumer.jetstream().pull_subscribe_bind(DURABLE, stream=subjects.ARK_WORK)
    decode = decoder_for(EmbeddingsRequest)
    payloads = [encode(message(index)) for index in range(count)]
    schema = EmbeddingsRequest.SCHEMA
    done = asyncio.Event()

    async def consume() -> None:
        handled = 0
        while handled < count:
            try:
                batch_msgs = await sub.fetch(batch, timeout=1)
            except TimeoutError:
                continue
            for msg in batch_msgs:
                decode(msg.data)
                await msg.ack()
                handled += 1
        await consumer.flush()
        done.set()

    started = time.perf_counter()
    consuming = asyncio.create_task(consume())
    for index, payload in enumerate(payloads):
        headers = {MSG_ID_HEADER: f"{tag}-{index}", SCHEMA_HEADER: schema}
        await js.publish_async(SUBJECT, payload, headers=headers)
    await js.publish_async_completed()
    await done.wait()
    elapsed = time.perf_counter() - started
    await consuming
    await producer.close()
    await consumer.close()
    return count / elapsed


async def raw_callback_round(url: str, count: int, window: int, batch: int, tag: str) -> float:
    """The strongest plain nats-py consumer we know: pull requests issued by hand and messages
    handled in the subscription callback (no per-message ``next_msg`` task as in ``fetch``)."""
    producer = await nats.connect(url, name="raw-producer", skip_subject_validation=True)
    consumer = await nats.connect(url, name="raw-consumer", skip_subject_validation=True)
    js = producer.jetstream(publish_async_max_pending=window)
    decode = decoder_for(EmbeddingsRequest)
    payloads = [encode(message(index)) for index in range(count)]
    schema = EmbeddingsRequest.SCHEMA
    inbox = consumer.new_inbox()
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.ARK_WORK}.{DURABLE}"
    request = json.dumps({"batch": batch, "expires": 1_000_000_000}).encode()
    done = asyncio.Event()
    state = {"handled": 0, "outstanding": 0}

    async def pull() -> None:
        state["outstanding"] = batch
        await consumer.publish(next_subject, request, reply=inbox)

    async def on_msg(msg: Msg) -> None:
        if not msg.reply:  # 408 request expired: ask again
            await pull()
            return
        decode(msg.data)
        await msg.ack()
        state["handled"] += 1
        state["outstanding"] -= 1
        if state["handled"] == count:
            await consumer.flush()
            done.set()
        elif state["outstanding"] == 0:
            await pull()

    await consumer.subscribe(inbox, cb=on_msg)
    started = time.perf_counter()
    await pull()
    for index, payload in enumerate(payloads):
        headers = {MSG_ID_HEADER: f"{tag}-{index}", SCHEMA_HEADER: schema}
        await js.publish_async(SUBJECT, payload, headers=headers)
    await js.publish_async_completed()
    await done.wait()
    elapsed = time.perf_counter() - started
    await producer.close()
    await consumer.close()
    return count / elapsed


async def runtime_round(
    url: str,
    count: int,
    window: int,
    slots: int,
    tag: str,
    *,
    cipher: PayloadCipher | None = None,
) -> float:
    producer_bus = await Bus.connect(servers=(url,), name="runtime-producer", encryption=cipher)
    worker_bus = await Bus.connect(servers=(url,), name="runtime-worker", encryption=cipher)
    publisher = await Publisher.create(producer_bus, PublisherSettings(window=window))
    messages = [message(index) for index in range(count)]
    done = asyncio.Event()
    handled = 0

    async def handle(_: EmbeddingsRequest, __: MessageContext) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            done.set()

    worker = Worker.for_type(
        worker_bus,
        (subjects.ARK_WORK, DURABLE),
        EmbeddingsRequest,
        handle,
        settings=WorkerSettings(slots=slots),
    )
    await worker.start()
    started = time.perf_counter()
    for index, item in enumerate(messages):
        await publisher.publish_nowait(SUBJECT, item, msg_id=f"{tag}-{index}")
    await publisher.flush()
    await done.wait()
    # The last handler returned; its task acks before it ends.
    await worker.wait_idle()
    await worker_bus.nc.flush()
    elapsed = time.perf_counter() - started
    await worker.stop()
    await publisher.close()
    await producer_bus.close()
    await worker_bus.close()
    return count / elapsed


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="warning")
    results: dict[str, list[float]] = {"raw-fetch": [], "raw-callback": [], "runtime": []}
    with tempfile.TemporaryDirectory(prefix="ark-bench-") as store:
        server = NatsServer(store).start()
        try:
            admin = await Bus.connect(servers=(server.url,), name="bench-admin")
            await Topology(TopologyConfig()).provision(admin)
            rounds: list[tuple[str, Callable[[str], Awaitable[float]]]] = []
            sides: dict[str, Callable[[str, int, int, int, str], Awaitable[float]]] = {
                "raw-fetch": raw_round,
                "raw-callback": raw_callback_round,
            }
            sides["runtime"] = runtime_round
            if args.encrypt:
                # A fresh random key per run: the bench measures the work, not key handling.
                cipher = PayloadCipher({TENANT: {"bench-1": os.urandom(32)}})
                sides["runtime-encrypted"] = functools.partial(runtime_round, cipher=cipher)
                results["runtime-encrypted"] = []
            for _ in range(args.rounds):
                for name, side in sides.items():
                    rounds.append((name, _bind(side, server.url, args)))
            for number, (name, run) in enumerate(rounds, 1):
                await reset(admin)
                # Message ids differ per round: the stream's duplicate window would drop
                # a repeated id and the round would wait forever for it.
                rate = await run(f"r{number}")
                results[name].append(rate)
                print(f"round {number:2d} {name:17s} {rate:10.0f} msg/s", file=sys.stderr)
            await admin.close()
        finally:
            server.stop()

    medians = {name: statistics.median(rates) for name, rates in results.items()}
    runtime = medians["runtime"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        "| date | messages x rounds | raw nats-py, fetch loop | raw nats-py, callback pull "
        "| ark-mesh runtime | runtime ÷ fetch | runtime ÷ callback |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {stamp} | {args.messages} x {args.rounds} | {medians['raw-fetch']:,.0f} msg/s "
        f"| {medians['raw-callback']:,.0f} msg/s | {runtime:,.0f} msg/s "
        f"| {runtime / medians['raw-fetch']:.2f} | {runtime / medians['raw-callback']:.2f} |"
    )
    if args.encrypt:
        encrypted = medians["runtime-encrypted"]
        print()
        print(
            "| runtime, plain | runtime, encrypted (aes-256-gcm) | encrypted ÷ plain |\n"
            "|---|---|---|\n"
            f"| {runtime:,.0f} msg/s | {encrypted:,.0f} msg/s | {encrypted / runtime:.2f} |"
        )
    print()
    for name, rates in results.items():
        print(f"rounds {name}: {', '.join(f'{rate:,.0f}' for rate in rates)}")
    print(
        f"python {platform.python_version()}, nats-py {nats_version()}, "
        f"window {args.window}, slots/batch {args.slots}, {os.cpu_count()} CPUs"
    )


def _bind(
    side: Callable[[str, int, int, int, str], Awaitable[float]],
    url: str,
    args: argparse.Namespace,
) -> Callable[[str], Awaitable[float]]:
    def run(tag: str) -> Awaitable[float]:
        return side(url, args.messages, args.window, args.slots, tag)

    return run


def nats_version() -> str:
    from importlib.metadata import version

    return version("nats-py")


if __name__ == "__main__":
    # A SIGTERM (e.g. from `timeout`) unwinds like an exception, so the nats-server this script
    # started is stopped by the `finally` in main() instead of being left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged publishes")
    parser.add_argument("--slots", type=int, default=256, help="worker slots = raw fetch batch")
    parser.add_argument(
        "--encrypt", action="store_true", help="also run the runtime with payload encryption"
    )
    asyncio.run(main(parser.parse_args()))
