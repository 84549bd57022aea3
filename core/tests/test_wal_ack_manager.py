"""The ack manager: timetick allocation, the confirmed watermark, sync and last-confirmed ids."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from walstream.backends.memory import MemoryMessageID
from walstream.message import ImmutableMessage, MessageType, new_message
from walstream.metastore import SQLiteMetastore
from walstream.tso import TimestampOracle, compose
from walstream.wal import (
    Acker,
    AckManager,
    AlreadyAckedError,
    LastConfirmedManager,
    TxnManager,
    WALInvariantError,
)

WAIT = 5.0
START = compose(1_000, 0)


class FakeTSO:
    """A TSO on a settable millisecond clock: ``max(last + 1, now, barrier)``."""

    def __init__(self, ms: int = 1_000) -> None:
        self.ms = ms
        self.last = compose(ms, 0)
        self.gate: asyncio.Event | None = None  # when set, allocations wait for it

    async def _next(self, barrier: int) -> int:
        if self.gate is not None:
            await self.gate.wait()
        self.last = max(self.last + 1, compose(self.ms, 0), barrier)
        return self.last

    async def allocate(self) -> int:
        return await self._next(0)

    async def allocate_at_least(self, barrier: int) -> int:
        return await self._next(barrier)


def manager(tso: FakeTSO | None = None, first_id: int = 0) -> AckManager:
    return AckManager(
        tso or FakeTSO(),
        last_confirmed_timetick=START,
        last_confirmed_message_id=MemoryMessageID(first_id),
    )


def stored(acker: Acker, index: int, mtype: MessageType = MessageType.INSERT) -> ImmutableMessage:
    """The message an append of ``acker``'s timetick stored at ``index``."""
    return (
        new_message(mtype, vchannel="v1")
        .with_timetick(acker.timestamp)
        .with_last_confirmed(acker.last_confirmed_message_id)
        .into_immutable(MemoryMessageID(index))
    )


def mid(index: int) -> MemoryMessageID:
    return MemoryMessageID(index)


# --- allocation ------------------------------------------------------------------------


async def test_allocations_are_strictly_increasing_and_stamp_the_initial_id() -> None:
    acks = manager(first_id=7)
    ackers = [await acks.allocate() for _ in range(5)]
    stamps = [a.timestamp for a in ackers]
    assert stamps == sorted(set(stamps))
    assert stamps[0] > START
    assert acks.last_allocated_timetick == stamps[-1]
    assert all(a.last_confirmed_message_id == mid(7) for a in ackers)
    assert acks.in_flight == 5
    assert not any(a.acknowledged for a in ackers)


async def test_concurrent_allocations_are_serialised() -> None:
    tso = FakeTSO()
    tso.gate = asyncio.Event()
    acks = manager(tso)
    tasks = [asyncio.create_task(acks.allocate()) for _ in range(20)]
    await asyncio.sleep(0)
    tso.gate.set()
    ackers = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    # registered in TSO order, so the watermark walks them in timetick order
    assert [a.timestamp for a in acks._pending] == sorted(a.timestamp for a in ackers)


async def test_barrier_is_honoured_and_later_allocations_stay_above_it() -> None:
    tso = FakeTSO()
    acks = manager(tso)
    barrier = compose(5_000, 3)
    a = await acks.allocate(barrier=barrier)
    assert a.timestamp >= barrier
    b = await acks.allocate()
    assert b.timestamp > a.timestamp
    c = await acks.allocate(barrier=compose(10, 0))  # already passed: just the next one
    assert c.timestamp == b.timestamp + 1


async def test_barrier_with_the_real_tso(tmp_path: Path) -> None:
    async with (
        SQLiteMetastore(tmp_path / "meta.sqlite3") as store,
        TimestampOracle(store, clock=lambda: 1_000_000) as tso,
    ):
        first = await tso.allocate()
        acks = AckManager(tso, last_confirmed_timetick=first, last_confirmed_message_id=mid(0))
        barrier = compose(1_002_000, 5)
        a = await acks.allocate(barrier=barrier)
        assert a.timestamp >= barrier
        assert (await acks.allocate()).timestamp > a.timestamp


class BackwardsTSO(FakeTSO):
    async def allocate(self) -> int:
        return START


async def test_a_tso_that_goes_backwards_is_an_invariant_error() -> None:
    acks = manager(BackwardsTSO())
    with pytest.raises(WALInvariantError, match="not above the last allocated"):
        await acks.allocate()


class LowBarrierTSO(FakeTSO):
    async def allocate_at_least(self, barrier: int) -> int:
        return await self.allocate()


async def test_a_tso_that_ignores_the_barrier_is_an_invariant_error() -> None:
    acks = manager(LowBarrierTSO())
    with pytest.raises(WALInvariantError, match="below the barrier"):
        await acks.allocate(barrier=compose(9_999, 0))


# --- acknowledgement and the watermark ---------------------------------------------------


async def test_watermark_is_blocked_by_one_in_flight_allocation_and_released_by_its_ack() -> None:
    acks = manager()
    a, b, c = [await acks.allocate() for _ in range(3)]
    b.ack(stored(b, 1))
    c.ack(stored(c, 2))
    assert acks.last_confirmed_timetick == START  # a is in flight
    assert acks.in_flight == 3
    a.ack(stored(a, 3))
    assert acks.last_confirmed_timetick == c.timestamp
    assert acks.in_flight == 0


async def test_watermark_released_by_a_failed_append() -> None:
    acks = manager()
    a, b = await acks.allocate(), await acks.allocate()
    b.ack(stored(b, 1))
    assert acks.last_confirmed_timetick == START
    a.ack(RuntimeError("backend down"))
    assert acks.last_confirmed_timetick == b.timestamp
    result = await acks.sync_and_get_acknowledged(force_tick=False)
    # the failed append is not a detail: nothing of it was written
    assert [d.timetick for d in result.details] == [b.timestamp]


async def test_watermark_advances_in_order_through_a_prefix() -> None:
    acks = manager()
    ackers = [await acks.allocate() for _ in range(4)]
    ackers[0].ack(stored(ackers[0], 1))
    assert acks.last_confirmed_timetick == ackers[0].timestamp
    ackers[2].ack(stored(ackers[2], 2))
    assert acks.last_confirmed_timetick == ackers[0].timestamp
    ackers[1].ack(stored(ackers[1], 3))
    assert acks.last_confirmed_timetick == ackers[2].timestamp


async def test_acking_twice_is_an_error() -> None:
    acks = manager()
    a = await acks.allocate()
    a.ack(stored(a, 1))
    assert a.acknowledged
    with pytest.raises(AlreadyAckedError, match=str(a.timestamp)):
        a.ack(stored(a, 1))
    b = await acks.allocate()
    b.ack(RuntimeError("x"))
    with pytest.raises(AlreadyAckedError):
        b.ack(RuntimeError("x"))


async def test_acking_a_message_with_another_timetick_is_an_invariant_error() -> None:
    acks = manager()
    a, b = await acks.allocate(), await acks.allocate()
    with pytest.raises(WALInvariantError, match="allocated"):
        a.ack(stored(b, 1))
    assert not a.acknowledged  # refused, so it can still be acked correctly
    a.ack(stored(a, 1))


# --- sync -------------------------------------------------------------------------------


async def test_sync_returns_confirmed_details_sorted_and_only_once() -> None:
    acks = manager()
    ackers = [await acks.allocate() for _ in range(5)]
    # written and acked out of timetick order
    for index, i in enumerate([3, 1, 4, 0, 2]):
        ackers[i].ack(stored(ackers[i], 10 + index))
    first = await acks.sync_and_get_acknowledged()
    assert [d.timetick for d in first.details] == [a.timestamp for a in ackers]
    assert [d.message_id for d in first.details] == [mid(13), mid(11), mid(14), mid(10), mid(12)]
    assert first.timetick > ackers[-1].timestamp  # the sync tick itself
    assert first.should_persist
    assert all(d.message.timetick == d.timetick for d in first.details)
    again = await acks.sync_and_get_acknowledged()
    assert again.details == ()
    assert not again.should_persist
    assert again.timetick > first.timetick  # idle time still advances


async def test_sync_without_force_tick_keeps_the_watermark() -> None:
    acks = manager()
    a = await acks.allocate()
    a.ack(stored(a, 1))
    result = await acks.sync_and_get_acknowledged(force_tick=False)
    assert result.timetick == a.timestamp
    assert [d.timetick for d in result.details] == [a.timestamp]
    assert acks.last_allocated_timetick == a.timestamp


async def test_sync_leaves_details_behind_an_in_flight_message_for_later() -> None:
    acks = manager()
    a, b = await acks.allocate(), await acks.allocate()
    b.ack(stored(b, 1))
    blocked = await acks.sync_and_get_acknowledged()
    assert blocked.details == ()
    assert blocked.timetick == START
    a.ack(stored(a, 2))
    released = await acks.sync_and_get_acknowledged()
    assert [d.timetick for d in released.details] == [a.timestamp, b.timestamp]
    assert released.timetick > b.timestamp


async def test_sync_last_confirmed_is_the_watermark_allocations() -> None:
    acks = manager(first_id=0)
    a = await acks.allocate()
    a.ack(stored(a, 1))
    result = await acks.sync_and_get_acknowledged()
    # the sync tick was allocated when a could not be popped yet (its end
    # timestamp was not below the watermark), so it carries the initial id
    assert result.last_confirmed_message_id == mid(0)
    result = await acks.sync_and_get_acknowledged()
    assert result.last_confirmed_message_id == mid(1)


# --- the last-confirmed id ---------------------------------------------------------------


async def test_last_confirmed_advances_once_a_message_is_confirmed() -> None:
    acks = manager(first_id=0)
    a = await acks.allocate()
    a.ack(stored(a, 1))
    # a's end timestamp is its own timetick: a message allocated before its
    # ack could still be written below it, so it is not popped yet
    assert acks.last_confirmed_message_id == mid(0)
    b = await acks.allocate()
    assert b.last_confirmed_message_id == mid(0)
    b.ack(stored(b, 2))
    c = await acks.allocate()
    assert c.last_confirmed_message_id == mid(1)
    c.ack(stored(c, 3))
    assert acks.last_confirmed_message_id == mid(2)


async def test_last_confirmed_waits_for_a_smaller_id_acked_late() -> None:
    """A message written first but acked last holds back larger ids, even confirmed ones."""
    acks = manager(first_id=0)
    txns = TxnManager()
    x = await acks.allocate()
    session = txns.begin("v1", 0, x.timestamp)
    p = await acks.allocate()
    # the backend stores x at 1 and p at 2; p's ack runs first
    p.ack(stored(p, 2))
    q = await acks.allocate()
    x.ack(stored(x, 1, MessageType.BEGIN_TXN), session)
    q.ack(stored(q, 3))
    await acks.sync_and_get_acknowledged()
    await acks.sync_and_get_acknowledged()
    # p (id 2) is confirmed, but id 1 is an open transaction's begin
    assert acks.last_confirmed_message_id == mid(0)
    session.rollback((await acks.allocate()).timestamp)
    session.rollback_done(ok=True)
    assert acks.last_confirmed_message_id == mid(3)


async def test_last_confirmed_is_held_by_an_unresolved_transaction_then_released() -> None:
    acks = manager(first_id=0)
    txns = TxnManager()
    ids = itertools.count(1)
    begin = await acks.allocate()
    session = txns.begin("v1", 0, begin.timestamp)
    begin.ack(stored(begin, next(ids), MessageType.BEGIN_TXN), session)
    plain = await acks.allocate()
    plain.ack(stored(plain, next(ids)))
    for _ in range(3):
        await acks.sync_and_get_acknowledged()
    assert acks.last_confirmed_message_id == mid(0)
    commit = await acks.allocate()
    await asyncio.wait_for(session.commit(commit.timestamp), WAIT)
    commit.ack(stored(commit, next(ids), MessageType.COMMIT_TXN), session)
    assert acks.last_confirmed_message_id == mid(0)  # commit not done yet
    session.commit_done(ok=True)
    await acks.sync_and_get_acknowledged()
    assert acks.last_confirmed_message_id == mid(3)


def test_last_confirmed_manager_never_goes_backwards() -> None:
    lcm = LastConfirmedManager(mid(5))
    lcm.push(mid(3), 10, None)  # a misbehaving backend: tracked, logged, harmless
    lcm.push(mid(8), 10, None)
    assert lcm.advance(10) == mid(5)  # end timestamps not below the watermark
    assert len(lcm) == 2
    assert lcm.advance(11) == mid(8)
    assert len(lcm) == 0
    assert lcm.message_id == mid(8)


async def test_sync_last_confirmed_stays_valid_above_a_held_watermark() -> None:
    """A commit above a held-back watermark: the TimeTick must not skip its parts."""
    acks = manager(first_id=0)
    txns = TxnManager()
    b = await acks.allocate()
    session = txns.begin("v1", 0, b.timestamp)
    b.ack(stored(b, 1, MessageType.BEGIN_TXN), session)
    body = await acks.allocate()
    session.add_body(new_message(MessageType.INSERT, vchannel="v1").with_timetick(body.timestamp))
    body.ack(stored(body, 2), session)
    session.body_done(body.timestamp, ok=True)
    held = (await acks.sync_and_get_acknowledged()).timetick
    slow = await acks.allocate()  # holds the watermark at `held`
    c = await acks.allocate()
    await asyncio.wait_for(session.commit(c.timestamp), WAIT)
    c.ack(stored(c, 3, MessageType.COMMIT_TXN), session)
    session.commit_done(ok=True)
    result = await acks.sync_and_get_acknowledged()
    assert result.timetick == held
    # the parts (ids 1, 2) can be popped now, but the commit (tt above `held`)
    # needs them: the TimeTick at `held` keeps the id of its own allocation
    assert acks.last_confirmed_message_id == mid(2)
    assert result.last_confirmed_message_id == mid(0)
    slow.ack(stored(slow, 4))


# --- release on ack: the listener and the synchronous syncs ------------------------------


class NowaitTSO(FakeTSO):
    """A TSO with the synchronous fast path; ``None`` (must wait) while ``busy``."""

    busy = False

    def allocate_nowait(self, barrier: int = 0) -> int | None:
        if self.busy:
            return None
        self.last = max(self.last + 1, compose(self.ms, 0), barrier)
        return self.last


async def test_listener_is_called_once_per_loop_iteration_for_a_burst_of_acks() -> None:
    acks = manager()
    calls: list[int] = []
    acks.set_listener(lambda: calls.append(len(acks.take_acknowledged().details)))
    ackers = [await acks.allocate() for _ in range(5)]
    for i, a in enumerate(ackers):
        a.ack(stored(a, i + 1))
    assert calls == []  # never inside an ack: scheduled with call_soon
    await asyncio.sleep(0)
    assert calls == [5]
    # Nothing new confirmed: no call. An ack behind an in-flight one is not confirmed yet.
    b, c = await acks.allocate(), await acks.allocate()
    c.ack(stored(c, 7))
    await asyncio.sleep(0)
    assert calls == [5]
    b.ack(stored(b, 6))
    await asyncio.sleep(0)
    assert calls == [5, 2]


async def test_listener_is_not_called_when_a_sync_took_the_messages_first() -> None:
    acks = manager()
    calls: list[None] = []
    acks.set_listener(lambda: calls.append(None))
    a = await acks.allocate()
    a.ack(stored(a, 1))
    assert acks.has_acknowledged
    assert [d.timetick for d in acks.take_acknowledged().details] == [a.timestamp]
    await asyncio.sleep(0)
    assert calls == []
    acks.set_listener(None)
    b = await acks.allocate()
    b.ack(stored(b, 2))
    await asyncio.sleep(0)
    assert calls == []
    assert acks.has_acknowledged  # left for the next sync


async def test_try_sync_nowait_allocates_a_sync_timestamp_or_returns_none() -> None:
    assert manager().try_sync_nowait() is None  # no synchronous allocation in this TSO
    tso = NowaitTSO()
    acks = manager(tso)
    a = acks.try_allocate()
    assert a is not None
    a.ack(stored(a, 1))
    result = acks.try_sync_nowait()
    assert result is not None
    assert [d.timetick for d in result.details] == [a.timestamp]
    assert result.timetick == acks.last_allocated_timetick > a.timestamp
    tso.busy = True
    b = await acks.allocate()
    b.ack(stored(b, 2))
    assert acks.try_sync_nowait() is None
    assert acks.has_acknowledged  # untouched: take them without a new timestamp
    taken = acks.take_acknowledged()
    assert taken.timetick == b.timestamp
    assert [d.timetick for d in taken.details] == [b.timestamp]
