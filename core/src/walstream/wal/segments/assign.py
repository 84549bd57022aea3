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
from collections.abc import Callable, Sequence
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

_Member = tuple[int, MutableMessage, pb.InsertMessageHeader, pb.PartitionSegmentAssignment]
"""One insert of a batch: its index, the message, its decoded header and its one partition."""

CREATED_HOOK = "walstream_segment_created"


class Reservation:
    """Room an insert holds in its segments until its append ends."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        """No room held yet."""
        self.entries: list[tuple[GrowingSegment, int, int]] = []
        """(segment, rows, binary bytes) held in each segment."""

    def add(self, segment: GrowingSegment, rows: int, binary_bytes: int) -> None:
        """Hold room for ``rows`` and ``binary_bytes`` in ``segment``."""
        segment.reserve(rows, binary_bytes)
        self.entries.append((segment, rows, binary_bytes))

    def commit(self, now: float) -> None:
        """The append succeeded: the rows and bytes now count in the segments' stats."""
        for segment, rows, binary_bytes in self.entries:
            segment.commit(rows, binary_bytes, now)
        self.entries.clear()

    def release(self) -> None:
        """The append failed or is redone: give the room back."""
        for segment, rows, binary_bytes in self.entries:
            segment.release(rows, binary_bytes)
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

    def assign(self, message: MutableMessage) -> Reservation:
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
                reservation.add(segment, insert.rows, insert.binary_bytes)
                part.segment_assignment.segment_id = segment.segment_id
        except BaseException:
            reservation.release()
            self._emitter.flush_soon(sealed)
            raise
        set_header(message, header)
        self._emitter.flush_soon(sealed)
        return reservation

    def assign_batch(self, messages: Sequence[MutableMessage]) -> list[Reservation | Exception]:
        """:meth:`assign` for each Insert of a batch; a refusal is that insert's outcome.

        The single-partition inserts of one partition are offered to the policies
        together, as one insert of their summed rows and bytes: when that fits the
        first eligible segment with nothing to seal, they all go there (a segment
        that takes the sum takes each part in turn). Otherwise, and for inserts into
        several partitions, each insert is assigned on its own, in batch order.
        """
        outcomes: list[Reservation | Exception | None] = [None] * len(messages)
        groups: dict[tuple[str, int, int], list[_Member]] = {}
        for i, message in enumerate(messages):
            try:
                header = message.header()
            except Exception as exc:
                outcomes[i] = exc
                continue
            assert isinstance(header, pb.InsertMessageHeader)
            if len(header.partitions) != 1:
                outcomes[i] = self._assign_one(message)
                continue
            part = header.partitions[0]
            key = (message.vchannel, header.collection_id, part.partition_id)
            groups.setdefault(key, []).append((i, message, header, part))
        now = self._clock()
        try:
            for key, members in groups.items():
                if not self._assign_together(key, members, outcomes, now):
                    for i, message, _, _ in members:
                        outcomes[i] = self._assign_one(message)
        except BaseException:
            # Nobody else holds these: give the room back before the error leaves.
            for outcome in outcomes:
                if isinstance(outcome, Reservation):
                    outcome.release()
            raise
        return [outcome for outcome in outcomes if outcome is not None]

    def _assign_one(self, message: MutableMessage) -> Reservation | Exception:
        try:
            return self.assign(message)
        except Exception as exc:
            return exc

    def _assign_together(
        self,
        key: tuple[str, int, int],
        members: list[_Member],
        outcomes: list[Reservation | Exception | None],
        now: float,
    ) -> bool:
        """Assign ``members`` (one partition) to one segment if it takes them all at once."""
        vchannel, collection_id, partition_id = key
        coll = self._manager.find_collection(vchannel, collection_id)
        shard = coll.partitions.get(partition_id) if coll is not None else None
        if coll is None or shard is None:
            return False  # each insert gets its own clear refusal
        oldest = min(message.timetick for _, message, _, _ in members)
        if oldest <= coll.fence_timetick:
            return False
        eligible = [s for s in shard.growing if s.create_timetick < oldest]
        if not eligible or len(eligible) < len(shard.growing):
            return False
        # (rows, bytes) of each member; plain tuples: this runs once per insert.
        parts = [(part.rows, part.binary_size or message.size) for _, message, _, part in members]
        together = InsertStats(
            collection_id,
            partition_id,
            vchannel,
            sum(rows for rows, _ in parts),
            sum(binary_bytes for _, binary_bytes in parts),
        )
        try:
            plan = self._chain.assign([s.view() for s in eligible], together, now)
        except Exception:
            # The sum may be too large where each part is not, and a policy may refuse in
            # its own way: each insert then gets its own answer (and only its own error).
            return False
        if plan.seals or plan.segment_id is None:
            return False
        segment = self._manager.growing_segment(plan.segment_id)
        assert segment is not None, "the chain chose a segment that is not growing"
        segment_id = segment.segment_id
        for (i, message, header, part), (rows, binary_bytes) in zip(members, parts, strict=True):
            part.segment_assignment.segment_id = segment_id
            set_header(message, header)
            reservation = Reservation()
            reservation.add(segment, rows, binary_bytes)
            outcomes[i] = reservation
        return True

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
