"""Messages larger than one NATS message (``ark_mesh.bus.large``), on a real nats-server whose
``max_payload`` is 16 KiB: sent in pieces, sealed per piece, read whole, once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from ark_mesh.bus import (
    Bus,
    PayloadCipher,
    PayloadTooLargeError,
    PermanentError,
    Publisher,
    StreamReader,
    StreamSettings,
    Topology,
    publish_whole,
    read_whole,
)
from ark_mesh.bus.deadletter import publish_dead_letter
from ark_mesh.bus.large import PART_HEADER, PARTS_HEADER
from ark_mesh.contracts import DeadLetter, DecodeError, EmbeddingsResult, decoder_for, subjects
from ark_mesh.testing.nats_server import NatsServer

TENANT = "acme"
MAX_PAYLOAD = 16 * 1024
SECRET = "quarterly numbers"
_decode = decoder_for(EmbeddingsResult).decode


def result(
    request_id: str, vectors: int, *, dims: int = 64, value: float = 0.5
) -> EmbeddingsResult:
    return EmbeddingsResult(
        request_id=request_id,
        tenant=TENANT,
        status="completed",
        model=SECRET,
        embeddings=[[value + i / 1000] * dims for i in range(vectors)],
        finished_at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def nats_server(nats_server_factory: Callable[..., NatsServer], tmp_path: Path) -> NatsServer:
    config = tmp_path / "small.conf"
    config.write_text(f"max_payload: {MAX_PAYLOAD}\n")
    return nats_server_factory(extra_args=("-c", str(config)), name="small")


@pytest_asyncio.fixture
async def sealed(nats_server: NatsServer, topology: Topology) -> AsyncIterator[Bus]:
    cipher = PayloadCipher({TENANT: {"k1": os.urandom(32)}})
    connected = await Bus.connect(
        servers=(nats_server.url,), name="sealed", connect_attempts=3, encryption=cipher
    )
    yield connected
    await connected.close()


async def stored(bus: Bus, subject: str) -> list[tuple[bytes, dict[str, str]]]:
    """Every message of ``subject`` as JetStream stores it, read around the bus."""
    info = await bus.jsm.stream_info(subjects.ARK_STATUS)
    found: list[tuple[bytes, dict[str, str]]] = []
    if not info.state.messages:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.jsm.get_msg(subjects.ARK_STATUS, seq)
        if raw.subject == subject:
            found.append(
                (raw.data or b"", {str(k): str(v) for k, v in (raw.headers or {}).items()})
            )
    return found


async def read_all(bus: Bus, subject: str, **kw: object) -> list[EmbeddingsResult]:
    return [
        entry.message
        async for entry in read_whole(
            StreamReader(bus),
            subject,
            decoder=_decode,
            caught_up=True,
            **kw,  # type: ignore[arg-type]
        )
    ]


async def test_a_result_larger_than_max_payload_travels_sealed_in_pieces_and_reads_whole(
    sealed: Bus, bus: Bus
) -> None:
    subject = subjects.query_result(TENANT, "r1")
    whole = result("r1", 200)
    publisher = await Publisher.create(sealed)
    try:
        await publish_whole(publisher, subject, whole, msg_id="r1:result")
    finally:
        await publisher.close()

    pieces = await stored(bus, subject)
    assert len(pieces) > 3
    count = len(pieces)
    assert [headers[PART_HEADER] for _, headers in pieces] == [f"{i}/{count}" for i in range(count)]
    assert len({headers[PARTS_HEADER] for _, headers in pieces}) == 1
    assert pieces[-1][1]["Nats-Msg-Id"] == "r1:result"
    for data, headers in pieces:
        assert len(data) <= MAX_PAYLOAD
        assert headers["Ark-Schema"] == EmbeddingsResult.SCHEMA
        assert SECRET.encode() not in data  # each piece is sealed with the tenant's key

    assert await read_all(sealed, subject) == [whole]


async def test_a_second_publishing_under_the_same_id_never_makes_a_second_whole(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    subject = subjects.query_result(TENANT, "r2")
    first = result("r2", 100, value=0.25)
    # A redelivered handler answering again (with a different answer, as a model may).
    await publish_whole(publisher, subject, first, msg_id="r2:result")
    second_ack = await publish_whole(
        publisher, subject, result("r2", 100, value=0.75), msg_id="r2:result"
    )
    assert second_ack.duplicate
    assert await read_all(bus, subject) == [first]


async def test_a_small_message_is_sent_as_before(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    subject = subjects.query_result(TENANT, "r3")
    small = result("r3", 1)
    await publish_whole(publisher, subject, small, msg_id="r3:result")
    [(_, headers)] = await stored(bus, subject)
    assert PART_HEADER not in headers
    assert await read_all(bus, subject) == [small]


async def test_too_large_even_in_pieces_fails_at_once_and_publishes_nothing(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    subject = subjects.query_result(TENANT, "r4")
    with pytest.raises(PayloadTooLargeError) as raised:
        await publish_whole(
            publisher, subject, result("r4", 200), msg_id="r4:result", max_bytes=50_000
        )
    assert isinstance(raised.value, PermanentError)  # a handler is not redelivered for it
    assert "more than the 50000 bytes" in str(raised.value)
    assert await stored(bus, subject) == []


async def test_a_plain_publish_over_max_payload_is_refused_and_the_connection_lives(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    subject = subjects.query_result(TENANT, "r5")
    with pytest.raises(PayloadTooLargeError) as raised:
        await publisher.publish(subject, result("r5", 200), msg_id="r5:result")
    assert f"max_payload of {MAX_PAYLOAD} bytes" in str(raised.value)
    await publisher.publish(subject, result("r5", 1), msg_id="r5:small")
    assert not bus.nc.is_closed
    assert len(await read_all(bus, subject)) == 1


async def test_a_last_piece_without_its_earlier_pieces_is_undecodable(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    subject = subjects.query_result(TENANT, "r6")
    await publish_whole(publisher, subject, result("r6", 100), msg_id="r6:result")
    info = await bus.jsm.stream_info(subjects.ARK_STATUS)
    last = info.state.last_seq
    # Started at the last piece: skipped by default, an error when asked.
    assert await read_all(bus, subject, start_seq=last) == []
    with pytest.raises(DecodeError, match="were not read"):
        await read_all(bus, subject, start_seq=last, skip_undecodable=False)


async def test_a_dead_letter_larger_than_max_payload_is_stored_in_pieces(
    bus: Bus, topology: Topology, publisher: Publisher
) -> None:
    original = os.urandom(MAX_PAYLOAD)  # base64 in the letter: a third larger still
    letter, target, _ = await publish_dead_letter(
        publisher,
        subject=subjects.work_embeddings(TENANT),
        data=original,
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        reason="too large to handle",
        deliveries=1,
        stream=subjects.ARK_WORK,
        stream_seq=7,
        service="test",
    )
    info = await bus.jsm.stream_info(subjects.ARK_DLQ)
    assert info.state.messages > 1  # pieces
    [read] = [
        entry.message
        async for entry in read_whole(
            StreamReader(bus), target, decoder=decoder_for(DeadLetter).decode, caught_up=True
        )
    ]
    assert read == letter
    assert read.data == original


async def test_a_message_above_the_streams_max_msg_size_is_payload_too_large(
    bus: Bus, publisher: Publisher, kit: type
) -> None:
    limited = kit.small_topology(status=StreamSettings(max_msg_size=4096))
    await Topology(limited).provision(bus)
    subject = subjects.query_result(TENANT, "r7")
    with pytest.raises(PayloadTooLargeError, match="message size exceeds maximum allowed"):
        await publisher.publish(subject, result("r7", 40), msg_id="r7:result")
    # Pieces are cut to the server's max_payload; given the stream's smaller limit, they fit.
    whole = result("r7", 40)
    await publish_whole(publisher, subject, whole, msg_id="r7:result", max_payload=3072 + 8192)
    assert await read_all(bus, subject) == [whole]
