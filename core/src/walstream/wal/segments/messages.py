"""The messages segment assignment writes: CreateSegment and Flush, and the Insert header update."""

from __future__ import annotations

from google.protobuf.message import Message as ProtoMessage

from walstream.message import MessageType, MutableMessage, new_message
from walstream.message.headers import HEADER_CLASSES, encode_proto
from walstream.policy import UNLIMITED, SegmentLimits
from walstream.proto import messages_pb2 as pb
from walstream.wal.segments.state import GrowingSegment

SEAL_REASON_PROPERTY = "seal_reason"
"""User property of a Flush message: why the segment was sealed (for readers' logs and tests)."""

SEGMENT_LEVEL_L1 = 1
"""CreateSegment ``level``: walstream creates L1 (insert) segments only, like Milvus's alloc worker."""


def set_header(message: MutableMessage, header: ProtoMessage) -> None:
    """Replace the typed header of ``message`` in place.

    The message model has no public setter yet; the header must change on the very
    object the outer interceptors hold, because the redo loop resends that object.
    """
    expected = HEADER_CLASSES.get(message.message_type)
    if type(header) is not expected:
        raise TypeError(f"{message.message_type.name} takes {expected}, got {type(header)}")
    message._set_header_text(encode_proto(header))


def _limit(value: int) -> int:
    # UNLIMITED fits uint64 already; clamp anyway so a third-party limit never overflows the field.
    return min(value, UNLIMITED)


def create_segment_message(
    vchannel: str, collection_id: int, partition_id: int, segment_id: int, limits: SegmentLimits
) -> MutableMessage:
    """The CreateSegment announcing a growing segment and the limits it was given."""
    header = pb.CreateSegmentMessageHeader(
        collection_id=collection_id,
        partition_id=partition_id,
        segment_id=segment_id,
        max_segment_size=_limit(limits.max_bytes),
        max_rows=_limit(limits.max_rows),
        level=SEGMENT_LEVEL_L1,
    )
    return new_message(MessageType.CREATE_SEGMENT, vchannel=vchannel, header=header)


def flush_message(segment: GrowingSegment, reason: str) -> MutableMessage:
    """The Flush sealing ``segment``: it takes no insert with a later timetick."""
    stats = segment.stats
    header = pb.FlushMessageHeader(
        collection_id=stats.collection_id,
        partition_id=stats.partition_id,
        segment_id=stats.segment_id,
    )
    return new_message(
        MessageType.FLUSH,
        vchannel=stats.vchannel,
        header=header,
        properties={SEAL_REASON_PROPERTY: reason},
    )
