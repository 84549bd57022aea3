"""Segment assignment: the growing-segment lifecycle of one WAL (Milvus's shard interceptor).

``SegmentAssignInterceptor`` sits after the timetick interceptor and before the
backend append. It assigns every Insert to a growing segment of its
(collection, partition, vchannel), creates segments with CreateSegment messages,
and seals them with Flush messages when the seal policies (``walstream.policy``),
a ManualFlush/SchemaChange or a drop say so.

Contract with the WAL:

- ``append_system`` runs the whole chain for a self-controlled message
  (CreateSegment, Flush). It is never awaited under the intercepted message's
  locks: Flushes are appended in background tasks (or by the periodic check);
  a CreateSegment is started in a background task and the Insert raises
  ``RedoError(ready=...)``, which the redo step (outermost, outside the locks)
  awaits, bounded, before running the Insert again. So a FIFO read-write lock
  cannot deadlock Insert -> waiting ManualFlush/DDL -> CreateSegment.
  The vchannel check lets a Flush through right after a DropCollection (the
  dropped segments are flushed after the drop).
- A ``RedoError`` from here means: wait for its ``ready`` (if any), allocate a
  fresh timetick and run again.
- ``start(interval)`` after the WAL opened, ``close()`` when it closes.

Not done here: recovery (rebuilding growing segments from the log or a
checkpoint when a WAL opens), transactions pinning a segment until they end,
and waiting for in-flight inserts before a Flush (unneeded for order: a Flush
gets its timetick after every insert assigned to its segment got theirs).
"""

from walstream.wal.segments.assign import InsertAssigner, Reservation
from walstream.wal.segments.emitter import FlushEmitter
from walstream.wal.segments.ids import SegmentIdAllocator, TimetickSeededIds
from walstream.wal.segments.interceptor import SCHEMA_CHANGE_REASON, SegmentAssignInterceptor
from walstream.wal.segments.manager import SegmentManager
from walstream.wal.segments.messages import (
    SEAL_REASON_PROPERTY,
    create_segment_message,
    flush_message,
    set_header,
)
from walstream.wal.segments.state import CollectionShard, GrowingSegment, PartitionShard
from walstream.wal.segments.ticker import PeriodicSealer

__all__ = [
    "SCHEMA_CHANGE_REASON",
    "SEAL_REASON_PROPERTY",
    "CollectionShard",
    "FlushEmitter",
    "GrowingSegment",
    "InsertAssigner",
    "PartitionShard",
    "PeriodicSealer",
    "Reservation",
    "SegmentAssignInterceptor",
    "SegmentIdAllocator",
    "SegmentManager",
    "TimetickSeededIds",
    "create_segment_message",
    "flush_message",
    "set_header",
]
