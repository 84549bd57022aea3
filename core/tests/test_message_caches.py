"""Cached ``size``/``message_type``/``timetick`` follow every change of a MutableMessage."""

from __future__ import annotations

from walstream.backends.memory import MemoryMessageID
from walstream.message import MessageType, new_message
from walstream.message import properties as P
from walstream.message.properties import properties_size
from walstream.proto import messages_pb2 as pb
from walstream.wal.segments.messages import set_header


def _fresh_size(msg: object) -> int:
    return len(msg.payload) + properties_size(msg.properties)  # type: ignore[attr-defined]


def test_size_and_timetick_follow_each_mutation() -> None:
    header = pb.InsertMessageHeader(
        collection_id=1, partitions=[pb.PartitionSegmentAssignment(partition_id=2, rows=1)]
    )
    msg = new_message(MessageType.INSERT, vchannel="v", header=header, payload=b"abc")
    assert msg.message_type is MessageType.INSERT
    assert msg.size == _fresh_size(msg)
    msg.with_timetick(7)
    assert msg.timetick == 7 and msg.size == _fresh_size(msg)
    msg.with_timetick(123456789)
    assert msg.timetick == 123456789 and msg.size == _fresh_size(msg)
    msg.with_wal_term(3).with_barrier_timetick(5)
    assert msg.size == _fresh_size(msg)
    msg.with_last_confirmed(MemoryMessageID(41))
    assert msg.size == _fresh_size(msg)
    msg.with_last_confirmed_use_self()
    assert P.LAST_CONFIRMED not in msg.properties and msg.size == _fresh_size(msg)
    msg.with_last_confirmed(MemoryMessageID(42))
    assert msg.properties[P.LAST_CONFIRMED] == MemoryMessageID(42).to_property()
    msg.with_txn_context(pb.TxnContext(txn_id=9))
    assert msg.size == _fresh_size(msg)
    header.partitions[0].segment_assignment.segment_id = 123456789012
    set_header(msg, header)
    assert msg.size == _fresh_size(msg)
    frozen = msg.into_immutable(MemoryMessageID(43))
    assert frozen.size == msg.size == _fresh_size(frozen)
    assert frozen.timetick == 123456789 and frozen.message_type is MessageType.INSERT
    # The copy is independent: a later stamp of the mutable one does not leak into it.
    msg.with_timetick(123456790)
    assert frozen.timetick == 123456789 and msg.timetick == 123456790


def test_last_confirmed_text_is_per_id() -> None:
    a = new_message(MessageType.DELETE, vchannel="v", header=pb.DeleteMessageHeader())
    b = new_message(MessageType.DELETE, vchannel="v", header=pb.DeleteMessageHeader())
    a.with_last_confirmed(MemoryMessageID(1))
    b.with_last_confirmed(MemoryMessageID(2))
    assert a.properties[P.LAST_CONFIRMED] == MemoryMessageID(1).to_property()
    assert b.properties[P.LAST_CONFIRMED] == MemoryMessageID(2).to_property()
