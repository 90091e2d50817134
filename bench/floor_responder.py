"""The floors' other end in bench/broker.py: raw nats-py (and aiohttp) doing a query's work.

It takes work messages from a durable consumer on the floor's work stream and answers each with
the chunk messages the mesh would store for it (their sizes come from the bench's calibration,
as JSON: ``{"chunk_bytes": [...]}``), published to the floor's chunk stream with async acks;
a work message saying ``"model": true`` first streams the answer from the fake model with a
plain aiohttp client and publishes a chunk per event it reads. Its own process, with nothing
imported but nats-py and aiohttp, so its CPU and memory are what a minimal service costs.

    python bench/floor_responder.py NATS_URL MODEL_BASE_URL SHAPE_JSON

It prints ``ready`` once subscribed and stops when its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import nats
from nats.aio.msg import Msg
from nats.js import api

FLOOR_WORK = "bench.floor.work"
FLOOR_CHUNKS = "bench.floor.*.chunk"
FLOOR_WORK_STREAM = "BENCH_FLOOR_WORK"
FLOOR_CHUNK_STREAM = "BENCH_FLOOR_CHUNKS"
FLOOR_DURABLE = "floor-responder"
SYSTEM_PROMPT = "You are a helpful assistant."


async def respond(nats_url: str, model_url: str, chunk_bytes: list[int]) -> None:
    """The floor's other end, in its own process so its CPU is counted like a service's."""
    chunks = [b"x" * size for size in chunk_bytes]
    nc = await nats.connect(nats_url, name="floor-responder", skip_subject_validation=True)
    js = nc.jetstream()
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = json.dumps(
        {
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "bench"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(msg: Msg) -> None:
        work = json.loads(msg.data)
        subject = f"bench.floor.{work['id']}.chunk"
        acks = []
        sent = 0
        if work["model"]:
            async with http.post(
                f"{model_url}/chat/completions",
                data=body,
                headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
            ) as response:
                async for line in response.content:
                    event = line.startswith(b"data: ") and not line.startswith(b"data: [DONE]")
                    if event and sent < len(chunks) - 1:
                        acks.append(await js.publish_async(subject, chunks[sent]))
                        sent += 1
        for payload in chunks[sent:]:
            acks.append(await js.publish_async(subject, payload))
        await asyncio.gather(*acks)
        await msg.ack()

    async def handle(msg: Msg) -> None:
        task = asyncio.create_task(serve(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await js.subscribe(
        FLOOR_WORK,
        durable=FLOOR_DURABLE,
        stream=FLOOR_WORK_STREAM,
        cb=handle,
        manual_ack=True,
        config=api.ConsumerConfig(max_ack_pending=4096),
    )
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()
    await nc.close()
    await http.close()


if __name__ == "__main__":
    shape = json.loads(Path(sys.argv[3]).read_text())
    asyncio.run(respond(sys.argv[1], sys.argv[2], shape["chunk_bytes"]))
