"""In-memory records of the growing segments of one WAL, grouped by collection and partition.

Nothing here does I/O or awaits: every change is a plain method call, so on one
event loop a change is atomic with respect to concurrent appends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from walstream.policy import SegmentLimits, SegmentStats


class GrowingSegment:
    """One growing segment: its committed figures plus what in-flight inserts reserved.

    ``stats`` counts only inserts whose append succeeded; ``pending_*`` counts
    inserts assigned to it whose append has not finished. Policies see the sum
    (``view``), so concurrent inserts cannot together overfill a segment.
    """

    __slots__ = (
        "_added_bytes",
        "_added_rows",
        "_base",
        "_last_insert_at",
        "_on_settled",
        "create_timetick",
        "open_txns",
        "pending_bytes",
        "pending_inserts",
        "pending_rows",
        "sealed",
    )

    def __init__(self, stats: SegmentStats, create_timetick: int) -> None:
        """A segment with committed figures ``stats``, created at ``create_timetick``."""
        # Commits add to plain counters; the immutable SegmentStats is built only when
        # asked for (policies ask once per assignment, commits come once per insert).
        self._base = stats
        self._added_rows = 0
        self._added_bytes = 0
        self._last_insert_at = stats.last_insert_at
        self.create_timetick = create_timetick
        self.pending_rows = 0
        self.pending_bytes = 0
        self.sealed = False
        self.pending_inserts = 0
        """Inserts assigned here whose append has not ended (Milvus's ack semaphore)."""
        self.open_txns = 0
        """Open transactions with a body here (Milvus's txn semaphore)."""
        self._on_settled: list[Callable[[], None]] = []

    @property
    def stats(self) -> SegmentStats:
        """The committed figures."""
        if (
            self._added_rows
            or self._added_bytes
            or self._last_insert_at != self._base.last_insert_at
        ):
            self._base = self._figures(0, 0)
            self._added_rows = self._added_bytes = 0
        return self._base

    @property
    def segment_id(self) -> int:
        """The segment's id."""
        return self._base.segment_id

    def view(self) -> SegmentStats:
        """The figures policies decide on: committed plus reserved."""
        if not self.pending_rows and not self.pending_bytes:
            return self.stats
        return self._figures(self.pending_rows, self.pending_bytes)

    def _figures(self, rows: int, binary_bytes: int) -> SegmentStats:
        base = self._base
        # The constructor, not ``dataclasses.replace``: this runs once per assignment.
        return SegmentStats(
            base.segment_id,
            base.collection_id,
            base.partition_id,
            base.vchannel,
            base.limits,
            base.created_at,
            self._last_insert_at,
            base.rows + self._added_rows + rows,
            base.binary_bytes + self._added_bytes + binary_bytes,
        )

    def reserve(self, rows: int, binary_bytes: int) -> None:
        """Count an insert of ``rows`` and ``binary_bytes`` as on its way into this segment."""
        self.pending_rows += rows
        self.pending_bytes += binary_bytes
        self.pending_inserts += 1

    def release(self, rows: int, binary_bytes: int) -> None:
        """Forget a reservation whose append failed or was redone."""
        self.pending_rows -= rows
        self.pending_bytes -= binary_bytes
        self.pending_inserts -= 1
        if not self.pending_inserts and self._on_settled:
            self._settle()

    @property
    def settled(self) -> bool:
        """No insert into it is in flight and no open transaction wrote into it.

        Only then may its Flush be appended: a Flush must come after every insert
        assigned to the segment, in the log and in timetick order (a transaction's
        bodies are delivered at its commit).
        """
        return not self.pending_inserts and not self.open_txns

    def pin_txn(self) -> None:
        """An open transaction wrote a body here: hold the Flush until it ends."""
        self.open_txns += 1

    def unpin_txn(self) -> None:
        """That transaction ended (committed, rolled back or expired)."""
        self.open_txns -= 1
        if not self.open_txns and self._on_settled:
            self._settle()

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the event loop, soon) once ``settled``; now if it is."""
        self._on_settled.append(callback)
        if self.settled:
            self._settle()

    def _settle(self) -> None:
        if not self.settled:
            return
        callbacks, self._on_settled = self._on_settled, []
        loop = asyncio.get_running_loop()
        for callback in callbacks:
            loop.call_soon(callback)

    def commit(self, rows: int, binary_bytes: int, now: float) -> None:
        """Turn a reservation into committed figures: the insert's append succeeded."""
        self.release(rows, binary_bytes)
        self._added_rows += rows
        self._added_bytes += binary_bytes
        self._last_insert_at = now

    def __repr__(self) -> str:
        return (
            f"GrowingSegment({self.stats!r}, create_timetick={self.create_timetick}, "
            f"pending_inserts={self.pending_inserts}, sealed={self.sealed})"
        )


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
