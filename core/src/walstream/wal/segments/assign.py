"""``InsertAssigner``: puts each partition of an Insert into a growing segment, creating one if needed.

The policies decide (``SealPolicyChain.assign``); this module applies their
answer atomically (no await between choosing a segment and reserving room in
it), appends the CreateSegment when nothing fits and asks for a redo, because
the insert's timetick is older than the new segment's CreateSegment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

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
from walstream.wal.errors import InvalidInsertError
from walstream.wal.segments.emitter import FlushEmitter
from walstream.wal.segments.ids import SegmentIdAllocator
from walstream.wal.segments.manager import SegmentManager
from walstream.wal.segments.messages import create_segment_message, set_header
from walstream.wal.segments.state import GrowingSegment, PartitionShard

log = logging.getLogger(__name__)

Sealed = list[tuple[GrowingSegment, str]]


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
    ) -> None:
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
        coll = self._manager.collection(vchannel, header.collection_id)
        if not header.partitions:
            raise InvalidInsertError(
                f"insert into collection {header.collection_id} on vchannel {vchannel!r} "
                f"names no partition in its header"
            )
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
                    await self._create(shard, segment, timetick)
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

    async def _create(
        self, shard: PartitionShard, limits: SegmentLimits, timetick: int
    ) -> NoReturn:
        """Append a CreateSegment for ``shard`` (or wait for the one in flight), then ask for a redo."""
        in_flight = shard.creating
        if in_flight is not None:
            # One CreateSegment per partition at a time; the waiters take the new segment on redo.
            await in_flight.wait()
            raise RedoError(f"insert at timetick {timetick} waited for a new segment; redo")
        done = asyncio.Event()
        shard.creating = done
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
        finally:
            shard.creating = None
            done.set()
        if segment.sealed:  # the partition was dropped while the CreateSegment was in flight
            self._emitter.flush_soon([(segment, SealReason.PARTITION_DROPPED)])
        raise RedoError(
            f"insert at timetick {timetick} redone into new segment {segment_id} "
            f"(created at timetick {result.timetick})"
        )
