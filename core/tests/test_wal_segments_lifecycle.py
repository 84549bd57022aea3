"""Segment assignment through a fake chain: redo -> stamp timetick -> segment assign -> recorder.

The fake terminal records every appended message; ``append_system`` runs the
same chain, as the WAL's internal append does. Clocks and memory readings are
injected, so no test sleeps for a policy.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest
from walstream import hooks
from walstream.backends.memory import MemoryMessageID
from walstream.errors import WALError
from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.policy import (
    CapacityPolicy,
    CapacitySettings,
    GrowingBytesHwmPolicy,
    GrowingBytesHwmSettings,
    IdlePolicy,
    IdleSettings,
    InsertTooLargeError,
    LifetimePolicy,
    LifetimeSettings,
    MemoryPressurePolicy,
    MemoryPressureSettings,
    MemoryReading,
    SealPolicyChain,
    SealReason,
    SegmentPolicy,
)
from walstream.proto import messages_pb2 as pb
from walstream.wal.chain import AppendFunc, AppendResult, Interceptor, RedoError, build_chain
from walstream.wal.errors import CollectionNotFoundError, PartitionNotFoundError
from walstream.wal.segments import (
    SEAL_REASON_PROPERTY,
    SegmentAssignInterceptor,
    TimetickSeededIds,
)
from walstream.walimpls.options import PChannelInfo

VC = "pch-1_v0"
PCHANNEL = PChannelInfo("pch-1", 1)
TIMEOUT = 10.0


pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stamp(Interceptor):
    """Stands in for the timetick interceptor: a fresh, increasing timetick per attempt."""

    name = "stamp"

    def __init__(self, jitter: bool) -> None:
        self.last = 0
        self.jitter = jitter

    async def do_append(self, message: MutableMessage, next_: AppendFunc) -> AppendResult:
        self.last += 1
        message.with_timetick(self.last)
        if self.jitter:  # a real timetick step awaits: others may create segments meanwhile
            await _yield_randomly()
        return await next_(message)


async def _yield_randomly() -> None:
    for _ in range(random.randint(0, 3)):
        await asyncio.sleep(0)


class FakeWAL:
    """Redo loop around [Stamp, SegmentAssignInterceptor] and a recording terminal."""

    def __init__(
        self,
        policies: Sequence[SegmentPolicy],
        *,
        memory: MemoryReading | None = None,
        jitter: bool = False,
    ) -> None:
        self.clock = Clock()
        self.log: list[ImmutableMessage] = []
        self.redos = 0
        self.fail: dict[MessageType, int] = {}  # type -> how many appends of it fail
        self.jitter = jitter
        self.memory = memory
        self.flush_seen = asyncio.Event()
        chain = SealPolicyChain(policies, memory_probe=lambda: self.memory)
        self.seg = SegmentAssignInterceptor(
            pchannel=PCHANNEL, chain=chain, append_system=self.append, clock=self.clock
        )
        self._chain = build_chain([Stamp(jitter), self.seg], self._terminal)

    async def _terminal(self, message: MutableMessage) -> AppendResult:
        if self.jitter:  # let concurrent appends overtake each other
            await _yield_randomly()
        if self.fail.get(message.message_type, 0) > 0:
            self.fail[message.message_type] -= 1
            raise WALError(f"injected failure of a {message.message_type.name} append")
        mid = MemoryMessageID(len(self.log))
        self.log.append(message.into_immutable(mid))
        if message.message_type is MessageType.FLUSH:
            self.flush_seen.set()
        return AppendResult(mid, message.timetick, mid)

    async def append(self, message: MutableMessage) -> AppendResult:
        for _ in range(1000):
            try:
                return await self._chain(message)
            except RedoError as exc:
                self.redos += 1
                if exc.ready is not None:  # as the redo interceptor: wait outside the chain
                    await exc.ready
        raise AssertionError("redone 1000 times")

    # --- building messages ---------------------------------------------------

    async def create_collection(self, cid: int = 1, pids: Sequence[int] = (10,)) -> None:
        header = pb.CreateCollectionMessageHeader(collection_id=cid, partition_ids=list(pids))
        await self.append(new_message(MessageType.CREATE_COLLECTION, vchannel=VC, header=header))

    async def insert(self, rows: int, *, cid: int = 1, pid: int = 10, size: int = 0) -> int:
        """Append an insert; returns the segment id it was assigned."""
        message = insert_message(rows, cid=cid, pid=pid, size=size)
        await self.append(message)
        header = message.header()
        assert isinstance(header, pb.InsertMessageHeader)
        return header.partitions[0].segment_assignment.segment_id

    def of_type(self, mtype: MessageType) -> list[ImmutableMessage]:
        return [m for m in self.log if m.message_type is mtype]

    def flushed(self) -> dict[int, str]:
        """Flushed segment id -> seal reason."""
        out = {}
        for m in self.of_type(MessageType.FLUSH):
            header = m.header()
            assert isinstance(header, pb.FlushMessageHeader)
            out[header.segment_id] = m.properties[SEAL_REASON_PROPERTY]
        return out


def insert_message(rows: int, *, cid: int = 1, pid: int = 10, size: int = 0) -> MutableMessage:
    header = pb.InsertMessageHeader(
        collection_id=cid,
        partitions=[pb.PartitionSegmentAssignment(partition_id=pid, rows=rows, binary_size=size)],
    )
    return new_message(MessageType.INSERT, vchannel=VC, header=header, payload=b"r" * rows)


def capacity(max_rows: int = 10, max_bytes: int = 10**9) -> CapacityPolicy:
    """Exact limits: seal at max_rows / max_bytes, no proportion, no jitter."""
    return CapacityPolicy(
        CapacitySettings(
            max_rows=max_rows, max_bytes=max_bytes, seal_proportion=1, seal_proportion_jitter=0
        )
    )


def header_of(message: ImmutableMessage) -> Any:
    return message.header()


# --- creation and redo ---------------------------------------------------------------


async def test_first_insert_creates_a_segment_then_is_redone_into_it() -> None:
    wal = FakeWAL([capacity()])
    await wal.create_collection()
    seg = await wal.insert(3)
    types = [m.message_type for m in wal.log]
    assert types == [MessageType.CREATE_COLLECTION, MessageType.CREATE_SEGMENT, MessageType.INSERT]
    create, insert = wal.log[1], wal.log[2]
    created = header_of(create)
    assert (created.collection_id, created.partition_id, created.segment_id) == (1, 10, seg)
    assert created.max_rows == 10
    assert insert.timetick > create.timetick
    assert wal.redos == 1
    assert await wal.insert(2) == seg  # the next insert fits: no new segment, no redo
    assert wal.redos == 1
    assert len(wal.of_type(MessageType.CREATE_SEGMENT)) == 1


async def test_default_segment_ids_are_seeded_from_the_timetick() -> None:
    ids = TimetickSeededIds()
    assert [await ids(50), await ids(50), await ids(40), await ids(90)] == [50, 51, 52, 90]


async def test_capacity_seals_then_creates_the_next_segment() -> None:
    wal = FakeWAL([capacity(max_rows=10)])
    await wal.create_collection()
    first = await wal.insert(4)
    assert await wal.insert(4) == first
    second = await wal.insert(4)  # 12 rows would not fit
    await wal.seg.wait_flushed()
    assert second != first
    assert wal.flushed() == {first: SealReason.CAPACITY}
    flush = wal.of_type(MessageType.FLUSH)[0]
    in_first = [m for m in wal.of_type(MessageType.INSERT) if _segment(m) == first]
    assert len(in_first) == 2
    assert all(m.timetick < flush.timetick for m in in_first)
    stats = wal.seg.manager.growing_segment(second)
    assert stats is not None
    assert stats.stats.rows == 4
    assert wal.seg.manager.growing_segment(first) is None


def _segment(message: ImmutableMessage) -> int:
    return int(header_of(message).partitions[0].segment_assignment.segment_id)


# --- refusals ------------------------------------------------------------------------


async def test_unknown_collection_partition_and_too_large_are_refused_clearly() -> None:
    wal = FakeWAL([capacity(max_rows=10)])
    await wal.create_collection()
    with pytest.raises(CollectionNotFoundError, match=r"collection 7 .*'pch-1_v0'"):
        await wal.insert(1, cid=7)
    with pytest.raises(PartitionNotFoundError, match=r"partition 99 of collection 1"):
        await wal.insert(1, pid=99)
    with pytest.raises(InsertTooLargeError) as info:
        await wal.insert(11)
    assert "collection 1, partition 10" in "".join(info.value.__notes__)
    delete = new_message(
        MessageType.DELETE, vchannel=VC, header=pb.DeleteMessageHeader(collection_id=7, rows=1)
    )
    with pytest.raises(CollectionNotFoundError):
        await wal.append(delete)
    assert wal.of_type(MessageType.CREATE_SEGMENT) == []  # nothing created for refused inserts
    ok = new_message(
        MessageType.DELETE, vchannel=VC, header=pb.DeleteMessageHeader(collection_id=1, rows=1)
    )
    await wal.append(ok)
    assert wal.log[-1].message_type is MessageType.DELETE


async def test_partitions_register_and_unknown_collection_partition_is_ignored() -> None:
    wal = FakeWAL([capacity()])
    await wal.create_collection(pids=())
    for cid in (1, 5):  # collection 5 does not exist: only logged, as in Milvus
        header = pb.CreatePartitionMessageHeader(collection_id=cid, partition_id=11)
        await wal.append(new_message(MessageType.CREATE_PARTITION, vchannel=VC, header=header))
    assert await wal.insert(1, pid=11) > 0
    with pytest.raises(CollectionNotFoundError):
        await wal.insert(1, cid=5, pid=11)


# --- stats -------------------------------------------------------------------------


async def test_stats_count_only_successful_appends() -> None:
    wal = FakeWAL([capacity(max_rows=10)])
    await wal.create_collection()
    seg = await wal.insert(3, size=30)
    wal.fail[MessageType.INSERT] = 1
    with pytest.raises(WALError, match="injected"):
        await wal.insert(5, size=50)
    growing = wal.seg.manager.growing_segment(seg)
    assert growing is not None
    assert (growing.stats.rows, growing.stats.binary_bytes) == (3, 30)
    assert (growing.pending_rows, growing.pending_bytes) == (0, 0)
    assert await wal.insert(7, size=70) == seg  # the failed 5 rows took no room
    assert (growing.stats.rows, growing.stats.binary_bytes) == (10, 100)


async def test_binary_size_defaults_to_the_message_size() -> None:
    wal = FakeWAL([capacity()])
    await wal.create_collection()
    message = insert_message(2)
    await wal.append(message)
    seg = wal.seg.manager.growing_segment(_segment(wal.log[-1]))
    assert seg is not None
    # Measured when assigned, before the segment id went into the header.
    assert len(message.payload) < seg.stats.binary_bytes <= message.size


# --- ManualFlush and drops -----------------------------------------------------------


async def test_manual_flush_seals_all_of_a_collection_and_fences_older_timeticks() -> None:
    wal = FakeWAL([capacity()])
    await wal.create_collection(cid=1, pids=(10, 11))
    await wal.create_collection(cid=2, pids=(20,))
    a, b = await wal.insert(1, pid=10), await wal.insert(1, pid=11)
    other = await wal.insert(1, cid=2, pid=20)
    manual = new_message(
        MessageType.MANUAL_FLUSH, vchannel=VC, header=pb.ManualFlushMessageHeader(collection_id=1)
    )
    await wal.append(manual)
    await wal.seg.wait_flushed()
    flush_tt = manual.timetick
    appended = wal.of_type(MessageType.MANUAL_FLUSH)[0]
    assert list(header_of(appended).segment_ids) == sorted([a, b])
    assert wal.flushed() == {a: SealReason.MANUAL_FLUSH, b: SealReason.MANUAL_FLUSH}
    assert all(f.timetick > flush_tt for f in wal.of_type(MessageType.FLUSH))
    assert wal.seg.manager.growing_segment(other) is not None  # another collection: untouched

    # An insert still carrying a timetick at or below the fence must be redone.
    stale = insert_message(1).with_timetick(flush_tt)
    with pytest.raises(RedoError, match="fenced"):
        await wal.seg.do_append(stale, wal.append)
    # Through the redo loop it gets a fresh timetick and a fresh segment.
    fresh = await wal.insert(1)
    assert fresh not in (a, b)


async def test_drop_partition_and_collection_seal_after_the_drop() -> None:
    wal = FakeWAL([capacity()])
    await wal.create_collection(pids=(10, 11))
    a, b = await wal.insert(1, pid=10), await wal.insert(1, pid=11)
    drop_p = pb.DropPartitionMessageHeader(collection_id=1, partition_id=10)
    await wal.append(new_message(MessageType.DROP_PARTITION, vchannel=VC, header=drop_p))
    await wal.seg.wait_flushed()
    assert wal.log[-2].message_type is MessageType.DROP_PARTITION
    assert wal.flushed() == {a: SealReason.PARTITION_DROPPED}
    with pytest.raises(PartitionNotFoundError):
        await wal.insert(1, pid=10)
    drop_c = pb.DropCollectionMessageHeader(collection_id=1)
    await wal.append(new_message(MessageType.DROP_COLLECTION, vchannel=VC, header=drop_c))
    await wal.seg.wait_flushed()
    assert wal.log[-2].message_type is MessageType.DROP_COLLECTION
    assert wal.flushed()[b] == SealReason.COLLECTION_DROPPED
    assert wal.seg.manager.growing() == []
    with pytest.raises(CollectionNotFoundError):
        await wal.insert(1, pid=11)


# --- periodic policies ----------------------------------------------------------------


async def test_idle_policy_seal_is_emitted_as_flush() -> None:
    wal = FakeWAL([capacity(), IdlePolicy(IdleSettings(min_bytes=0, max_idle_seconds=10))])
    await wal.create_collection()
    seg = await wal.insert(1)
    wal.clock.now += 10
    assert await wal.seg.tick() == []
    wal.clock.now += 1
    await wal.seg.tick()
    assert wal.flushed() == {seg: SealReason.IDLE}
    assert await wal.insert(1) != seg


async def test_lifetime_policy_seal_is_emitted_as_flush() -> None:
    wal = FakeWAL([capacity(), LifetimePolicy(LifetimeSettings(max_lifetime_seconds=60))])
    await wal.create_collection()
    seg = await wal.insert(1)
    wal.clock.now += 30
    await wal.insert(1)  # activity does not extend a lifetime
    wal.clock.now += 31
    await wal.seg.tick()
    assert wal.flushed() == {seg: SealReason.LIFETIME}


async def test_growing_bytes_hwm_seals_largest_first() -> None:
    hwm = GrowingBytesHwmPolicy(
        GrowingBytesHwmSettings(high_watermark_bytes=100, low_watermark_bytes=50)
    )
    wal = FakeWAL([capacity(), hwm])
    await wal.create_collection(pids=(10, 11, 12))
    big = await wal.insert(1, pid=10, size=60)
    await wal.insert(1, pid=11, size=30)
    await wal.insert(1, pid=12, size=20)
    await wal.seg.tick()  # 110 > 100: sealing 60 brings it to 50 <= 50
    assert wal.flushed() == {big: SealReason.GROWING_BYTES_HWM}


async def test_memory_pressure_seals_largest_first() -> None:
    pressure = MemoryPressurePolicy(MemoryPressureSettings(high_watermark=0.8, low_watermark=0.5))
    wal = FakeWAL([capacity(), pressure], memory=MemoryReading(used_bytes=70, total_bytes=100))
    await wal.create_collection(pids=(10, 11))
    big = await wal.insert(1, pid=10, size=40)
    await wal.insert(1, pid=11, size=10)
    await wal.seg.tick()
    assert wal.flushed() == {}
    wal.memory = MemoryReading(used_bytes=90, total_bytes=100)
    await wal.seg.tick()  # 90 - 40 = 50 <= 50
    assert wal.flushed() == {big: SealReason.MEMORY_PRESSURE}


async def test_periodic_task_runs_until_closed() -> None:
    wal = FakeWAL([capacity(), LifetimePolicy(LifetimeSettings(max_lifetime_seconds=1))])
    await wal.create_collection()
    seg = await wal.insert(1)
    wal.clock.now += 2
    wal.seg.start(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        wal.seg.start(0.01)
    async with asyncio.timeout(TIMEOUT):
        await wal.flush_seen.wait()
    assert seg in wal.flushed()
    await wal.seg.close()
    await wal.seg.close()  # idempotent


async def test_a_failed_flush_is_retried_on_the_next_tick() -> None:
    wal = FakeWAL([capacity(), LifetimePolicy(LifetimeSettings(max_lifetime_seconds=1))])
    await wal.create_collection()
    seg = await wal.insert(1)
    wal.clock.now += 2
    wal.fail[MessageType.FLUSH] = 1
    await wal.seg.tick()
    assert wal.flushed() == {}
    assert wal.seg.unflushed == [seg]
    assert await wal.insert(1) != seg  # sealed in memory all the same
    await wal.seg.tick()
    assert seg in wal.flushed()
    assert wal.seg.unflushed == []


async def test_sealed_hook_fires_when_the_flush_is_appended() -> None:
    seen: list[tuple[PChannelInfo, str, int]] = []

    class Observer:
        @hooks.hookimpl
        def walstream_segment_sealed(
            self, pchannel: PChannelInfo, vchannel: str, segment_id: int
        ) -> None:
            seen.append((pchannel, vchannel, segment_id))

    observer = Observer()
    hooks.register(observer)
    try:
        wal = FakeWAL([capacity(max_rows=2)])
        await wal.create_collection()
        seg = await wal.insert(2)
        await wal.insert(2)
        await wal.seg.wait_flushed()
    finally:
        hooks.unregister(observer)
    assert seen == [(PCHANNEL, VC, seg)]


# --- concurrency ------------------------------------------------------------------------


async def test_concurrent_inserts_never_overfill_nor_hit_a_sealed_segment() -> None:
    random.seed(7)
    limit = 20
    wal = FakeWAL([capacity(max_rows=limit)], jitter=True)
    await wal.create_collection()
    sizes = [random.randint(1, 6) for _ in range(300)]
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(wal.insert(n) for n in sizes))
        await wal.seg.wait_flushed()

    creates = {header_of(m).segment_id: m for m in wal.of_type(MessageType.CREATE_SEGMENT)}
    flushes = {header_of(m).segment_id: m for m in wal.of_type(MessageType.FLUSH)}
    assert len(creates) == len(wal.of_type(MessageType.CREATE_SEGMENT))  # ids never repeat
    rows: dict[int, int] = {}
    for m in wal.of_type(MessageType.INSERT):
        seg = _segment(m)
        rows[seg] = rows.get(seg, 0) + len(m.payload)
        assert m.timetick > creates[seg].timetick
        if seg in flushes:
            assert m.timetick < flushes[seg].timetick
    assert sum(rows.values()) == sum(sizes)
    assert max(rows.values()) <= limit
    assert set(rows) <= set(creates)
    # Concurrent inserts into an empty partition wait for one CreateSegment, not one each.
    assert len(creates) <= len(flushes) + 1


async def test_periodic_seals_racing_inserts_never_lose_or_misplace_one() -> None:
    random.seed(11)
    lifetime = LifetimePolicy(LifetimeSettings(max_lifetime_seconds=0.5))
    wal = FakeWAL([capacity(max_rows=30), lifetime], jitter=True)
    await wal.create_collection(pids=(10, 11))
    done = asyncio.Event()

    async def ticking() -> None:
        while not done.is_set():
            wal.clock.now += 0.2
            await wal.seg.tick()
            await asyncio.sleep(0)

    async def inserting() -> None:
        try:
            await asyncio.gather(
                *(wal.insert(random.randint(1, 4), pid=random.choice((10, 11))) for _ in range(200))
            )
        finally:
            done.set()

    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(ticking(), inserting())
        await wal.seg.wait_flushed()
    flushes = {header_of(m).segment_id: m for m in wal.of_type(MessageType.FLUSH)}
    assert len(flushes) == len(wal.of_type(MessageType.FLUSH))  # one Flush per segment
    assert SealReason.LIFETIME in wal.flushed().values()
    creates = {header_of(m).segment_id: m for m in wal.of_type(MessageType.CREATE_SEGMENT)}
    for m in wal.of_type(MessageType.INSERT):
        seg = _segment(m)
        assert header_of(creates[seg]).partition_id == header_of(m).partitions[0].partition_id
        assert creates[seg].timetick < m.timetick
        if seg in flushes:
            assert m.timetick < flushes[seg].timetick
