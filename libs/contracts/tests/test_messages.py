"""Every bus message round-trips, decodes by its schema tag, and fails with a clear reason."""

from __future__ import annotations

import msgspec
import pytest

from ark_mesh.contracts import (
    MESSAGE_TYPES,
    ArkChunkMetadata,
    CancelRequest,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    ChunkError,
    ChunkFunctionCall,
    ChunkHead,
    ChunkToolCall,
    ChunkUsage,
    ConversationMessages,
    DeadLetter,
    DecodeError,
    EmbeddingsRequest,
    EmbeddingsResult,
    EmbeddingsUsage,
    Message,
    ObjectMeta,
    Query,
    QueryEvent,
    QueryRequest,
    QueryResponse,
    QuerySpec,
    QueryStatus,
    QueryTarget,
    ResponsesRequest,
    ResponsesResult,
    StatusUpdate,
    TokenUsage,
    decode,
    decode_any,
    encode,
    schema_of,
)
from ark_mesh.contracts.resources import A2AMetadata, Condition

NOW = "2026-11-21T10:00:00Z"
SPEC = QuerySpec(input="hello", target=QueryTarget(type="agent", name="weather"), timeout="30s")
DONE = QueryStatus(
    phase="done",
    conditions=[Condition(type="Completed", status="True", reason="QuerySucceeded")],
    response=QueryResponse(
        target=QueryTarget(type="agent", name="weather"),
        content="Sunny",
        raw='[{"role":"assistant","content":"Sunny"}]',
        phase="done",
        a2a=A2AMetadata(context_id="ctx-1"),
    ),
    token_usage=TokenUsage(prompt_tokens=50, completion_tokens=100, total_tokens=150),
    duration="1.2s",
)

SAMPLES: list[Message] = [
    QueryRequest(
        query_id="uid-1",
        name="q1",
        namespace="team-a",
        tenant="team-a",
        generation=2,
        spec=SPEC,
        annotations={"ark.mckinsey.com/reconciliation": "standalone"},
        submitted_at=NOW,
        deadline="2026-11-21T10:00:30Z",
    ),
    ResponsesRequest(
        request_id="r1",
        tenant="t",
        namespace="t",
        target="agent/weather",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        parameters={"temperature": 0.2},
        submitted_at=NOW,
    ),
    ResponsesResult(
        request_id="r1",
        tenant="t",
        status="completed",
        message={"role": "assistant", "content": "hello"},
        usage=TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        finished_at=NOW,
    ),
    EmbeddingsRequest(
        request_id="e1",
        tenant="t",
        namespace="t",
        model="embed",
        input=["a", "b"],
        submitted_at=NOW,
    ),
    EmbeddingsResult(
        request_id="e1",
        tenant="t",
        status="completed",
        model="embed",
        embeddings=[[0.1, 0.2], [0.3, 0.4]],
        usage=EmbeddingsUsage(prompt_tokens=2, total_tokens=2),
        finished_at=NOW,
    ),
    Chunk(
        id="chatcmpl-1",
        created=1_763_719_200,
        model="gpt-4o",
        choices=[
            ChunkChoice(
                delta=ChunkDelta(
                    tool_calls=[
                        ChunkToolCall(
                            index=0,
                            id="call_1",
                            type="function",
                            function=ChunkFunctionCall(name="get-coordinates", arguments='{"ci'),
                        )
                    ]
                )
            )
        ],
        ark=ArkChunkMetadata(
            query="uid-1", session="s", target="agent/weather", agent="weather", model="gpt-4o"
        ),
        seq=3,
    ),
    Chunk(
        id="chatcmpl-final",
        created=1_763_719_201,
        model="q1",
        choices=[ChunkChoice(delta=ChunkDelta(content=""), finish_reason="stop")],
        usage=ChunkUsage(prompt_tokens=50, completion_tokens=100, total_tokens=150),
        ark=ArkChunkMetadata(
            query="uid-1",
            completed_query=Query(metadata=ObjectMeta(name="q1"), spec=SPEC, status=DONE),
        ),
        seq=9,
    ),
    QueryEvent(
        timestamp=NOW,
        event_type="Warning",
        reason="ToolCallError",
        message="tool failed (timestamp: 2026-11-21T10:00:00Z)",
        data={"queryId": "uid-1", "queryName": "q1", "toolName": "t", "error": "boom"},
    ),
    StatusUpdate(
        query_id="uid-1",
        name="q1",
        namespace="team-a",
        tenant="team-a",
        attempt=2,
        seq=4,
        phase="done",
        status=DONE,
        timestamp=NOW,
        reconciler="query-reconciler-0",
    ),
    CancelRequest(query_id="uid-1", tenant="team-a", requested_at=NOW, requested_by="controller"),
    ConversationMessages(
        conversation_id="conv-1",
        query_id="q1",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        timestamp=NOW,
    ),
    DeadLetter(
        subject="ark.team-a.work.query",
        reason="cannot decode ark.query-request.v1: Expected `str`, got `int` - at `$.name`",
        data=b'{"schema":"ark.query-request.v1","name":1}\xff',
        headers={"Nats-Msg-Id": "uid-1:1"},
        deliveries=1,
        stream_sequence=17,
        dead_at=NOW,
    ),
]


def test_every_message_type_has_a_sample() -> None:
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: f"{type(m).__name__}")
def test_round_trip(message: Message) -> None:
    data = encode(message)
    assert decode(data, type(message)) == message
    assert decode_any(data) == message
    body = msgspec.json.decode(data)
    assert body["schema"] == schema_of(message) == type(message).SCHEMA


def test_hot_messages_are_frozen() -> None:
    chunk = SAMPLES[5]
    with pytest.raises(AttributeError):
        chunk.seq = 4  # type: ignore[misc]


def test_chunk_is_readable_by_an_openai_client() -> None:
    body = msgspec.json.decode(encode(SAMPLES[5]))
    assert body["object"] == "chat.completion.chunk"
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert "finish_reason" in choice
    assert choice["delta"]["tool_calls"][0]["function"]["name"] == "get-coordinates"
    assert body["ark"] == {
        "query": "uid-1",
        "session": "s",
        "target": "agent/weather",
        "agent": "weather",
        "model": "gpt-4o",
    }


def test_final_chunk_carries_the_completed_query_with_a2a() -> None:
    final = SAMPLES[6]
    assert isinstance(final, Chunk)
    assert final.is_final
    body = msgspec.json.decode(encode(final))
    completed = body["ark"]["completedQuery"]
    assert completed["status"]["phase"] == "done"
    assert completed["status"]["response"]["a2a"] == {"contextId": "ctx-1"}
    assert completed["status"]["tokenUsage"]["totalTokens"] == 150


def test_a_chunk_head_reads_the_order_and_the_markers_of_any_chunk() -> None:
    """A relay decodes only ``seq``, the final and the error markers, and agrees with the
    whole chunk on each; another message's tag is refused as :class:`Chunk` refuses it."""
    error_line = Chunk(
        id="chatcmpl-error",
        created=1,
        model="m",
        error=ChunkError(message="the model refused"),
        ark=ArkChunkMetadata(query="uid-1"),
        seq=4,
    )
    for chunk in (SAMPLES[5], SAMPLES[6], error_line):
        assert isinstance(chunk, Chunk)
        head = decode(encode(chunk), ChunkHead)
        assert head.seq == chunk.seq
        assert head.is_final == chunk.is_final
        assert head.is_error == (chunk.error is not None)
    assert [decode(encode(c), ChunkHead).is_final for c in SAMPLES[5:7]] == [False, True]
    with pytest.raises(DecodeError):
        decode(encode(SAMPLES[8]), ChunkHead)


def test_status_update_order_and_terminal() -> None:
    update = SAMPLES[8]
    assert isinstance(update, StatusUpdate)
    assert update.terminal
    assert update.order == (0, 2, 4)


def test_an_update_without_a_resource_says_so_and_a_resource_backed_one_is_unchanged() -> None:
    """``hasResource`` appears only as ``false`` (a broker-mode query without a mirror): the
    updates of Query-backed queries keep their bytes, and older ones decode as backed."""
    backed = SAMPLES[8]
    assert isinstance(backed, StatusUpdate)
    assert backed.has_resource
    assert b"hasResource" not in encode(backed)
    bare = msgspec.structs.replace(backed, has_resource=False)
    assert b'"hasResource":false' in encode(bare)
    assert decode(encode(bare), StatusUpdate).has_resource is False

    request = SAMPLES[0]
    assert isinstance(request, QueryRequest)
    assert request.has_resource  # dispatched by the controller
    broker = msgspec.structs.replace(request, origin="broker")
    assert not broker.has_resource
    assert msgspec.structs.replace(broker, create_resource=True).has_resource


def test_query_request_msg_id_is_uid_and_generation() -> None:
    request = SAMPLES[0]
    assert isinstance(request, QueryRequest)
    assert request.msg_id == "uid-1:2"


def test_dead_letter_keeps_undecodable_bytes() -> None:
    dead = SAMPLES[-1]
    assert isinstance(dead, DeadLetter)
    assert decode(encode(dead), DeadLetter).data.endswith(b"\xff")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"schema":"ark.unknown.v9"}', "Invalid value 'ark.unknown.v9' - at `$.schema`"),
        (b'{"queryId":"x"}', "missing required field `schema`"),
        (b"\x00\x01", "malformed JSON"),
        (
            b'{"schema":"ark.status.v1","queryId":"u","name":"n","namespace":"n","tenant":"t",'
            b'"seq":1,"phase":"sleeping","status":{},"timestamp":"t"}',
            "at `$.phase`",
        ),
    ],
)
def test_undecodable_message_raises_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_any(data)
    assert reason in caught.value.reason


def test_decoding_as_the_wrong_type_names_the_schema() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(encode(SAMPLES[7]), Chunk)
    assert caught.value.schema == "ark.chunk.v1"
