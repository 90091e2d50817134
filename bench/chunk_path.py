"""CPU per chunk of the broker's SSE chunk path, without I/O (issue 14).

Two parts of what the broker does for every chunk of every client, measured apart from NATS and
HTTP so a change shows up above the noise of the whole mesh:

* **serialization**: reading a stored chunk and making the SSE ``data:`` of it — the decoding
  path (decode the whole ``Chunk``, decode it again as a dict, drop ``schema``, encode) against
  the relay (decode a ``ChunkHead``, cut the tag off the stored bytes), for a token chunk and a
  final chunk;
* **machinery**: the broker's ``pump`` over ``in_sequence`` with the idle watch, fed one chunk per
  event-loop turn by a queue (as the shared feed hands them over), writing to a response that
  discards the bytes; with the bare queue hand-over for reference.

    uv run python bench/chunk_path.py [--chunks 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
import timeit
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from harness import machine_line

from ark_mesh.broker.openai_compat import openai_chunk
from ark_mesh.broker.streaming import pump
from ark_mesh.bus import StreamEntry, in_sequence
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkHead,
    ChunkHeadArk,
    ChunkUsage,
    ObjectMeta,
    Query,
    QuerySpec,
    QueryStatus,
    QueryTarget,
    TokenUsage,
    decoder_for,
    encode,
)

_UID = "0b1f4c8e-1111-2222-3333-444455556666"


def _stored_chunks() -> dict[str, bytes]:
    ark = ArkChunkMetadata(
        query=_UID, session=_UID, target="agent/assistant", agent="assistant", model="default"
    )
    token = Chunk(
        id="chatcmpl-abc",
        created=1_764_440_000,
        model="default",
        choices=[ChunkChoice(delta=ChunkDelta(content="word3 "))],
        ark=ark,
        seq=4,
    )
    usage = TokenUsage(prompt_tokens=10, completion_tokens=20, total_tokens=30)
    completed = Query(
        metadata=ObjectMeta(name="q-1", namespace="default", uid=_UID),
        spec=QuerySpec(input="word " * 20, target=QueryTarget(type="agent", name="assistant")),
        status=QueryStatus(phase="done", duration="0.05s", token_usage=usage),
    )
    final = Chunk(
        id="chatcmpl-final",
        created=1_764_440_000,
        model="q-1",
        choices=[ChunkChoice(delta=ChunkDelta(content=""), finish_reason="stop")],
        usage=ChunkUsage(prompt_tokens=10, completion_tokens=20, total_tokens=30),
        ark=msgspec.structs.replace(ark, completed_query=completed),
        seq=21,
    )
    return {"token chunk": encode(token), "final chunk": encode(final)}


def _decoding_path(data: bytes) -> bytes:
    decoder_for(Chunk).decode(data)
    chunk: dict[str, Any] = msgspec.json.decode(data)
    chunk.pop("schema", None)
    return msgspec.json.encode(chunk)


def _relay(data: bytes) -> bytes:
    decoder_for(ChunkHead).decode(data)
    return openai_chunk(data)


def _micros(call: Callable[[], object], number: int) -> float:
    return timeit.timeit(call, number=number) / number * 1e6


class _Discard:
    """A response whose writes go nowhere."""

    async def write(self, data: bytes) -> None:
        return None


async def _from(queue: asyncio.Queue[StreamEntry[ChunkHead] | None]) -> AsyncIterator[Any]:
    while (item := await queue.get()) is not None:
        yield item


async def _never_ended(next_seq: int) -> StreamEntry[ChunkHead] | None:
    return None


async def _per_chunk(chunks: int, *, through_pump: bool) -> float:
    """CPU µs per chunk: a producer puts one chunk per loop turn; the consumer is the bare
    queue, or pump over in_sequence with the idle watch (as ``/v1/queries/{id}/stream``)."""
    queue: asyncio.Queue[StreamEntry[ChunkHead] | None] = asyncio.Queue()

    async def produce() -> None:
        for seq in range(1, chunks + 1):
            head = ChunkHead(seq=seq, ark=ChunkHeadArk())
            queue.put_nowait(
                StreamEntry(seq=seq, subject="s", data=b"x", headers={}, message=head, pending=0)
            )
            await asyncio.sleep(0)
        queue.put_nowait(None)

    async def consume() -> None:
        if not through_pump:
            async for _ in _from(queue):
                pass
            return
        entries = in_sequence(_from(queue), idle=20.0, on_idle=_never_ended)
        await pump(_Discard(), entries, lambda entry: entry.data, 15.0)  # type: ignore[arg-type]

    started = time.process_time()
    await asyncio.gather(produce(), consume())
    return (time.process_time() - started) / chunks * 1e6


async def main(args: argparse.Namespace) -> None:
    print(f"Run: {machine_line()}.\n")
    print("| chunk | decoding path µs | relay µs |\n|---|---:|---:|")
    for name, data in _stored_chunks().items():
        slow = _micros(functools.partial(_decoding_path, data), args.serialize)
        fast = _micros(functools.partial(_relay, data), args.serialize)
        print(f"| {name} ({len(data)} B) | {slow:.2f} | {fast:.2f} |")
    bare = await _per_chunk(args.chunks, through_pump=False)
    full = await _per_chunk(args.chunks, through_pump=True)
    print(
        f"\nPer chunk ({args.chunks} chunks): the queue hand-over alone {bare:.1f} µs CPU, "
        f"pump over in_sequence with the idle watch {full:.1f} µs CPU."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--serialize", type=int, default=200_000, help="timeit rounds")
    asyncio.run(main(parser.parse_args()))
