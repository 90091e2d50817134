"""How stored chunks are served on the broker's streams: an approval line replaces its chunk."""

from __future__ import annotations

import msgspec

from ark_mesh.broker.openai_compat import ChunkShaper, openai_chunk
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkUsage,
    ObjectMeta,
    Query,
    QuerySpec,
    QueryStatus,
)
from ark_mesh.contracts.approvals import ToolApprovalLine

REQUEST_LINE = ToolApprovalLine(
    type="tool_approval_request",
    task_id="t1",
    tool_calls=[{"id": "c1", "type": "function", "function": {"name": "submit"}}],
    timeout="5m",
    on_timeout="reject",
    agent_name="clerk",
)


def stored(chunk: Chunk) -> bytes:
    return msgspec.json.encode(chunk)


def approval_chunk() -> Chunk:
    return Chunk(
        id="chatcmpl-approval-t1",
        created=1,
        model="",
        ark=ArkChunkMetadata(query="q1", tool_approval=REQUEST_LINE),
        seq=3,
    )


def test_an_approval_chunk_is_served_as_arks_line_on_both_streams() -> None:
    expected = {
        "type": "tool_approval_request",
        "taskId": "t1",
        "toolCalls": [{"id": "c1", "type": "function", "function": {"name": "submit"}}],
        "timeout": "5m",
        "onTimeout": "reject",
        "agentName": "clerk",
    }
    assert msgspec.json.decode(openai_chunk(stored(approval_chunk()))) == expected
    shaped = ChunkShaper(include_usage=False).chunk(stored(approval_chunk()))
    assert shaped is not None
    assert msgspec.json.decode(shaped) == expected


def test_an_ordinary_chunk_is_served_as_a_chunk() -> None:
    chunk = Chunk(id="c", created=1, model="m", ark=ArkChunkMetadata(query="q1"), seq=1)
    served = msgspec.json.decode(openai_chunk(stored(chunk)))
    assert served["object"] == "chat.completion.chunk"
    assert "schema" not in served


def decoded_and_encoded_again(data: bytes) -> bytes:
    """What the broker served before it relayed stored bytes: the chunk decoded, its
    ``schema`` dropped, encoded again."""
    chunk = msgspec.json.decode(data)
    chunk.pop("schema", None)
    return msgspec.json.encode(chunk)


def test_a_stored_chunk_is_relayed_byte_for_byte_as_decoding_it_would_serve_it() -> None:
    final = Chunk(
        id="chatcmpl-final",
        created=2,
        model="q",
        choices=[ChunkChoice(delta=ChunkDelta(content=""), finish_reason="stop")],
        usage=ChunkUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        ark=ArkChunkMetadata(
            query="q1",
            completed_query=Query(
                metadata=ObjectMeta(name="q"),
                spec=QuerySpec(input="hi"),
                status=QueryStatus(phase="done", duration="1.5s"),
            ),
        ),
        seq=22,
    )
    for text in ("word ", 'say "toolApproval": no', "é ✓ \\ \n \u2028 \t", ""):
        chunk = Chunk(
            id="chatcmpl-1",
            created=1,
            model="m",
            choices=[ChunkChoice(delta=ChunkDelta(content=text))],
            ark=ArkChunkMetadata(query="q1", agent="a", target="agent/a"),
            seq=7,
        )
        assert openai_chunk(stored(chunk)) == decoded_and_encoded_again(stored(chunk))
    assert openai_chunk(stored(final)) == decoded_and_encoded_again(stored(final))
    # Stored by another writer (spaces, keys in another order): decoded as before.
    other = b'{"id": "c", "schema": "ark.chunk.v1", "seq": 1, "ark": {"query": "q1"}}'
    assert openai_chunk(other) == b'{"id":"c","seq":1,"ark":{"query":"q1"}}'


def final_line(phase: str, error: str | None) -> bytes:
    return msgspec.json.encode(
        {
            "id": "chatcmpl-final",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "q",
            "choices": [{"index": 0, "delta": {"content": ""}}],
            "ark": {
                "query": "q1",
                "completedQuery": {"status": {"phase": phase, "error": error}},
            },
            "seq": 3,
        }
    )


def test_a_failed_querys_final_chunk_becomes_an_error_line_and_no_usage_follows() -> None:
    shaper = ChunkShaper(include_usage=True, model="agent/helper")
    line = msgspec.json.decode(shaper.chunk(final_line("error", "the model refused")) or b"")
    assert line == {
        "error": {
            "message": "the model refused",
            "type": "server_error",
            "param": None,
            "code": "query_error",
            "status": 500,
        },
        "ark": {"query": "q1", "phase": "error"},
    }
    assert shaper.usage_chunk() is None


def test_an_unknown_target_found_mid_stream_is_a_404_model_not_found_line() -> None:
    missing = "target references agent 'ghost' which does not exist in namespace 'team-a'"
    shaper = ChunkShaper(include_usage=False, model="agent/ghost")
    line = msgspec.json.decode(shaper.chunk(final_line("error", missing)) or b"")
    assert (line["error"]["status"], line["error"]["code"], line["error"]["param"]) == (
        404,
        "model_not_found",
        "model",
    )


def test_a_done_querys_final_chunk_is_forwarded() -> None:
    shaper = ChunkShaper(include_usage=False)
    line = msgspec.json.decode(shaper.chunk(final_line("done", None)) or b"")
    assert line["id"] == "chatcmpl-final"
