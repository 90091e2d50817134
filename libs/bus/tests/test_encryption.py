"""Per-tenant encryption through a real nats-server: publisher → worker and → stream reader see
plaintext, the stored bytes are ciphertext, rotation keeps old messages readable, bad
ciphertext is dead-lettered (still encrypted), required tenants fail closed, cancels are sealed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ark_mesh.bus import (
    Bus,
    CancelChannel,
    DeadLetterCause,
    DeadLetterNotice,
    EncryptionConfigError,
    EncryptionKeySettings,
    EncryptionRequiredError,
    EncryptionSettings,
    Fanout,
    MessageContext,
    PayloadCipher,
    Publisher,
    StreamReader,
    TenantEncryptionSettings,
    Topology,
    Worker,
)
from ark_mesh.bus.encryption import ALGORITHM, ENCRYPTION_HEADER, KEY_ID_HEADER, sealed_key_id
from ark_mesh.contracts import (
    ArkChunkMetadata,
    Chunk,
    ChunkChoice,
    ChunkDelta,
    DeadLetter,
    EmbeddingsRequest,
    decode,
    decoder_for,
    encode,
    subjects,
)
from ark_mesh.testing.nats_server import NatsServer

TENANT = "acme"
OTHER = "globex"
KEY_1 = os.urandom(32)
KEY_2 = os.urandom(32)
OTHER_KEY = os.urandom(32)
SECRET = "merger talks with initech"


def _cipher(*keys: tuple[str, bytes], required: tuple[str, ...] = ()) -> PayloadCipher:
    return PayloadCipher(
        {TENANT: dict(keys or (("k1", KEY_1),)), OTHER: {"g1": OTHER_KEY}},
        required_tenants=required,
    )


def _chunk(seq: int, text: str = SECRET) -> Chunk:
    return Chunk(
        id="chatcmpl-1",
        created=1,
        model="m",
        choices=[ChunkChoice(delta=ChunkDelta(content=f"{text} #{seq}"))],
        ark=ArkChunkMetadata(query="q1"),
        seq=seq,
    )


def _secret_request(index: int, kit: type, tenant: str = TENANT) -> EmbeddingsRequest:
    request: EmbeddingsRequest = kit.request(index, tenant)
    return EmbeddingsRequest(
        request_id=request.request_id,
        tenant=tenant,
        namespace=tenant,
        model=request.model,
        input=[f"{SECRET} {index}"],
        submitted_at=request.submitted_at,
    )


@pytest_asyncio.fixture
async def sealed_bus(nats_server: NatsServer, topology: Topology) -> AsyncIterator[Bus]:
    # Depends on `topology` so the streams exist before anything is published.
    connected = await Bus.connect(
        servers=(nats_server.url,), name="sealed", connect_attempts=3, encryption=_cipher()
    )
    yield connected
    await connected.close()


async def _stored(bus: Bus, stream: str, subject: str) -> list[tuple[int, bytes, dict[str, str]]]:
    """Every message of ``subject`` as JetStream stores it, read around the bus."""
    found: list[tuple[int, bytes, dict[str, str]]] = []
    info = await bus.jsm.stream_info(stream)
    if not info.state.messages:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.jsm.get_msg(stream, seq)
        if raw.subject == subject:
            headers = {str(k): str(v) for k, v in (raw.headers or {}).items()}
            found.append((seq, raw.data or b"", headers))
    return found


async def test_publisher_to_worker_round_trip_stores_only_ciphertext(
    sealed_bus: Bus, bus: Bus, topology: Topology, kit: type
) -> None:
    subject = subjects.work_embeddings(TENANT)
    publisher = await Publisher.create(sealed_bus)
    await publisher.publish(subject, _secret_request(1, kit), msg_id="enc-1")
    await publisher.publish_nowait(subject, _secret_request(2, kit), msg_id="enc-2")
    await publisher.flush(30)

    stored = await _stored(bus, subjects.ARK_WORK, subject)
    assert len(stored) == 2
    for _, body, headers in stored:
        assert SECRET.encode() not in body
        assert b"initech" not in body
        assert headers[ENCRYPTION_HEADER] == ALGORITHM
        assert headers[KEY_ID_HEADER] == "k1"
        # Routing and dedupe metadata stay in clear.
        assert headers["Ark-Schema"] == EmbeddingsRequest.SCHEMA
        assert headers["Nats-Msg-Id"] in ("enc-1", "enc-2")
        # Another tenant's key (even under the same id) cannot open it.
        with pytest.raises(Exception, match="authentication failed"):
            PayloadCipher({TENANT: {"k1": OTHER_KEY}}).open(subject, body, headers)

    received: list[EmbeddingsRequest] = []

    async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
        assert context.tenant == TENANT
        received.append(message)

    worker = Worker.for_type(
        sealed_bus, topology.work_binding("embeddings"), EmbeddingsRequest, handle
    )
    await worker.start()
    await kit.eventually(lambda: worker.stats.acked == 2, what="both requests handled")
    await worker.stop()
    await publisher.close()
    assert sorted(r.input[0] for r in received) == [f"{SECRET} 1", f"{SECRET} 2"]


async def test_publisher_to_stream_reader_round_trip_and_moved_ciphertext(
    sealed_bus: Bus, bus: Bus, kit: type
) -> None:
    subject = subjects.query_chunk(TENANT, "q1")
    publisher = await Publisher.create(sealed_bus)
    for seq in (1, 2, 3):
        await publisher.publish_nowait(subject, _chunk(seq))
    await publisher.flush(30)

    entries = [
        entry
        async for entry in StreamReader(sealed_bus, subjects.ARK_CHUNKS).read(
            subject, decoder=decoder_for(Chunk), caught_up=True
        )
    ]
    assert [entry.message.seq for entry in entries] == [1, 2, 3]
    assert entries[0].message.choices[0].delta.content == f"{SECRET} #1"
    assert entries[0].data == encode(_chunk(1))  # readers get the clear body
    last = await StreamReader(sealed_bus, subjects.ARK_CHUNKS).last(
        subject, decoder=decoder_for(Chunk)
    )
    assert last is not None
    assert last.message.seq == 3

    stored = await _stored(bus, subjects.ARK_CHUNKS, subject)
    assert [sealed_key_id(body) for _, body, _ in stored] == ["k1", "k1", "k1"]
    assert all(SECRET.encode() not in body for _, body, _ in stored)

    # Copy a stored ciphertext, headers and all, onto another query of the same tenant: the
    # subject is associated data, so it does not open there and the reader skips it.
    _, body, headers = stored[0]
    moved = subjects.query_chunk(TENANT, "q2")
    await bus.js.publish(moved, body, headers=headers)
    await publisher.publish(moved, _chunk(9, "genuine"))
    moved_entries = [
        entry.message.seq
        async for entry in StreamReader(sealed_bus, subjects.ARK_CHUNKS).read(
            moved, decoder=decoder_for(Chunk), caught_up=True
        )
    ]
    assert moved_entries == [9]
    # A reader without keys sees nothing readable either.
    plain_entries = [
        entry
        async for entry in StreamReader(bus, subjects.ARK_CHUNKS).read(
            subject, decoder=decoder_for(Chunk), caught_up=True
        )
    ]
    assert plain_entries == []
    await publisher.close()


async def test_messages_under_the_old_key_are_read_after_rotation(
    sealed_bus: Bus, nats_server: NatsServer, bus: Bus
) -> None:
    subject = subjects.query_chunk(TENANT, "q-rot")
    before = await Publisher.create(sealed_bus)
    await before.publish(subject, _chunk(1))
    await before.publish(subject, _chunk(2))
    await before.close()

    rotated = await Bus.connect(
        servers=(nats_server.url,),
        name="rotated",
        encryption=_cipher(("k1", KEY_1), ("k2", KEY_2)),
    )
    try:
        after = await Publisher.create(rotated)
        await after.publish(subject, _chunk(3))
        await after.close()
        seqs = [
            entry.message.seq
            async for entry in StreamReader(rotated, subjects.ARK_CHUNKS).read(
                subject, decoder=decoder_for(Chunk), caught_up=True
            )
        ]
    finally:
        await rotated.close()
    assert seqs == [1, 2, 3]
    stored = await _stored(bus, subjects.ARK_CHUNKS, subject)
    assert [headers[KEY_ID_HEADER] for _, _, headers in stored] == ["k1", "k1", "k2"]


async def test_undecryptable_work_is_dead_lettered_still_encrypted_and_work_goes_on(
    sealed_bus: Bus, bus: Bus, topology: Topology, kit: type
) -> None:
    subject = subjects.work_embeddings(TENANT)
    # Wrong key under the right key id, and a tampered body, injected around the bus.
    wrong_headers: dict[str, str] = {"Ark-Schema": EmbeddingsRequest.SCHEMA}
    wrong = PayloadCipher({TENANT: {"k1": OTHER_KEY}}).seal(
        subject, encode(_secret_request(1, kit)), wrong_headers
    )
    await bus.js.publish(subject, wrong, headers=wrong_headers)
    tamper_headers: dict[str, str] = {"Ark-Schema": EmbeddingsRequest.SCHEMA}
    tampered = bytearray(
        sealed_bus.cipher.seal(subject, encode(_secret_request(2, kit)), tamper_headers)
    )
    tampered[-1] ^= 0xFF
    await bus.js.publish(subject, bytes(tampered), headers=tamper_headers)
    publisher = await Publisher.create(sealed_bus)
    await publisher.publish(subject, _secret_request(3, kit))

    handled: list[str] = []
    notices: list[DeadLetterNotice] = []

    async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
        handled.append(message.input[0])

    worker = Worker.for_type(
        sealed_bus,
        topology.work_binding("embeddings"),
        EmbeddingsRequest,
        handle,
        publisher=publisher,
        on_dead_letter=notices.append,
    )
    await worker.start()
    await kit.eventually(
        lambda: worker.stats.acked == 1 and worker.stats.dead_lettered == 2,
        what="one handled, two dead-lettered",
    )
    await worker.stop()
    await publisher.close()

    assert handled == [f"{SECRET} 3"]
    assert [notice.cause for notice in notices] == [DeadLetterCause.UNDECRYPTABLE] * 2
    for notice in notices:
        assert notice.message is None
        assert "key 'k1'" in notice.letter.reason
        assert subject in notice.letter.reason
        assert SECRET not in notice.letter.reason

    # In ARK_DLQ: the dead letter is sealed under the tenant's key, and the original bytes it
    # carries are still the ciphertext.
    dlq_subject = subjects.dlq(TENANT, "embeddings")
    stored = await _stored(bus, subjects.ARK_DLQ, dlq_subject)
    assert len(stored) == 2
    originals = {wrong, bytes(tampered)}
    for _, body, headers in stored:
        assert headers[KEY_ID_HEADER] == "k1"
        assert SECRET.encode() not in body
        letter = decode(sealed_bus.cipher.open(dlq_subject, body, headers), DeadLetter)
        assert letter.data in originals
        assert letter.subject == subject


async def test_required_tenant_refuses_to_publish_without_a_key(
    nats_server: NatsServer, bus: Bus, topology: Topology, kit: type
) -> None:
    strict = await Bus.connect(
        servers=(nats_server.url,),
        name="strict",
        encryption=EncryptionSettings(required_tenants=(TENANT,)),
    )
    try:
        publisher = await Publisher.create(strict)
        with pytest.raises(EncryptionRequiredError, match=TENANT):
            await publisher.publish(subjects.work_embeddings(TENANT), _secret_request(1, kit))
        with pytest.raises(EncryptionRequiredError):
            await publisher.publish_nowait(subjects.query_chunk(TENANT, "q1"), _chunk(1))
        with pytest.raises(EncryptionRequiredError):
            await CancelChannel(strict).request(TENANT, "q1")
        # Other tenants are not affected.
        await publisher.publish(subjects.work_embeddings(OTHER), _secret_request(2, kit, OTHER))
        await publisher.close()
    finally:
        await strict.close()
    assert await _stored(bus, subjects.ARK_WORK, subjects.work_embeddings(TENANT)) == []
    assert await _stored(bus, subjects.ARK_CHUNKS, subjects.query_chunk(TENANT, "q1")) == []


async def test_required_tenant_rejects_clear_text_arrivals(
    nats_server: NatsServer, bus: Bus, publisher: Publisher, topology: Topology, kit: type
) -> None:
    strict = await Bus.connect(
        servers=(nats_server.url,), name="strict", encryption=_cipher(required=(TENANT,))
    )
    try:
        subject = subjects.work_embeddings(TENANT)
        # `publisher` is on a bus without encryption settings: it writes clear text.
        await publisher.publish(subject, _secret_request(1, kit))
        await publisher.publish(subjects.query_chunk(TENANT, "q1"), _chunk(1))
        sealed_publisher = await Publisher.create(strict)
        await sealed_publisher.publish(subject, _secret_request(2, kit))

        handled: list[str] = []
        notices: list[DeadLetterNotice] = []

        async def handle(message: EmbeddingsRequest, context: MessageContext) -> None:
            handled.append(message.input[0])

        worker = Worker.for_type(
            strict,
            topology.work_binding("embeddings"),
            EmbeddingsRequest,
            handle,
            publisher=sealed_publisher,
            on_dead_letter=notices.append,
        )
        await worker.start()
        await kit.eventually(
            lambda: worker.stats.acked == 1 and worker.stats.dead_lettered == 1,
            what="clear text rejected, sealed one handled",
        )
        await worker.stop()
        await sealed_publisher.close()
        assert handled == [f"{SECRET} 2"]
        assert notices[0].cause is DeadLetterCause.UNDECRYPTABLE
        assert "clear text for tenant 'acme'" in notices[0].letter.reason

        chunks = [
            entry
            async for entry in StreamReader(strict, subjects.ARK_CHUNKS).read(
                subjects.query_chunk(TENANT, "q1"), decoder=decoder_for(Chunk), caught_up=True
            )
        ]
        assert chunks == []
    finally:
        await strict.close()


async def test_cancel_requests_are_sealed_in_kv_and_on_the_wire(sealed_bus: Bus, bus: Bus) -> None:
    channel = CancelChannel(sealed_bus)
    async with channel.watch(TENANT, "q1") as cancelled:
        await channel.request(TENANT, "q1", reason="user pressed stop", requested_by=SECRET)
        await asyncio.wait_for(cancelled.wait(), 30)
    assert cancelled.request is not None
    assert cancelled.request.requested_by == SECRET

    kv = await bus.key_value(subjects.CANCEL_BUCKET)
    stored = (await kv.get(f"{TENANT}.q1")).value or b""
    assert SECRET.encode() not in stored
    assert sealed_key_id(stored) == "k1"
    found = await channel.get(TENANT, "q1")
    assert found is not None
    assert found.requested_by == SECRET
    # A late starter on the sealed bus sees the flag too.
    async with channel.watch(TENANT, "q1") as late:
        assert late.is_set()
        assert late.request is not None
        assert late.request.reason == "user pressed stop"


async def test_a_bad_key_stops_connect_before_any_network_use(tmp_path: object) -> None:
    settings = EncryptionSettings(
        tenants={
            TENANT: TenantEncryptionSettings(
                keys=(EncryptionKeySettings(id="k1", env="ARK_TEST_KEY_THAT_IS_NOT_SET"),)
            )
        }
    )
    with pytest.raises(EncryptionConfigError, match="tenant 'acme', key 'k1'"):
        # Nothing listens there; the key error comes first.
        await Bus.connect(servers=("nats://127.0.0.1:1",), connect_attempts=1, encryption=settings)


async def test_a_shared_feed_opens_sealed_bodies_for_its_followers(
    sealed_bus: Bus, nats_server: NatsServer
) -> None:
    """The feed carries bodies sealed; a follower gets them opened, catch-up and live alike."""
    publisher = await Publisher.create(sealed_bus)
    subject = subjects.query_chunk(TENANT, "q1")
    for seq in (1, 2):
        await publisher.publish(subject, _chunk(seq))
    fanout = Fanout(StreamReader(sealed_bus))
    texts: list[str] = []
    follower = fanout.follow(subject, decoder=decoder_for(Chunk))
    async for entry in follower:
        texts.append(entry.message.choices[0].delta.content or "")
        if len(texts) == 2:
            for seq in (3, 4):
                await publisher.publish(subject, _chunk(seq))
        if len(texts) == 4:
            break
    await follower.aclose()
    assert texts == [f"{SECRET} #{seq}" for seq in (1, 2, 3, 4)]
    await fanout.close()
    await publisher.close()
