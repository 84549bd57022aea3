"""``InsertAssigner``: puts each partition of an Insert into a growing segment, creating one if needed.

The policies decide (``SealPolicyChain.assign``); this module applies their
answer atomically (no await between choosing a segment and reserving room in
it), starts the CreateSegment in the background when nothing fits and asks for a
redo that waits for it (the insert's timetick is older than the new segment's
CreateSegment, and the CreateSegment needs the lock the insert holds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from walstream import hooks
from walstream.message import MutableMessage
from walstream.policy import (
    InsertStats,
    InsertTooLargeError,
    SealPolicyChain,
    SealReason,
    SegmentLimits,
)
from walstream.proto import messages_pb2 as pb
from walstream.wal.chain import AppendFunc, RedoError
from walstream.wal.errors import VChannelError
from walstream.wal.segments.emitter import FlushEmitter
from walstream.wal.segments.ids import SegmentIdAllocator
from walstream.wal.segments.manager import SegmentManager
from walstream.wal.segments.messages import create_segment_message, set_header
from walstream.wal.segments.state import GrowingSegment, PartitionShard
from walstream.walimpls.options import PChannelInfo

log = logging.getLogger(__name__)

Sealed = list[tuple[GrowingSegment, str]]

CREATED_HOOK = "walstream_segment_created"


@dataclass(slots=True)
class Reservation:
    """Room an insert holds in its segments until its append ends."""

    entries: list[tuple[GrowingSegment, InsertStats]] = field(default_factory=list)

    def add(self, segment: GrowingSegment, insert: InsertStats) -> None:
        """Hold room for ``insert`` in ``segment``."""
        segment.reserve(insert)
        self.entries.append((segment, insert))

    def commit(self, now: float) -> None:
        """The append succeeded: the rows and bytes now count in the segments' stats."""
        for segment, insert in self.entries:
            segment.commit(insert, now)
        self.entries.clear()

    def release(self) -> None:
        """The append failed or is redone: give the room back."""
        for segment, insert in self.entries:
            segment.release(insert)
        self.entries.clear()


class InsertAssigner:
    """Assigns Inserts to growing segments of one WAL."""

    def __init__(
        self,
        *,
        manager: SegmentManager,
        chain: SealPolicyChain,
        emitter: FlushEmitter,
        append_system: AppendFunc,
        allocate_segment_id: SegmentIdAllocator,
        clock: Callable[[], float],
        pchannel: PChannelInfo | None = None,
    ) -> None:
        self._pchannel = pchannel
        self._creating: set[asyncio.Task[None]] = set()
        self._manager = manager
        self._chain = chain
        self._emitter = emitter
        self._append = append_system
        self._allocate = allocate_segment_id
        self._clock = clock

    async def assign(self, message: MutableMessage) -> Reservation:
        """Write a segment id into every partition of ``message``'s header and reserve room.

        Raises ``RedoError`` when the insert must run again with a fresh timetick
        (a segment was just created, or a fence or newer segment covers its timetick),
        and a final error for an unknown collection/partition or an insert too large.
        """
        header = message.header()
        assert isinstance(header, pb.InsertMessageHeader)
        vchannel, timetick = message.vchannel, message.timetick
        if not header.partitions:
            # As Milvus (the checks run per partition): nothing to assign, nothing to check.
            return Reservation()
        coll = self._manager.collection(vchannel, header.collection_id)
        if timetick <= coll.fence_timetick:
            raise RedoError(
                f"insert at timetick {timetick} is fenced: collection {header.collection_id} "
                f"was flushed up to {coll.fence_timetick}"
            )
        reservation = Reservation()
        sealed: Sealed = []
        try:
            for part in header.partitions:
                shard = self._manager.partition(vchannel, header.collection_id, part.partition_id)
                insert = InsertStats(
                    collection_id=header.collection_id,
                    partition_id=part.partition_id,
                    vchannel=vchannel,
                    rows=part.rows,
                    # Milvus defaults the binary size to the message size.
                    binary_bytes=part.binary_size or message.size,
                )
                segment = self._pick(shard, insert, timetick, sealed)
                if isinstance(segment, SegmentLimits):
                    self._emitter.flush_soon(sealed)
                    sealed.clear()
                    self._create(shard, segment, timetick)
                reservation.add(segment, insert)
                part.segment_assignment.segment_id = segment.segment_id
        except BaseException:
            reservation.release()
            self._emitter.flush_soon(sealed)
            raise
        set_header(message, header)
        self._emitter.flush_soon(sealed)
        return reservation

    def _pick(
        self, shard: PartitionShard, insert: InsertStats, timetick: int, sealed: Sealed
    ) -> GrowingSegment | SegmentLimits:
        """The segment taking ``insert`` (room reserved by the caller), or the limits of a new one.

        Synchronous on purpose: nothing else may seal or fill the chosen segment
        between the policies' answer and the reservation.
        """
        # A segment created at or after the insert's timetick cannot hold it: readers
        # would see the insert before the segment's CreateSegment.
        eligible = [s for s in shard.growing if s.create_timetick < timetick]
        try:
            plan = self._chain.assign([s.view() for s in eligible], insert, self._clock())
        except InsertTooLargeError as exc:
            exc.add_note(
                f"refused insert into collection {insert.collection_id}, partition "
                f"{insert.partition_id}, vchannel {insert.vchannel!r}"
            )
            raise
        for decision in plan.seals:
            segment = self._manager.seal(decision.segment_id)
            if segment is not None:
                sealed.append((segment, decision.reason))
        if plan.segment_id is not None:
            chosen = self._manager.growing_segment(plan.segment_id)
            assert chosen is not None, "the chain chose a segment that is not growing"
            return chosen
        if len(eligible) < len(shard.growing):
            raise RedoError(
                f"insert at timetick {timetick} is older than a newer growing segment of "
                f"partition {insert.partition_id}; redo with a fresh timetick"
            )
        if plan.new_limits is None:
            raise AssertionError("the chain asked for a new segment without limits")
        return plan.new_limits

    def _create(self, shard: PartitionShard, limits: SegmentLimits, timetick: int) -> NoReturn:
        """Start the CreateSegment of ``shard`` in the background (unless one is in flight); redo.

        Never awaited here: the insert holds its vchannel read lock, and the
        CreateSegment takes the same lock, so behind a queued writer (ManualFlush,
        DDL) waiting for it here would deadlock. The redo step waits for the
        ``ready`` task outside the locks and runs the insert again, with a fresh
        timetick newer than the CreateSegment's.
        """
        task = shard.creating
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._create_segment(shard, limits, timetick),
                name=f"walstream-create-segment-{shard.vchannel}-{shard.partition_id}",
            )
            shard.creating = task
            self._creating.add(task)
            task.add_done_callback(self._creating.discard)
        # One CreateSegment per partition at a time; every waiter takes the new segment on redo.
        raise RedoError(
            f"insert at timetick {timetick} waits for a new segment of partition "
            f"{shard.partition_id}; redo",
            ready=asyncio.shield(task),
        )

    async def _create_segment(
        self, shard: PartitionShard, limits: SegmentLimits, timetick: int
    ) -> None:
        """Append a CreateSegment and record the segment; a failure is logged (the redo retries)."""
        try:
            segment_id = await self._allocate(timetick)
            result = await self._append(
                create_segment_message(
                    shard.vchannel, shard.collection_id, shard.partition_id, segment_id, limits
                )
            )
            segment = self._manager.add_segment(
                shard, segment_id, limits, result.timetick, self._clock()
            )
        except Exception as exc:
            # A drop racing the insert is ordinary (the redo then refuses the insert).
            log.log(
                logging.INFO if isinstance(exc, VChannelError) else logging.WARNING,
                "CreateSegment for partition %d of collection %d on %s failed: %s",
                shard.partition_id,
                shard.collection_id,
                shard.vchannel,
                exc,
            )
            return
        finally:
            shard.creating = None
        if segment.sealed:  # the partition was dropped while the CreateSegment was in flight
            self._emitter.flush_soon([(segment, SealReason.PARTITION_DROPPED)])
            return
        if hooks.has_observers(CREATED_HOOK):
            hooks.notify(
                CREATED_HOOK,
                pchannel=self._pchannel,
                vchannel=shard.vchannel,
                collection_id=shard.collection_id,
                partition_id=shard.partition_id,
                segment_id=segment_id,
            )

    async def close(self) -> None:
        """Cancel the CreateSegment appends still in flight."""
        tasks = list(self._creating)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
