"""The write-ahead buffer: append, read, eviction, waiting readers, invariants."""

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from walstream.backends.memory import MemoryMessageID
from walstream.message import ImmutableMessage, MessageType, new_message
from walstream.proto import messages_pb2 as pb
from walstream.wal import (
    EvictedError,
    ImmutableTxnMessage,
    WALInvariantError,
    WriteAheadBuffer,
    WriteAheadBufferClosedError,
    WriteAheadBufferCursor,
)

WAIT = 2.0  # seconds: the bound on every wait that is expected to finish


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    """Makes messages with increasing ids, as a backend would store them."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    def data(self, tt: int, payload: bytes = b"") -> ImmutableMessage:
        return (
            new_message(MessageType.INSERT, vchannel="v1", payload=payload)
            .with_timetick(tt)
            .into_immutable(MemoryMessageID(next(self._ids)))
        )

    def tick(self, tt: int, *, persisted: bool = True) -> ImmutableMessage:
        m = new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(tt)
        if not persisted:
            m.with_not_persisted()
        return m.into_immutable(MemoryMessageID(next(self._ids)))


def drain(cursor: WriteAheadBufferCursor) -> list[int]:
    """Timeticks of everything a cursor yields without waiting."""
    out = []
    while (m := cursor.try_next()) is not None:
        out.append(m.timetick)
    return out


@pytest.fixture
def log() -> Log:
    return Log()


def test_append_then_read_everything_after_a_timetick(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(10))
    m1, m2 = log.data(12), log.data(15)
    wab.append([m1, m2], log.tick(20))
    assert len(wab) == 4
    assert wab.last_timetick == 20
    assert drain(wab.read_from_exclusive_timetick(10)) == [12, 15, 20]
    assert drain(wab.read_from_exclusive_timetick(12)) == [15, 20]
    assert drain(wab.read_from_exclusive_timetick(13)) == [15, 20]
    assert drain(wab.read_from_exclusive_timetick(20)) == []
    cursor = wab.read_from_exclusive_timetick(10)
    assert cursor.try_next() is m1  # the stored object itself, no copy
    assert cursor.last_timetick == 12
    assert wab.first_offset == 0
    assert wab.next_offset == 4


def test_bytes_and_offsets(log: Log) -> None:
    t0 = log.tick(1)
    wab = WriteAheadBuffer(t0)
    m, t = log.data(2, b"x" * 100), log.tick(3)
    wab.append([m], t)
    assert wab.bytes == t0.size + m.size + t.size
    assert (wab.first_offset, wab.next_offset) == (0, 3)


def test_reading_before_the_first_tick_is_evicted(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(10))
    assert wab.floor_timetick == 10
    with pytest.raises(EvictedError, match="read from the backend"):
        wab.read_from_exclusive_timetick(9)


def test_eviction_by_bytes_keeps_the_last_element(log: Log) -> None:
    first = log.tick(1)
    wab = WriteAheadBuffer(first, capacity_bytes=1000)
    big = [log.data(tt, b"p" * 300) for tt in range(2, 10)]
    wab.append(big, log.tick(10))
    assert wab.bytes <= 1000
    assert wab.first_offset > 0
    assert wab.bytes == sum(m.size for m in [first, *big, log.tick(10)][wab.first_offset :])
    # everything after the floor is held, older reads are refused
    floor = wab.floor_timetick
    assert drain(wab.read_from_exclusive_timetick(floor))[-1] == 10
    with pytest.raises(EvictedError):
        wab.read_from_exclusive_timetick(floor - 1)
    # a message above the capacity goes at once; the last entry (its tick) always stays
    huge = log.data(11, b"h" * 5000)
    wab.append([huge], log.tick(12, persisted=False))
    assert len(wab) == 1
    assert wab.floor_timetick == 11
    assert drain(wab.read_from_exclusive_timetick(11)) == [12]
    with pytest.raises(EvictedError):
        wab.read_from_exclusive_timetick(10)


def test_eviction_by_age_with_a_fake_clock(log: Log) -> None:
    clock = FakeClock()
    wab = WriteAheadBuffer(log.tick(1), keepalive=30.0, clock=clock)
    wab.append([log.data(2)], log.tick(3))
    clock.now += 10
    wab.append([log.data(4)], log.tick(5))
    assert len(wab) == 5
    clock.now += 20  # first batch is exactly 30 s old: not older than keepalive
    assert wab.evict() == 0
    clock.now += 0.5
    assert wab.evict() == 3  # seed tick, data 2, tick 3
    assert wab.floor_timetick == 3
    assert drain(wab.read_from_exclusive_timetick(3)) == [4, 5]
    clock.now += 1000
    assert wab.evict() == 1
    assert len(wab) == 1, "the last element is never evicted"
    assert drain(wab.read_from_exclusive_timetick(4)) == [5]


def test_a_cursor_that_falls_behind_gets_evicted(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1), capacity_bytes=500)
    cursor = wab.read_from_exclusive_timetick(1)
    wab.append([log.data(tt, b"q" * 200) for tt in range(2, 8)], log.tick(8))
    with pytest.raises(EvictedError, match="fell behind"):
        cursor.try_next()
    assert cursor.last_timetick == 1, "resume catch-up after what it last delivered"


async def test_cursor_waits_then_wakes_on_append(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    cursor = wab.read_from_exclusive_timetick(1)
    task = asyncio.create_task(cursor.next())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    m = log.data(2)
    wab.append([m], log.tick(3))
    async with asyncio.timeout(WAIT):
        assert await task is m
        nxt = await cursor.next()
    assert nxt.timetick == 3


@pytest.mark.parametrize("persisted", [True, False])
def test_a_tick_at_the_newest_message_timetick_is_yielded(log: Log, persisted: bool) -> None:
    """Regression: a sync may cover its messages with a tick at exactly the newest one's
    timetick (a slow append holds the watermark there). The cursor skipped that tick as
    "not newer", so tailing scanners held the messages until a later, strictly greater
    tick: delivery fell further and further behind under load."""
    wab = WriteAheadBuffer(log.tick(1))
    cursor = wab.read_from_exclusive_timetick(1)
    m1, m2 = log.data(2), log.data(5)
    t5 = log.tick(5, persisted=persisted)
    wab.append([m1, m2], t5)
    assert cursor.try_next() is m1
    assert cursor.try_next() is m2
    assert cursor.try_next() is t5, "the tick releasing m2 must be yielded"
    assert cursor.try_next() is None, "and only once"
    assert cursor.last_timetick == 5
    # a reader placed at the tick (catch-up read it) does not see it again
    assert drain(wab.read_from_exclusive_timetick(5)) == []
    # a reader placed at the message (not at the tick) gets the tick
    m3, t7 = log.data(7), log.tick(7, persisted=persisted)
    wab.append([m3], t7)
    assert drain(cursor) == [7, 7]
    assert drain(wab.read_from_exclusive_timetick(1)) == [2, 5, 5, 7, 7] if persisted else [7]


async def test_a_waiting_cursor_gets_the_tick_at_the_newest_message_timetick(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    cursor = wab.read_from_exclusive_timetick(1)
    m = log.data(3)
    wab.append([m], log.tick(3))
    async with asyncio.timeout(WAIT):
        assert await cursor.next() is m
        tick = await cursor.next()
    assert (tick.message_type, tick.timetick) == (MessageType.TIME_TICK, 3)


async def test_many_readers_wake_and_a_cancelled_one_does_not_hurt_them(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    cursors = [wab.read_from_exclusive_timetick(1) for _ in range(4)]
    tasks = [asyncio.create_task(c.next()) for c in cursors]
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await tasks[0]
    wab.append([log.data(2)], log.tick(3))
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*tasks[1:])
    assert [m.timetick for m in results] == [2, 2, 2]
    assert drain(cursors[0]) == [2, 3]


async def test_close_ends_waiting_readers(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    waiting = asyncio.create_task(wab.read_from_exclusive_timetick(1).next())

    async def iterate() -> list[int]:
        return [m.timetick async for m in wab.read_from_exclusive_timetick(1)]

    iterating = asyncio.create_task(iterate())
    await asyncio.sleep(0)
    wab.append([log.data(2)], log.tick(3))
    await asyncio.sleep(0)
    wab.close()
    async with asyncio.timeout(WAIT):
        assert (await waiting).timetick == 2  # woken by the append before the close
        assert await iterating == [2, 3]  # async for just stops
    assert wab.closed
    assert len(wab) == 0
    with pytest.raises(WriteAheadBufferClosedError):
        wab.read_from_exclusive_timetick(1)
    wab.append([log.data(4)], log.tick(5))  # ignored
    assert wab.last_timetick == 3
    wab.close()  # idempotent


async def test_close_wakes_a_blocked_next(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    task = asyncio.create_task(wab.read_from_exclusive_timetick(1).next())
    await asyncio.sleep(0)
    wab.close()
    async with asyncio.timeout(WAIT):
        with pytest.raises(WriteAheadBufferClosedError):
            await task


async def test_not_persisted_ticks_are_held_like_persisted_ones(log: Log) -> None:
    """An in-memory tick is held too: a reader behind the newest tick still gets it."""
    wab = WriteAheadBuffer(log.tick(1))
    wab.append([log.data(2)], log.tick(3))
    tailing = wab.read_from_exclusive_timetick(3)
    lagging = wab.read_from_exclusive_timetick(1)
    before = (len(wab), wab.next_offset)
    np = log.tick(5, persisted=False)
    wab.append([], np)
    assert (len(wab), wab.next_offset) == (before[0] + 1, before[1] + 1)
    assert wab.last_timetick == 5
    assert wab.last_timetick_message is np
    async with asyncio.timeout(WAIT):
        assert await tailing.next() is np
    assert tailing.try_next() is None, "the latest tick is delivered once"
    # a reader starting between the last stored message and the tick gets the tick
    assert drain(wab.read_from_exclusive_timetick(4)) == [5]
    wab.append([log.data(6)], log.tick(7, persisted=False))
    assert drain(tailing) == [6, 7]
    # the lagging reader sees every tick between the batches, not only the newest
    assert drain(lagging) == [2, 3, 5, 6, 7]
    assert wab.last_timetick_message.timetick == 7


def test_not_persisted_initial_tick_is_not_stored(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(5, persisted=False))
    assert len(wab) == 0
    assert drain(wab.read_from_exclusive_timetick(5)) == []
    with pytest.raises(EvictedError):
        wab.read_from_exclusive_timetick(4)


def test_reader_ahead_of_the_buffer_skips_up_to_its_timetick(log: Log) -> None:
    """The catch-up scanner may see a TimeTick in the backend before the buffer does."""
    wab = WriteAheadBuffer(log.tick(1))
    cursor = wab.read_from_exclusive_timetick(10)
    assert cursor.try_next() is None
    wab.append([log.data(4), log.data(8)], log.tick(10))
    wab.append([log.data(12)], log.tick(14))
    assert drain(cursor) == [12, 14]


@pytest.mark.parametrize(
    "messages, tick, match",
    [
        ([], ("tick", 10), "not above the last"),
        ([], ("tick", 9), "not above the last"),
        ([("data", 10)], ("tick", 12), "outside"),
        ([("data", 13)], ("tick", 12), "outside"),
        ([("data", 12), ("data", 11)], ("tick", 12), "out of timetick order"),
        ([], ("data", 12), "expects a TimeTick"),
    ],
)
def test_invariant_violations_raise_and_change_nothing(
    log: Log,
    messages: list[tuple[str, int]],
    tick: tuple[str, int],
    match: str,
) -> None:
    def build(spec: tuple[str, int]) -> ImmutableMessage:
        kind, tt = spec
        return log.data(tt) if kind == "data" else log.tick(tt)

    wab = WriteAheadBuffer(log.tick(10))
    before = (len(wab), wab.bytes, wab.last_timetick)
    with pytest.raises(WALInvariantError, match=match):
        wab.append([build(m) for m in messages], build(tick))
    assert (len(wab), wab.bytes, wab.last_timetick) == before


def test_only_persisted_log_messages_are_accepted(log: Log) -> None:
    wab = WriteAheadBuffer(log.tick(1))
    with pytest.raises(WALInvariantError, match="persisted log messages"):
        wab.append([log.tick(2, persisted=False)], log.tick(3))
    ctx = pb.TxnContext(txn_id=1)

    def part(mtype: MessageType, tt: int) -> ImmutableMessage:
        return (
            new_message(mtype, vchannel="v1")
            .with_timetick(tt)
            .with_txn_context(ctx)
            .into_immutable(MemoryMessageID(tt))
        )

    txn = ImmutableTxnMessage(part(MessageType.BEGIN_TXN, 2), [], part(MessageType.COMMIT_TXN, 3))
    with pytest.raises(WALInvariantError, match="persisted log messages"):
        wab.append([txn], log.tick(4))
    with pytest.raises(WALInvariantError, match="expects a TimeTick"):
        WriteAheadBuffer(log.data(1))


def test_settings_are_validated(log: Log) -> None:
    with pytest.raises(ValueError, match="capacity_bytes"):
        WriteAheadBuffer(log.tick(1), capacity_bytes=0)
    with pytest.raises(ValueError, match="keepalive"):
        WriteAheadBuffer(log.tick(1), keepalive=0)
    wab = WriteAheadBuffer(log.tick(1))
    assert (wab.capacity_bytes, wab.keepalive) == (64 * 1024 * 1024, 30.0)


def test_compaction_keeps_offsets_continuous(log: Log) -> None:
    clock = FakeClock()
    wab = WriteAheadBuffer(log.tick(0), keepalive=1.0, clock=clock)
    tailing = wab.read_from_exclusive_timetick(0)
    seen: list[int] = []
    tt = 0
    for _ in range(3000):
        clock.now += 0.01
        wab.append([log.data(tt + 1)], log.tick(tt + 2))
        tt += 2
        seen += drain(tailing)
    assert seen == list(range(1, tt + 1))
    assert wab.next_offset == 6001
    assert len(wab) < 300
    assert wab.first_offset == wab.next_offset - len(wab)
    assert drain(wab.read_from_exclusive_timetick(wab.floor_timetick))[-1] == tt


@settings(max_examples=100, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 400)), min_size=1, max_size=30
    ),
    capacity=st.integers(200, 3000),
    start=st.integers(0, 200),
)
def test_a_reader_gets_exactly_what_follows_its_timetick_or_evicted(
    batches: list[tuple[int, bool, int]], capacity: int, start: int
) -> None:
    """Random appends and eviction: a read either refuses or yields every later message."""
    log = Log()
    wab = WriteAheadBuffer(log.tick(0), capacity_bytes=capacity)
    stored: list[int] = [0]
    tt = 0
    for count, persisted, size in batches:
        data = []
        for _ in range(count):
            tt += 1
            data.append(log.data(tt, b"d" * size))
        tt += 1
        wab.append(data, log.tick(tt, persisted=persisted or bool(data)))
        stored += [m.timetick for m in data]
        stored.append(tt)  # every tick is held, persisted or not
    assert wab.bytes <= capacity or len(wab) == 1
    at = min(start, tt)
    try:
        cursor = wab.read_from_exclusive_timetick(at)
    except EvictedError:
        assert at < wab.floor_timetick
        return
    got = drain(cursor)
    expected = [t for t in stored if t > at]
    if wab.last_timetick not in stored and wab.last_timetick > at:
        expected.append(wab.last_timetick)
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.booleans(), st.integers(0, 400)),
        min_size=1,
        max_size=30,
    ),
    capacity=st.integers(200, 3000),
    start=st.integers(0, 200),
)
def test_ticks_at_the_newest_message_timetick_are_read_like_any_other(
    batches: list[tuple[int, bool, bool, int]], capacity: int, start: int
) -> None:
    """As above, but a batch's tick may sit at its newest message's timetick (a sync whose
    watermark is that message): a read yields every stored entry above its timetick,
    the tick included (persisted or not)."""
    log = Log()
    wab = WriteAheadBuffer(log.tick(0), capacity_bytes=capacity)
    stored: list[int] = [0]
    tt = 0
    for count, persisted, at_last, size in batches:
        data = []
        for _ in range(count):
            tt += 1
            data.append(log.data(tt, b"d" * size))
        if not (at_last and data):
            tt += 1
        wab.append(data, log.tick(tt, persisted=persisted or bool(data)))
        stored += [m.timetick for m in data]
        stored.append(tt)  # every tick is held, persisted or not
    at = min(start, tt)
    try:
        cursor = wab.read_from_exclusive_timetick(at)
    except EvictedError:
        assert at < wab.floor_timetick
        return
    got = drain(cursor)
    expected = [t for t in stored if t > at]
    if wab.last_timetick not in stored and wab.last_timetick > at:
        expected.append(wab.last_timetick)
    assert got == expected
