"""In-memory records of the growing segments of one WAL, grouped by collection and partition.

Nothing here does I/O or awaits: every change is a plain method call, so on one
event loop a change is atomic with respect to concurrent appends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from walstream.policy import InsertStats, SegmentLimits, SegmentStats


@dataclass(slots=True)
class GrowingSegment:
    """One growing segment: its committed figures plus what in-flight inserts reserved.

    ``stats`` counts only inserts whose append succeeded; ``pending_*`` counts
    inserts assigned to it whose append has not finished. Policies see the sum
    (``view``), so concurrent inserts cannot together overfill a segment.
    """

    stats: SegmentStats
    create_timetick: int
    pending_rows: int = 0
    pending_bytes: int = 0
    sealed: bool = False

    @property
    def segment_id(self) -> int:
        """The segment's id."""
        return self.stats.segment_id

    def view(self) -> SegmentStats:
        """The figures policies decide on: committed plus reserved."""
        if not self.pending_rows and not self.pending_bytes:
            return self.stats
        stats = self.stats
        # The constructor, not ``dataclasses.replace``: this runs once per insert.
        return SegmentStats(
            stats.segment_id,
            stats.collection_id,
            stats.partition_id,
            stats.vchannel,
            stats.limits,
            stats.created_at,
            stats.last_insert_at,
            stats.rows + self.pending_rows,
            stats.binary_bytes + self.pending_bytes,
        )

    def reserve(self, insert: InsertStats) -> None:
        """Count ``insert`` as on its way into this segment."""
        self.pending_rows += insert.rows
        self.pending_bytes += insert.binary_bytes

    def release(self, insert: InsertStats) -> None:
        """Forget a reservation whose append failed or was redone."""
        self.pending_rows -= insert.rows
        self.pending_bytes -= insert.binary_bytes

    def commit(self, insert: InsertStats, now: float) -> None:
        """Turn a reservation into committed figures: the insert's append succeeded."""
        self.release(insert)
        self.stats = self.stats.with_insert(insert, now)


@dataclass(slots=True)
class PartitionShard:
    """The growing segments of one (collection, partition, vchannel), oldest first.

    ``creating`` is set while a CreateSegment for this partition is in flight, so
    concurrent inserts wait for it (outside their locks, in the redo step) instead
    of creating a segment each.
    """

    collection_id: int
    partition_id: int
    vchannel: str
    growing: list[GrowingSegment] = field(default_factory=list)
    creating: asyncio.Task[None] | None = None
    dropped: bool = False


@dataclass(slots=True)
class CollectionShard:
    """One collection on one vchannel: its partitions and its assignment fence.

    ``fence_timetick``: inserts at or below it are redone (ManualFlush/SchemaChange
    sealed everything up to it).
    """

    collection_id: int
    vchannel: str
    partitions: dict[int, PartitionShard] = field(default_factory=dict)
    fence_timetick: int = 0

    def add_partition(self, partition_id: int) -> PartitionShard:
        """The partition's shard, created if new (re-registering keeps its segments)."""
        shard = self.partitions.get(partition_id)
        if shard is None:
            shard = PartitionShard(self.collection_id, partition_id, self.vchannel)
            self.partitions[partition_id] = shard
        return shard


def new_segment(
    shard: PartitionShard, segment_id: int, limits: SegmentLimits, timetick: int, now: float
) -> GrowingSegment:
    """An empty growing segment of ``shard``, created by a CreateSegment at ``timetick``."""
    stats = SegmentStats(
        segment_id=segment_id,
        collection_id=shard.collection_id,
        partition_id=shard.partition_id,
        vchannel=shard.vchannel,
        limits=limits,
        created_at=now,
        last_insert_at=now,
    )
    return GrowingSegment(stats=stats, create_timetick=timetick)
