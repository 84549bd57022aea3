"""``SegmentAssignInterceptor``: the append-path step that keeps the growing-segment lifecycle.

Placed after the timetick interceptor (every message it sees has its timetick)
and before the backend append. Per message type:

- Create/Drop Collection/Partition: appended, then the registry is updated; a
  drop seals (Flush) the growing segments it removes.
- Insert: each partition is assigned a growing segment (see ``assign``); the
  rows and bytes count once the append succeeded.
- Delete: the collection must exist.
- ManualFlush / SchemaChange (exclusive: they hold the vchannel write lock):
  seal every growing segment of the collection, fence inserts at or below the
  message's timetick, list the sealed ids in the header.
- Everything else (CreateSegment and Flush it emits itself, TimeTick, txn
  control messages) passes through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from walstream.message import ImmutableMessage, Message, MessageType, MutableMessage
from walstream.policy import SealDecision, SealPolicyChain, SealReason
from walstream.proto import messages_pb2 as pb
from walstream.wal.chain import AppendFunc, AppendResult, BatchAppendFunc, Interceptor, Outcome
from walstream.wal.segments.assign import InsertAssigner, Reservation
from walstream.wal.segments.emitter import FlushEmitter
from walstream.wal.segments.ids import SegmentIdAllocator, TimetickSeededIds
from walstream.wal.segments.manager import SegmentManager
from walstream.wal.segments.messages import set_header
from walstream.wal.segments.state import GrowingSegment
from walstream.wal.segments.ticker import PeriodicSealer
from walstream.walimpls.options import PChannelInfo

log = logging.getLogger(__name__)

SCHEMA_CHANGE_REASON = "schema_change"
_ENDED_TXNS_KEPT = 4096  # far more than can have a body still on its way


class SegmentAssignInterceptor(Interceptor):
    """Assigns inserts to growing segments and emits CreateSegment / Flush messages.

    ``append_system`` is the WAL's internal append: it runs the whole chain (so
    CreateSegment and Flush get a timetick) for self-controlled types. It is
    never awaited while the message being intercepted holds its locks: a
    CreateSegment runs in the background and the Insert raises ``RedoError``
    with ``ready`` set, for the redo step to wait (see the package docstring).
    ``allocate_segment_id`` defaults to :class:`TimetickSeededIds`; ``clock`` is
    the monotonic clock policies measure ages and idle times with.
    """

    name: ClassVar[str] = "segment_assign"

    def __init__(
        self,
        *,
        pchannel: PChannelInfo,
        chain: SealPolicyChain,
        append_system: AppendFunc,
        allocate_segment_id: SegmentIdAllocator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._manager = SegmentManager()
        self._emitter = FlushEmitter(pchannel, append_system)
        self._assigner = InsertAssigner(
            manager=self._manager,
            chain=chain,
            emitter=self._emitter,
            append_system=append_system,
            allocate_segment_id=allocate_segment_id or TimetickSeededIds(),
            clock=clock,
            pchannel=pchannel,
        )
        self._sealer = PeriodicSealer(self._manager, chain, self._emitter, clock)
        # Segments holding bodies of open transactions, by txn id (see ``txn_ended``).
        self._txn_segments: dict[int, dict[int, GrowingSegment]] = {}
        self._ended_txns: dict[int, None] = {}  # recently ended, oldest first

    @property
    def manager(self) -> SegmentManager:
        """The collections, partitions and growing segments (read it; do not change it)."""
        return self._manager

    @property
    def unflushed(self) -> list[int]:
        """Sealed segments whose Flush failed to append and waits for the next tick."""
        return self._emitter.unflushed

    def start(self, interval: float) -> None:
        """Run the periodic seal check every ``interval`` seconds (``check_interval_seconds``)."""
        self._sealer.start(interval)

    async def tick(self) -> list[SealDecision]:
        """Run the periodic seal check once, now; returns the policies' decisions."""
        return await self._sealer.tick()

    async def wait_flushed(self) -> None:
        """Wait until every Flush decided so far has been attempted (failed ones: ``unflushed``)."""
        await self._emitter.drain()

    async def close(self) -> None:
        """Stop the periodic check and cancel Flushes still in the background."""
        await self._sealer.close()
        await self._assigner.close()
        await self._emitter.close()

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        """Dispatch on the message type (see the module docstring)."""
        mtype = message.message_type
        if mtype is MessageType.INSERT:
            return await self._insert(message, next_)
        if mtype is MessageType.DELETE:
            header = message.header()
            assert isinstance(header, pb.DeleteMessageHeader)
            self._manager.collection(message.vchannel, header.collection_id)
            return await next_(message)
        if mtype in (MessageType.MANUAL_FLUSH, MessageType.SCHEMA_CHANGE):
            return await self._flush_collection(message, next_)
        if mtype in _DDL:
            return await self._ddl(message, next_)
        return await next_(message)

    async def _insert(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        reservation = self._assigner.assign(message)
        txn = message.txn_context
        if txn is not None:
            # Before the append: the Flush of these segments waits for the txn's end.
            self._pin(txn.txn_id, [segment for segment, _, _ in reservation.entries])
        try:
            result = await next_(message)
        except BaseException:
            reservation.release()
            raise
        reservation.commit(self._clock())
        return result

    async def do_append_batch(
        self, messages: list[MutableMessage], next_: BatchAppendFunc
    ) -> list[Outcome]:
        """Assign every Insert and check every Delete's collection, append the rest together.

        A batch holds only plain messages (no DDL, ManualFlush or SchemaChange: they
        are exclusive). A refused message (``RedoError`` included) is its outcome.
        """
        outcomes: list[Outcome | None] = [None] * len(messages)
        inserts = [m for m in messages if m.message_type is MessageType.INSERT]
        assigned = iter(self._assigner.assign_batch(inserts) if inserts else ())
        passing: list[MutableMessage] = []
        where: list[int] = []
        reservations: list[Reservation | None] = []
        for i, message in enumerate(messages):
            mtype = message.message_type
            reservation: Reservation | None = None
            if mtype is MessageType.INSERT:
                assignment = next(assigned)
                if isinstance(assignment, Exception):
                    outcomes[i] = assignment
                    continue
                reservation = assignment
            elif mtype is MessageType.DELETE:
                try:
                    header = message.header()
                    assert isinstance(header, pb.DeleteMessageHeader)
                    self._manager.collection(message.vchannel, header.collection_id)
                except Exception as exc:
                    outcomes[i] = exc
                    continue
            passing.append(message)
            where.append(i)
            reservations.append(reservation)
        if passing:
            try:
                results = await next_(passing)
            except BaseException:
                for reservation in reservations:
                    if reservation is not None:
                        reservation.release()
                raise
            now = self._clock()
            for i, reservation, result in zip(where, reservations, results, strict=True):
                outcomes[i] = result
                if reservation is not None:
                    if isinstance(result, BaseException):
                        reservation.release()
                    else:
                        reservation.commit(now)
        return [outcome for outcome in outcomes if outcome is not None]

    def txn_ended(self, txn_id: int) -> None:
        """A transaction ended (committed, rolled back, expired): its segments may flush."""
        self._ended_txns[txn_id] = None
        if len(self._ended_txns) > _ENDED_TXNS_KEPT:
            del self._ended_txns[next(iter(self._ended_txns))]
        for segment in self._txn_segments.pop(txn_id, {}).values():
            segment.unpin_txn()

    def _pin(self, txn_id: int, segments: list[GrowingSegment]) -> None:
        if txn_id in self._ended_txns:
            return  # ended while this body was on its way: nothing to hold
        pinned = self._txn_segments.setdefault(txn_id, {})
        for segment in segments:
            if segment.segment_id not in pinned:
                pinned[segment.segment_id] = segment
                segment.pin_txn()

    def observe(self, message: ImmutableMessage) -> None:
        """Replay one logged message at WAL open: collections and partitions, no segments.

        Growing segments are not recovered: inserts after a reopen get new ones.
        """
        if message.message_type in _DDL:
            self._apply_ddl(message)

    async def _ddl(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        # Milvus appends first and updates the shard manager after: a failed DDL changes nothing.
        result = await next_(message)
        self._emitter.flush_soon(self._apply_ddl(message))
        return result

    def _apply_ddl(self, message: Message) -> list[tuple[GrowingSegment, str]]:
        vchannel, header = message.vchannel, message.header()
        sealed: list[GrowingSegment] = []
        reason: str = SealReason.COLLECTION_DROPPED
        if isinstance(header, pb.CreateCollectionMessageHeader):
            self._manager.create_collection(
                vchannel, header.collection_id, list(header.partition_ids)
            )
        elif isinstance(header, pb.CreatePartitionMessageHeader):
            self._manager.create_partition(vchannel, header.collection_id, header.partition_id)
        elif isinstance(header, pb.DropCollectionMessageHeader):
            sealed = self._manager.drop_collection(vchannel, header.collection_id)
        elif isinstance(header, pb.DropPartitionMessageHeader):
            sealed = self._manager.drop_partition(
                vchannel, header.collection_id, header.partition_id
            )
            reason = SealReason.PARTITION_DROPPED
        return [(seg, reason) for seg in sealed]

    async def _flush_collection(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        header = message.header()
        assert isinstance(header, pb.ManualFlushMessageHeader | pb.SchemaChangeMessageHeader)
        sealed = self._manager.fence_and_seal(
            message.vchannel, header.collection_id, message.timetick
        )
        ids = (
            header.segment_ids
            if isinstance(header, pb.ManualFlushMessageHeader)
            else (header.flushed_segment_ids)
        )
        # Union, not overwrite: on a redo the segments sealed by the first attempt stay listed.
        merged = sorted(set(ids) | {seg.segment_id for seg in sealed})
        del ids[:]
        ids.extend(merged)
        set_header(message, header)
        reason = (
            SealReason.MANUAL_FLUSH
            if message.message_type is MessageType.MANUAL_FLUSH
            else SCHEMA_CHANGE_REASON
        )
        try:
            return await next_(message)
        finally:
            # Sealed whether or not the message made it: their Flush is owed either way.
            # In the background: this message holds the vchannel write lock the Flush needs.
            self._emitter.flush_soon((seg, reason) for seg in sealed)


_DDL = frozenset(
    {
        MessageType.CREATE_COLLECTION,
        MessageType.CREATE_PARTITION,
        MessageType.DROP_COLLECTION,
        MessageType.DROP_PARTITION,
    }
)
