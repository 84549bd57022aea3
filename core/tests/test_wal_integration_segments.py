"""Segment assignment inside the real streaming WAL: no deadlock with exclusive messages,
Flush after drops, default wiring, recovery of collections, and the new hooks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from wal_helpers import backend_log, capacity_chain, create_collection, segment_insert, segment_of
from walstream import hooks
from walstream.message import MessageType, MutableMessage, new_message
from walstream.proto import messages_pb2 as pb
from walstream.tso import TimestampOracle
from walstream.wal import StreamingWAL, VChannelExistsError, WALSettings, open_wal
from walstream.wal.chain import AppendResult
from walstream.walimpls import PChannelInfo, WALImpl
from walstream.walimpls.registry import build_opener

WAIT = 5.0
QUIET = 10_000_000  # time-tick sync never fires by itself during a test

pytestmark = pytest.mark.usefixtures("no_config")  # conftest.py: no user config file


class GatedTSO:
    """The TSO, whose next allocation once armed waits for ``release``.

    The timetick step allocates inside the lock step: an Insert held here holds its
    vchannel read lock and has not reached segment assignment yet.
    """

    def __init__(self, inner: TimestampOracle) -> None:
        self.inner = inner
        self.armed = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def _hold(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.release.wait()

    async def allocate(self) -> int:
        await self._hold()
        return await self.inner.allocate()

    async def allocate_at_least(self, barrier: int) -> int:
        await self._hold()
        return await self.inner.allocate_at_least(barrier)


async def open_rw(
    tso: TimestampOracle | GatedTSO,
    namespace: str,
    *,
    term: int = 1,
    **overrides: Any,
) -> tuple[StreamingWAL, WALImpl]:
    opener = build_opener("memory", {"namespace": namespace})
    impl = await opener.open(PChannelInfo("p1", term))
    settings = WALSettings(**{"timetick_interval_ms": QUIET, **overrides})
    wal = await open_wal(
        impl,
        tso=tso,
        settings=settings,
        seal_chain=capacity_chain(max_rows=10, max_bytes=10**9),
        seal_interval_s=3600,
    )
    return wal, impl


def exclusive(kind: str) -> MutableMessage:
    if kind == "manual_flush":
        return new_message(
            MessageType.MANUAL_FLUSH,
            vchannel="v1",
            header=pb.ManualFlushMessageHeader(collection_id=1),
        )
    if kind == "create_partition":
        return new_message(
            MessageType.CREATE_PARTITION,
            vchannel="v1",
            header=pb.CreatePartitionMessageHeader(collection_id=1, partition_id=11),
        )
    return create_collection()  # refused (the vchannel exists), but only after the write lock


@pytest.mark.parametrize("kind", ["manual_flush", "create_partition", "create_collection"])
async def test_insert_needing_a_segment_races_an_exclusive_message_without_deadlock(
    tso: TimestampOracle, kind: str
) -> None:
    """Regression: the CreateSegment used to be awaited under the Insert's read lock, queued
    behind the exclusive message's write-lock request, which waited for that read lock."""
    gate = GatedTSO(tso)
    wal, impl = await open_rw(gate, f"seg-{uuid.uuid4().hex}")
    try:
        await wal.append(create_collection())
        gate.armed = True
        message = segment_insert()
        inserting = asyncio.create_task(wal.append(message))
        await asyncio.wait_for(gate.entered.wait(), WAIT)
        racing = asyncio.create_task(wal.append(exclusive(kind)))
        await asyncio.sleep(0.05)  # the exclusive message now waits for the write lock
        assert not racing.done()
        gate.release.set()
        results = await asyncio.wait_for(
            asyncio.gather(inserting, racing, return_exceptions=True), WAIT
        )
        inserted = results[0]
        assert isinstance(inserted, AppendResult), inserted
        if kind == "create_collection":
            assert isinstance(results[1], VChannelExistsError)
        else:
            assert isinstance(results[1], AppendResult), results[1]
            # The redo gave the insert a timetick after the exclusive message's.
            assert inserted.timetick > results[1].timetick
        log = await backend_log(impl)
        creates = [m for m in log if m.message_type is MessageType.CREATE_SEGMENT]
        assert len(creates) == 1
        stored = next(m for m in log if m.message_type is MessageType.INSERT)
        header = creates[0].header()
        assert isinstance(header, pb.CreateSegmentMessageHeader)
        assert segment_of(stored) == header.segment_id
        assert creates[0].timetick < stored.timetick
    finally:
        await wal.close()


async def test_many_inserts_and_manual_flushes_interleave(tso: TimestampOracle) -> None:
    wal, impl = await open_rw(tso, f"seg-{uuid.uuid4().hex}")
    try:
        await wal.append(create_collection(pids=(10, 11)))
        work = [wal.append(segment_insert(rows=3, pid=10 + i % 2)) for i in range(40)]
        work += [wal.append(exclusive("manual_flush")) for _ in range(5)]
        await asyncio.wait_for(asyncio.gather(*work), WAIT)
        assert wal.segments is not None
        await asyncio.wait_for(wal.segments.wait_flushed(), WAIT)
        log = await backend_log(impl)
        created: dict[int, int] = {}
        for m in log:
            if m.message_type is MessageType.CREATE_SEGMENT:
                header = m.header()
                assert isinstance(header, pb.CreateSegmentMessageHeader)
                created[header.segment_id] = m.timetick
        for m in log:
            if m.message_type is MessageType.INSERT:
                assert created[segment_of(m)] < m.timetick  # created before any insert into it
        assert wal.segments.unflushed == []
    finally:
        await wal.close()


@pytest.mark.parametrize("what", ["collection", "partition"])
async def test_flush_right_after_a_drop_passes_the_vchannel_check(
    tso: TimestampOracle, what: str
) -> None:
    wal, impl = await open_rw(tso, f"seg-{uuid.uuid4().hex}")
    try:
        await wal.append(create_collection())
        message = segment_insert(rows=2)
        await wal.append(message)
        if what == "collection":
            dropping = new_message(
                MessageType.DROP_COLLECTION,
                vchannel="v1",
                header=pb.DropCollectionMessageHeader(collection_id=1),
            )
        else:
            dropping = new_message(
                MessageType.DROP_PARTITION,
                vchannel="v1",
                header=pb.DropPartitionMessageHeader(collection_id=1, partition_id=10),
            )
        drop_result = await wal.append(dropping)
        assert wal.segments is not None
        await asyncio.wait_for(wal.segments.wait_flushed(), WAIT)
        assert wal.segments.unflushed == []
        flushes = [m for m in await backend_log(impl) if m.message_type is MessageType.FLUSH]
        assert len(flushes) == 1
        assert flushes[0].timetick > drop_result.timetick
        header = flushes[0].header()
        assert isinstance(header, pb.FlushMessageHeader)
        assert header.segment_id == segment_of(message)
    finally:
        await wal.close()


async def test_segment_assignment_is_on_by_default_and_can_be_turned_off(
    tso: TimestampOracle,
) -> None:
    wal, impl = await open_rw(tso, f"seg-{uuid.uuid4().hex}")
    try:
        assert wal.segments is not None
        assert wal.segments._sealer.running  # the periodic check runs from open
        await wal.append(create_collection())
        message = segment_insert()
        await wal.append(message)
        assert segment_of(message) != 0
        sealer = wal.segments._sealer
    finally:
        await wal.close()
    assert not sealer.running  # ... to close
    off, impl = await open_rw(tso, f"seg-{uuid.uuid4().hex}", segment_assignment=False)
    try:
        assert off.segments is None
        await off.append(create_collection())
        message = segment_insert()
        await off.append(message)
        assert segment_of(message) == 0
        types = [m.message_type for m in await backend_log(impl)]
        assert MessageType.CREATE_SEGMENT not in types
    finally:
        await off.close()


async def test_collections_are_recovered_at_reopen(tso: TimestampOracle) -> None:
    namespace = f"seg-{uuid.uuid4().hex}"
    wal, _ = await open_rw(tso, namespace)
    try:
        await wal.append(create_collection("v1", 1))
        await wal.append(create_collection("v2", 2))
        await wal.append(
            new_message(
                MessageType.DROP_COLLECTION,
                vchannel="v2",
                header=pb.DropCollectionMessageHeader(collection_id=2),
            )
        )
    finally:
        await wal.close()
    again, _ = await open_rw(tso, namespace, term=2)
    try:
        message = segment_insert("v1")
        await again.append(message)  # collection 1 known again: assigned a new segment
        assert segment_of(message) != 0
        assert again.segments is not None
        assert [c for (v, c) in again.segments.manager._collections] == [1]
    finally:
        await again.close()


class Observer:
    def __init__(self) -> None:
        self.created: list[tuple[str, int, int, int]] = []
        self.txns: list[tuple[str, int, str]] = []

    @hooks.hookimpl
    def walstream_segment_created(
        self,
        pchannel: PChannelInfo,
        vchannel: str,
        collection_id: int,
        partition_id: int,
        segment_id: int,
    ) -> None:
        assert pchannel.name == "p1"
        self.created.append((vchannel, collection_id, partition_id, segment_id))

    @hooks.hookimpl
    def walstream_txn_ended(
        self, pchannel: PChannelInfo, vchannel: str, txn_id: int, state: str
    ) -> None:
        assert pchannel.name == "p1"
        self.txns.append((vchannel, txn_id, state))


async def test_observers_see_segment_created_and_txn_ended(tso: TimestampOracle) -> None:
    observer = Observer()
    hooks.register(observer)
    try:
        wal, _ = await open_rw(tso, f"seg-{uuid.uuid4().hex}")
        try:
            await wal.append(create_collection())
            message = segment_insert()
            await wal.append(message)
            assert observer.created == [("v1", 1, 10, segment_of(message))]
            committed = await wal.begin_txn("v1")
            await committed.append(segment_insert())
            await committed.commit()
            rolled = await wal.begin_txn("v1")
            await rolled.rollback()
            assert observer.txns == [
                ("v1", committed.txn_id, "COMMITTED"),
                ("v1", rolled.txn_id, "ROLLED_BACK"),
            ]
        finally:
            await wal.close()
    finally:
        hooks.unregister(observer)
