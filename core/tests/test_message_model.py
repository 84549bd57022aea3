"""The message model: types, properties, headers, Arrow bodies, the codec and its limits."""

import contextlib
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from walstream.backends.memory import MemoryMessageID
from walstream.errors import (
    MessageDecodeError,
    MessageError,
    MessageIDMismatchError,
    MessageTooLargeError,
    ReservedPropertyError,
)
from walstream.message import (
    MessageType,
    MutableMessage,
    check_size,
    decode,
    encode,
    new_delete,
    new_insert,
    new_message,
)
from walstream.message import properties as P
from walstream.proto import messages_pb2 as pb

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)
user_keys = texts.filter(lambda k: k and not k.startswith("_"))


def test_type_classes_match_milvus() -> None:
    assert {t for t in MessageType if t.is_system} == {
        MessageType.TIME_TICK,
        MessageType.BEGIN_TXN,
        MessageType.COMMIT_TXN,
        MessageType.ROLLBACK_TXN,
        MessageType.TXN,
    }
    assert {t for t in MessageType if t.is_self_controlled} == {
        MessageType.TIME_TICK,
        MessageType.CREATE_SEGMENT,
        MessageType.FLUSH,
    }
    assert (
        MessageType.DROP_COLLECTION.is_exclusive_required
        and MessageType.MANUAL_FLUSH.is_exclusive_required
    )
    assert not MessageType.INSERT.is_exclusive_required


def test_every_required_type_exists() -> None:
    names = {
        "TIME_TICK",
        "INSERT",
        "DELETE",
        "FLUSH",
        "CREATE_COLLECTION",
        "DROP_COLLECTION",
        "CREATE_PARTITION",
        "DROP_PARTITION",
        "MANUAL_FLUSH",
        "CREATE_SEGMENT",
        "IMPORT",
        "SCHEMA_CHANGE",
        "BEGIN_TXN",
        "COMMIT_TXN",
        "ROLLBACK_TXN",
        "TXN",
    }
    assert names <= {t.name for t in MessageType}


def test_reserved_prefix_refused_with_clear_error() -> None:
    with pytest.raises(ReservedPropertyError, match="reserved prefix"):
        MutableMessage.raw(b"", {"_tt": "1"})
    with pytest.raises(ReservedPropertyError):
        new_message(MessageType.INSERT, vchannel="v", properties={"_mine": "x"})
    with pytest.raises(MessageError, match="must be str"):
        MutableMessage.raw(b"", {"k": b"bytes"})  # type: ignore[dict-item]
    with pytest.raises(MessageError, match="surrogate"):
        MutableMessage.raw(b"", {"k": "\udc80"})


def test_typed_message_and_system_fields() -> None:
    header = pb.CreateCollectionMessageHeader(collection_id=7, partition_ids=[1, 2], db_id=3)
    msg = new_message(
        MessageType.CREATE_COLLECTION, vchannel="ch_7v0", header=header, properties={"who": "me"}
    )
    assert msg.message_type is MessageType.CREATE_COLLECTION and msg.version == 1
    assert msg.header() == header and msg.vchannel == "ch_7v0"
    assert msg.user_properties == {"who": "me"}
    assert not msg.has_timetick
    with pytest.raises(MessageError, match="no timetick"):
        _ = msg.timetick
    txn = pb.TxnContext(txn_id=9, keepalive_milliseconds=10_000)
    msg.with_timetick(123).with_barrier_timetick(100).with_wal_term(4).with_txn_context(txn)
    assert (msg.timetick, msg.barrier_timetick, msg.wal_term, msg.txn_context) == (123, 100, 4, txn)
    frozen = msg.into_immutable(MemoryMessageID(5))
    msg.with_timetick(999)
    assert frozen.timetick == 123, "an immutable message must not change with its source"
    frozen_lc = (
        MutableMessage.raw(b"x")
        .with_last_confirmed(MemoryMessageID(2))
        .into_immutable(MemoryMessageID(9))
    )
    assert frozen_lc.last_confirmed_message_id == MemoryMessageID(2)
    own = MutableMessage.raw(b"x").with_last_confirmed_use_self().into_immutable(MemoryMessageID(3))
    assert own.last_confirmed_message_id == MemoryMessageID(3)


def test_builder_refusals() -> None:
    with pytest.raises(MessageError, match="needs a vchannel"):
        new_message(MessageType.INSERT, vchannel=None)
    with pytest.raises(MessageError, match="takes a InsertMessageHeader"):
        new_message(MessageType.INSERT, vchannel="v", header=pb.DeleteMessageHeader())
    tick = new_message(MessageType.TIME_TICK, vchannel=None)
    assert tick.vchannel == "" and tick.is_persisted
    assert not tick.with_not_persisted().is_persisted
    with pytest.raises(MessageError, match="only TimeTick"):
        new_message(MessageType.INSERT, vchannel="v").with_not_persisted()
    bc = new_message(
        MessageType.DROP_COLLECTION,
        vchannel=None,
        broadcast=pb.BroadcastHeader(broadcast_id=1, vchannels=["a", "b"]),
    )
    assert list(bc.broadcast_header.vchannels) == ["a", "b"]  # type: ignore[union-attr]


def test_arrow_bodies_round_trip() -> None:
    batch = pa.RecordBatch.from_pydict({"pk": [1, 2, 3], "vec": [[0.1, 0.2]] * 3})
    ins = new_insert("v", pb.InsertMessageHeader(collection_id=1), batch)
    assert ins.body_batch().equals(batch)
    dels = new_delete(
        "v", pb.DeleteMessageHeader(collection_id=1, rows=3), pa.table({"pk": [1, 2, 3]})
    )
    assert dels.body_batch().column(0).to_pylist() == [1, 2, 3]
    broken = new_message(MessageType.INSERT, vchannel="v", payload=b"\xff" * 40)
    with pytest.raises(MessageDecodeError, match="Arrow"):
        broken.body_batch()
    with pytest.raises(MessageError, match="no Arrow body"):
        new_message(MessageType.FLUSH, vchannel="v").body_batch()


@given(
    payload=st.binary(max_size=2000),
    props=st.dictionaries(user_keys, texts, max_size=8),
    tt=st.integers(0, 2**63 - 1),
)
def test_codec_round_trip(payload: bytes, props: dict[str, str], tt: int) -> None:
    msg = new_message(
        MessageType.DELETE, vchannel="v", payload=payload, properties=props
    ).with_timetick(tt)
    got_payload, got_props = decode(encode(msg))
    assert got_payload == payload and got_props == dict(msg.properties)


@given(ids=st.lists(st.integers(0, 2**63), min_size=2, max_size=2))
def test_message_id_order_and_marshal(ids: list[int]) -> None:
    a, b = (MemoryMessageID(i) for i in ids)
    assert (a < b) == (ids[0] < ids[1]) and (a == b) == (ids[0] == ids[1])
    assert MemoryMessageID.unmarshal(a.marshal()) == a
    assert MemoryMessageID.from_property(a.to_property()) == a


def test_comparing_ids_of_two_backends_is_an_error() -> None:
    class OtherID(MemoryMessageID):
        wal_name = "other"

    with pytest.raises(MessageIDMismatchError, match="only ordered within one backend"):
        _ = MemoryMessageID(1) < OtherID(2)
    with pytest.raises(MessageIDMismatchError):
        _ = MemoryMessageID(1) == OtherID(1)


def test_size_limit_names_the_limit() -> None:
    msg = MutableMessage.raw(b"x" * 90, {"k": "v" * 9})
    assert msg.size == 100
    check_size(msg, 100, "test")
    with pytest.raises(MessageTooLargeError, match="over the 99-byte limit of test"):
        check_size(msg, 99, "test")


@settings(max_examples=300)
@given(data=st.binary(max_size=400))
def test_decoder_fuzz_random_bytes(data: bytes) -> None:
    try:
        payload, props = decode(data)
    except MessageDecodeError:
        return
    assert isinstance(payload, bytes) and all(isinstance(k, str) for k in props)


def test_decoder_fuzz_mutations() -> None:
    rng = random.Random(1234)
    base = encode(
        new_message(
            MessageType.INSERT, vchannel="vch", payload=b"p" * 50, properties={"a": "b", "c": "d"}
        )
    )
    for _ in range(5000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data[rng.randrange(len(data) + 1) : 0] = bytes(
                    rng.randrange(256) for _ in range(rng.randint(1, 8))
                )
        with contextlib.suppress(MessageDecodeError):
            decode(bytes(data))
    # a length field claiming 4 GiB must fail fast, not allocate
    with pytest.raises(MessageDecodeError, match=r"runs past the end|cannot fit"):
        decode(b"WSM1" + b"\x00\x00\x00\x01" + b"\xff\xff\xff\xff" + b"x" * 8)


@given(text=st.text(max_size=60))
def test_header_and_id_property_decoders_fuzz(text: str) -> None:
    props = {P.TYPE: "2", P.HEADER: text, P.TXN_CONTEXT: text, P.LAST_CONFIRMED: text}
    msg = MutableMessage(b"", dict(props)).into_immutable(MemoryMessageID(0))
    for read in (msg.header, lambda: msg.txn_context, lambda: msg.last_confirmed_message_id):
        with contextlib.suppress(MessageDecodeError):
            read()


def test_unknown_type_is_a_decode_error() -> None:
    with pytest.raises(MessageDecodeError, match="unknown message type 77"):
        _ = MutableMessage(b"", {P.TYPE: "77"}).message_type


def test_bad_field_types_are_clear_errors() -> None:
    with pytest.raises(MessageError, match="payload must be bytes, got int"):
        MutableMessage.raw(5)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="payload must be bytes, got str"):
        MutableMessage.raw("text")  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="timetick must be a non-negative int"):
        MutableMessage.raw(b"").with_timetick(1.9)  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="vchannel must be a str"):
        new_message(MessageType.INSERT, vchannel=123)  # type: ignore[arg-type]
