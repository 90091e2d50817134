"""CPU per streamed answer on the model-call hot path, three ways in one run.

The fake model runs as its own process (zero latency, a 23-word answer streamed one word per
chunk, usage in the last chunk), so the CPU measured here (``time.process_time`` of this
process) is the client's alone:

  sdk-models   the ``openai`` SDK's own stream: a pydantic ``ChatCompletionChunk`` per chunk,
               converted to the mesh's chunk (what ``OpenAIModelClient`` did before)
  mesh-client  ``OpenAIModelClient`` as it is: its thin aiohttp stream, msgspec per ``data:``
  raw-aiohttp  the floor: aiohttp reading the same SSE body, no parsing beyond line splitting

Rounds are interleaved and medians reported.

    uv run python bench/model_client.py [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from openai import AsyncOpenAI

from ark_mesh.contracts import ChunkChoice
from ark_mesh.resolver import ChatRequest, ModelEndpoint, OpenAIModelClient
from ark_mesh.testing.fake_llm.process import FakeModelProcess

ANSWER = " ".join(f"word{i}" for i in range(23))
MESSAGES = [{"role": "user", "content": "stream it"}]


async def sdk_models(client: AsyncOpenAI) -> int:
    """The previous implementation's per-chunk work: SDK models, dumped and converted."""
    stream: Any = await client.chat.completions.create(
        model="fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    count = 0
    async with stream:
        async for chunk in stream:
            msgspec.convert(
                [c.model_dump(mode="json", exclude_none=True) for c in chunk.choices],
                tuple[ChunkChoice, ...],
            )
            count += 1
    return count


async def mesh_client(client: OpenAIModelClient, endpoint: ModelEndpoint) -> int:
    count = 0
    async with client.stream(endpoint, ChatRequest(messages=MESSAGES)) as chunks:
        async for _ in chunks:
            count += 1
    return count


async def raw_aiohttp(session: aiohttp.ClientSession, url: str) -> int:
    body = {"model": "fake", "messages": MESSAGES, "stream": True}
    count = 0
    async with session.post(f"{url}/chat/completions", json=body) as response:
        async for line in response.content:
            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                count += 1
    return count


async def measure(call: Callable[[], Awaitable[int]], calls: int) -> tuple[float, float]:
    """CPU-ms and wall-ms per call, over ``calls`` sequential calls."""
    await call()  # warm up connections and caches
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await call()
    return (
        (time.process_time() - cpu) * 1000 / calls,
        (time.perf_counter() - wall) * 1000 / calls,
    )


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "script.json"
        script.write_text(json.dumps({"rules": [{"reply": {"content": ANSWER, "chunk_words": 1}}]}))
        fake = FakeModelProcess(script=script)
        await fake.start()
        try:
            url = f"{fake.url}/v1"
            sdk = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
            mesh = OpenAIModelClient(max_retries=0)
            endpoint = ModelEndpoint(
                name="bench", namespace="b", provider="openai", model="fake", base_url=url
            )
            async with aiohttp.ClientSession() as session:
                ways: dict[str, Callable[[], Awaitable[int]]] = {
                    "sdk-models": lambda: sdk_models(sdk),
                    "mesh-client": lambda: mesh_client(mesh, endpoint),
                    "raw-aiohttp": lambda: raw_aiohttp(session, url),
                }
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
                for _ in range(rounds):
                    for name, call in ways.items():
                        results[name].append(await measure(call, calls))
            await sdk.close()
            await mesh.aclose()
        finally:
            await fake.stop()
    print(f"# {calls} streamed answers of 24 chunks per way per round, {rounds} rounds")
    print(f"# {platform.node()} {platform.python_version()} {time.strftime('%Y-%m-%d')}")
    print("| way | CPU-ms per answer | wall-ms per answer |")
    print("|---|---|---|")
    for name, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"| {name} | {cpu:.2f} | {wall:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.rounds))
