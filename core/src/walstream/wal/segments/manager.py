"""``SegmentManager``: which collections, partitions and growing segments a WAL holds.

It only keeps state and answers questions; it never appends. The interceptor
turns its answers into CreateSegment and Flush messages.
"""

from __future__ import annotations

import logging

from walstream.policy import SegmentLimits, SegmentStats
from walstream.wal.errors import (
    CollectionNotFoundError,
    PartitionNotFoundError,
    WALInvariantError,
)
from walstream.wal.segments.state import (
    CollectionShard,
    GrowingSegment,
    PartitionShard,
    new_segment,
)

log = logging.getLogger(__name__)


class SegmentManager:
    """Collections per vchannel, their partitions, and every growing segment by id."""

    def __init__(self) -> None:
        self._collections: dict[tuple[str, int], CollectionShard] = {}
        self._segments: dict[int, tuple[PartitionShard, GrowingSegment]] = {}

    # --- collections and partitions -------------------------------------------

    def create_collection(
        self, vchannel: str, collection_id: int, partition_ids: list[int]
    ) -> None:
        """Register a collection (CreateCollection) and its initial partitions."""
        key = (vchannel, collection_id)
        coll = self._collections.get(key)
        if coll is None:
            coll = CollectionShard(collection_id, vchannel)
            self._collections[key] = coll
        else:
            # Milvus only warns: a replayed or repeated DDL must not break the WAL.
            log.warning("collection %d on %s created twice", collection_id, vchannel)
        for pid in partition_ids:
            coll.add_partition(pid)

    def create_partition(self, vchannel: str, collection_id: int, partition_id: int) -> None:
        """Register a partition (CreatePartition); an unknown collection is only logged."""
        coll = self._collections.get((vchannel, collection_id))
        if coll is None:
            log.warning(
                "CreatePartition %d for collection %d, unknown on %s; ignored",
                partition_id,
                collection_id,
                vchannel,
            )
            return
        coll.add_partition(partition_id)

    def drop_collection(self, vchannel: str, collection_id: int) -> list[GrowingSegment]:
        """Forget a collection; returns its growing segments, now sealed."""
        coll = self._collections.pop((vchannel, collection_id), None)
        if coll is None:
            log.warning("DropCollection %d, unknown on %s; ignored", collection_id, vchannel)
            return []
        sealed: list[GrowingSegment] = []
        for shard in coll.partitions.values():
            sealed.extend(self._drop_shard(shard))
        return sealed

    def drop_partition(
        self, vchannel: str, collection_id: int, partition_id: int
    ) -> list[GrowingSegment]:
        """Forget a partition; returns its growing segments, now sealed."""
        coll = self._collections.get((vchannel, collection_id))
        shard = coll.partitions.pop(partition_id, None) if coll is not None else None
        if shard is None:
            log.warning(
                "DropPartition %d of collection %d, unknown on %s; ignored",
                partition_id,
                collection_id,
                vchannel,
            )
            return []
        return self._drop_shard(shard)

    def _drop_shard(self, shard: PartitionShard) -> list[GrowingSegment]:
        shard.dropped = True
        return [self._seal(seg) for seg in list(shard.growing)]

    def collection(self, vchannel: str, collection_id: int) -> CollectionShard:
        """The collection, or ``CollectionNotFoundError`` naming it."""
        coll = self._collections.get((vchannel, collection_id))
        if coll is None:
            raise CollectionNotFoundError(
                f"collection {collection_id} is not known on vchannel {vchannel!r} "
                f"(never created there, or dropped); create the collection first"
            )
        return coll

    def find_collection(self, vchannel: str, collection_id: int) -> CollectionShard | None:
        """The collection, or ``None`` if it is not known."""
        return self._collections.get((vchannel, collection_id))

    def partition(self, vchannel: str, collection_id: int, partition_id: int) -> PartitionShard:
        """The partition, or ``CollectionNotFoundError`` / ``PartitionNotFoundError`` naming it."""
        coll = self.collection(vchannel, collection_id)
        shard = coll.partitions.get(partition_id)
        if shard is None:
            raise PartitionNotFoundError(
                f"partition {partition_id} of collection {collection_id} is not known on "
                f"vchannel {vchannel!r} (never created there, or dropped); "
                f"known partitions: {sorted(coll.partitions)}"
            )
        return shard

    # --- segments --------------------------------------------------------------

    def add_segment(
        self,
        shard: PartitionShard,
        segment_id: int,
        limits: SegmentLimits,
        timetick: int,
        now: float,
    ) -> GrowingSegment:
        """Record the segment a CreateSegment at ``timetick`` created; returns it.

        If the partition was dropped while the CreateSegment was in flight the
        segment is returned already sealed, for the caller to flush.
        """
        if segment_id in self._segments:
            raise WALInvariantError(
                f"segment id {segment_id} is already growing: the segment id allocator repeats"
            )
        seg = new_segment(shard, segment_id, limits, timetick, now)
        if shard.dropped:
            seg.sealed = True
            return seg
        shard.growing.append(seg)
        self._segments[segment_id] = (shard, seg)
        return seg

    def seal(self, segment_id: int) -> GrowingSegment | None:
        """Seal a growing segment: it takes no further insert. ``None`` if it is not growing."""
        found = self._segments.get(segment_id)
        return None if found is None else self._seal(found[1])

    def _seal(self, seg: GrowingSegment) -> GrowingSegment:
        shard, _ = self._segments.pop(seg.segment_id)
        shard.growing.remove(seg)
        seg.sealed = True
        return seg

    def fence_and_seal(
        self, vchannel: str, collection_id: int, timetick: int
    ) -> list[GrowingSegment]:
        """ManualFlush: seal every growing segment of the collection and fence up to ``timetick``."""
        coll = self.collection(vchannel, collection_id)
        coll.fence_timetick = max(coll.fence_timetick, timetick)
        sealed: list[GrowingSegment] = []
        for shard in coll.partitions.values():
            sealed.extend(self._seal(seg) for seg in list(shard.growing))
        return sealed

    def growing(self) -> list[SegmentStats]:
        """Every growing segment as the policies see it (reservations included)."""
        return [seg.view() for _, seg in self._segments.values()]

    def growing_segment(self, segment_id: int) -> GrowingSegment | None:
        """The growing segment with this id, if any."""
        found = self._segments.get(segment_id)
        return None if found is None else found[1]
