"""Release on ack: tailing readers get acknowledged messages without waiting for a sync.

The periodic sync still persists a TimeTick when messages were released since
the last persisted one (and only then, unless asked to), and catch-up readers
still see everything, in strictly increasing timetick order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from wal_helpers import (  # the WAL tests' shared helpers (core/tests/wal_helpers.py)
    Wrapped,
    backend_log,
    insert,
)
from wal_scan_helpers import assert_strictly_increasing
from walstream.backends.memory import MemoryMessageID
from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.tso import TimestampOracle, compose
from walstream.wal import (
    AckManager,
    StreamingWAL,
    WALScanner,
    WALSettings,
    WriteAheadBuffer,
    open_wal,
)
from walstream.wal.chain import AppendResult
from walstream.wal.options import WALReadOption
from walstream.wal.timetick_sync import TimeTickSync
from walstream.walimpls import AccessMode, DeliverAll, DeliverLatest, PChannelInfo
from walstream.walimpls.registry import build_opener
from walstream.walimpls.spi import WALImpl

WAIT = 2.0  # seconds: bound on a delivery that needs no periodic sync
QUIET = 10_000  # ms: a sync interval that never fires during a test


async def open_impl(namespace: str, mode: AccessMode = AccessMode.RW) -> WALImpl:
    opener = build_opener("memory", {"namespace": namespace})
    return await opener.open(PChannelInfo("p1", 1, mode))


async def open_rw(
    tso: TimestampOracle, namespace: str, jitter: float = 0.0
) -> tuple[StreamingWAL, Wrapped]:
    impl = Wrapped(await open_impl(namespace), jitter=jitter)
    settings = WALSettings(timetick_interval_ms=QUIET)
    return await open_wal(impl, tso=tso, settings=settings, vchannels=["v1"]), impl


def persisted_ticks(log: Sequence[ImmutableMessage]) -> int:
    return sum(1 for m in log if m.message_type is MessageType.TIME_TICK)


def sync_of(wal: StreamingWAL) -> TimeTickSync:
    rw = wal._rw
    assert rw is not None and rw.sync is not None
    return rw.sync


async def read_inserts(scanner: WALScanner, count: int) -> list[ImmutableMessage]:
    """Everything delivered until ``count`` inserts arrived (ticks included)."""
    out: list[ImmutableMessage] = []
    seen = 0
    async with asyncio.timeout(WAIT):
        while seen < count:
            msg = await anext(scanner)
            out.append(msg)
            seen += msg.message_type is MessageType.INSERT
    return out


# --- through the streaming WAL --------------------------------------------------------


async def test_tailing_reader_gets_a_message_without_a_sync(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        scanner = await wal.read(WALReadOption(name="tail", deliver_policy=DeliverLatest()))
        try:
            ticks_before = persisted_ticks(await backend_log(impl))
            result = await wal.append(insert())
            # The periodic sync never runs here: only release on ack can deliver it.
            got = await read_inserts(scanner, 1)
            assert got[-1].message_id == result.message_id
            assert got[-1].timetick == result.timetick
            # Released with an in-memory tick: nothing more was written for it.
            assert persisted_ticks(await backend_log(impl)) == ticks_before
            assert wal.wab is not None
            assert not wal.wab.last_timetick_message.is_persisted
            assert sync_of(wal).dirty
            # The next sync (not forced) persists a tick, because a message was released.
            persisted = sync_of(wal).persisted_ticks
            await asyncio.wait_for(wal.sync(), WAIT)
            assert sync_of(wal).persisted_ticks == persisted + 1
            assert not sync_of(wal).dirty
            log = await backend_log(impl)
            assert persisted_ticks(log) == ticks_before + 1
            assert log[-1].message_type is MessageType.TIME_TICK
            assert log[-1].timetick >= result.timetick
        finally:
            await scanner.close()
    finally:
        await wal.close()


async def test_syncs_persist_only_after_released_messages(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, impl = await open_rw(tso, namespace)
    try:
        sync = sync_of(wal)
        await wal.sync()
        base = sync.persisted_ticks
        stored = len(await backend_log(impl))
        for _ in range(3):
            await asyncio.wait_for(wal.sync(), WAIT)  # idle: in memory only
        assert sync.persisted_ticks == base
        assert len(await backend_log(impl)) == stored
        for _ in range(5):
            await wal.append(insert())
        await asyncio.wait_for(wal.sync(), WAIT)
        assert sync.persisted_ticks == base + 1
        await asyncio.wait_for(wal.sync(), WAIT)  # nothing released since
        assert sync.persisted_ticks == base + 1
        await asyncio.wait_for(wal.sync(persisted=True), WAIT)  # forced
        assert sync.persisted_ticks == base + 2
        assert len(await backend_log(impl)) == stored + 5 + 2
    finally:
        await wal.close()


async def test_close_persists_released_messages(tso: TimestampOracle, namespace: str) -> None:
    wal, _ = await open_rw(tso, namespace)
    results = [await wal.append(insert()) for _ in range(3)]
    await wal.close()
    log = await backend_log(await open_impl(namespace, AccessMode.RO))
    assert log[-1].message_type is MessageType.TIME_TICK
    assert log[-1].timetick >= max(r.timetick for r in results)


async def test_catch_up_readers_see_every_message(tso: TimestampOracle, namespace: str) -> None:
    wal, _ = await open_rw(tso, namespace, jitter=0.005)
    try:
        first = await asyncio.wait_for(
            asyncio.gather(*(wal.append(insert(payload=bytes([i]))) for i in range(30))), WAIT
        )
        # RW, from the start: catches up from the backend, then switches to the buffer
        # (the scanner's forced persisted tick) and tails the rest.
        scanner = await wal.read(WALReadOption(name="all", deliver_policy=DeliverAll()))
        try:
            second = await asyncio.wait_for(
                asyncio.gather(*(wal.append(insert(payload=bytes([i]))) for i in range(30))), WAIT
            )
            got = await read_inserts(scanner, 60)
        finally:
            await scanner.close()
        assert_strictly_increasing(got)
        ids = {r.message_id for r in (*first, *second)}
        assert {m.message_id for m in got if m.message_type is MessageType.INSERT} == ids
        await asyncio.wait_for(wal.sync(), WAIT)  # the released ones get a persisted tick
    finally:
        await wal.close()
    # Read-only, from the backend alone.
    ro = await open_wal(await open_impl(namespace, AccessMode.RO), tso=tso)
    try:
        scanner = await ro.read(WALReadOption(name="ro", deliver_policy=DeliverAll()))
        try:
            got = await read_inserts(scanner, 60)
        finally:
            await scanner.close()
        assert_strictly_increasing(got)
        assert {m.message_id for m in got if m.message_type is MessageType.INSERT} == ids
    finally:
        await ro.close()


async def test_tailing_delivery_strictly_increasing_under_concurrent_appends(
    tso: TimestampOracle, namespace: str
) -> None:
    wal, _ = await open_rw(tso, namespace, jitter=0.003)
    try:
        scanner = await wal.read(WALReadOption(name="tail", deliver_policy=DeliverLatest()))
        try:
            total = 200
            results: list[AppendResult] = []

            async def producer(n: int) -> None:
                for _ in range(n):
                    results.append(await wal.append(insert()))

            reader = asyncio.create_task(read_inserts(scanner, total))
            await asyncio.wait_for(asyncio.gather(*(producer(20) for _ in range(10))), 3 * WAIT)
            got = await reader
        finally:
            await scanner.close()
        assert_strictly_increasing(got)
        inserts = [m for m in got if m.message_type is MessageType.INSERT]
        assert [m.message_id for m in inserts] == [
            r.message_id for r in sorted(results, key=lambda r: r.timetick)
        ]
        assert sync_of(wal).releases > 0
    finally:
        await wal.close()


# --- the sync on its own: a slow append holds the watermark back ------------------------


class FakeTSO:
    """Timestamps one apart, synchronously available (like the real TSO's fast path)."""

    def __init__(self) -> None:
        self.last = compose(1_000, 0)

    def allocate_nowait(self, barrier: int = 0) -> int | None:
        self.last = max(self.last + 1, barrier)
        return self.last

    async def allocate(self) -> int:
        return self.allocate_nowait() or 0

    async def allocate_at_least(self, barrier: int) -> int:
        return self.allocate_nowait(barrier) or 0


def stored_message(timetick: int, index: int) -> ImmutableMessage:
    return (
        new_message(MessageType.INSERT, vchannel="v1")
        .with_timetick(timetick)
        .with_last_confirmed(MemoryMessageID(0))
        .into_immutable(MemoryMessageID(index))
    )


async def test_persisted_tick_at_a_released_timetick_is_not_pushed_again() -> None:
    tso = FakeTSO()
    start = tso.last
    initial = (
        new_message(MessageType.TIME_TICK, vchannel=None)
        .with_timetick(start)
        .with_last_confirmed_use_self()
        .into_immutable(MemoryMessageID(0))
    )
    ack = AckManager(
        tso, last_confirmed_timetick=start, last_confirmed_message_id=MemoryMessageID(0)
    )
    wab = WriteAheadBuffer(initial)
    written: list[MutableMessage] = []
    batches: list[list[int]] = []

    async def append(message: MutableMessage) -> AppendResult:
        written.append(message)
        mid = MemoryMessageID(100 + len(written))
        return AppendResult(mid, message.timetick, mid)

    sync = TimeTickSync(
        ack_manager=ack,
        wab=wab,
        append=append,
        hint_id=lambda: MemoryMessageID(0),
        interval_s=QUIET,
        on_batch=lambda ms: batches.append([m.timetick for m in ms]),
    )
    sync.start()
    try:
        a1 = ack.try_allocate()
        a2 = ack.try_allocate()
        assert a1 is not None and a2 is not None
        a1.ack(stored_message(a1.timestamp, 1))
        await asyncio.sleep(0)  # the listener runs on the next loop iteration
        await asyncio.sleep(0)
        # Released at once; a2 is slow, so the tick is the watermark (a1's timetick).
        assert wab.last_timetick == a1.timestamp
        assert not wab.last_timetick_message.is_persisted
        assert batches == [[a1.timestamp]]
        assert written == []
        # The sync persists at the watermark, which the buffer already has a tick for.
        await asyncio.wait_for(sync.sync(), WAIT)
        assert [(m.timetick, m.is_persisted) for m in written] == [(a1.timestamp, True)]
        assert sync.persisted_ticks == 1 and not sync.dirty
        assert wab.last_timetick == a1.timestamp
        # Nothing new: no second persisted tick at the same timetick, even when forced.
        await asyncio.wait_for(sync.sync(persisted=True), WAIT)
        assert sync.persisted_ticks == 1
        # The slow one lands: released with the sync timestamps allocated meanwhile.
        a2.ack(stored_message(a2.timestamp, 2))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert batches == [[a1.timestamp], [a2.timestamp]]
        assert wab.last_timetick > a2.timestamp and sync.dirty
        cursor = wab.read_from_exclusive_timetick(start)
        held = []
        while (msg := cursor.try_next()) is not None:
            held.append(msg)
        assert [m.timetick for m in held if m.message_type is MessageType.INSERT] == [
            a1.timestamp,
            a2.timestamp,
        ]
        tts = [m.timetick for m in held]
        assert tts == sorted(tts)
        await sync.stop()
        await sync.final_sync()
        assert written[-1].is_persisted and written[-1].timetick == wab.last_timetick
        assert sync.persisted_ticks == 2
    finally:
        await sync.stop()
