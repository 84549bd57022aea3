"""WAL scanners over the memory backend: order, transactions, filters, policies, back-pressure, errors.

Logs are written by hand the way the append path writes them (timeticks out of
log order inside a window, a persisted TimeTick after each window); the
StreamingWAL is not involved.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from wal_helpers import PassThroughWAL
from wal_scan_helpers import (  # the shared harness (core/tests/wal_scan_helpers.py)
    WAIT,
    Writer,
    assert_strictly_increasing,
    data_keys,
    expected,
    idx,
    key,
    make,
    read_until,
)
from walstream.backends.memory import MemoryMessageID
from walstream.errors import MessageDecodeError, WALClosedError
from walstream.message import ImmutableMessage, MessageType, MutableMessage, new_message
from walstream.tso import compose
from walstream.wal import (
    ImmutableTxnMessage,
    ScanMode,
    ScannerBackendEndedError,
    WALScanner,
    WriteAheadBuffer,
    open_scanner,
)
from walstream.wal.options import DeliverFilter, WALReadOption
from walstream.wal.scan.pipeline import DeliveryPipeline
from walstream.walimpls import (
    DeliverAll,
    DeliverLatest,
    DeliverPolicy,
    DeliverStartAfter,
    DeliverStartFrom,
    ReadOption,
    Scanner,
    WALImpl,
)


def scan(writer: Writer, option: WALReadOption | None = None, **kwargs: Any) -> WALScanner:
    kwargs.setdefault("wab", writer.wab)
    kwargs.setdefault("force_sync", None)
    return open_scanner(writer.impl, option or WALReadOption(), **kwargs)


# --- order and transactions ------------------------------------------------------------


async def test_out_of_order_log_is_delivered_in_timetick_order(writer: Writer) -> None:
    w1, t1 = await writer.data(5)
    _, t2 = await writer.data(3)
    assert [m.timetick for m in w1] == sorted((m.timetick for m in w1), reverse=True)
    async with scan(writer) as scanner:
        got = await read_until(scanner, t2.timetick)
    assert_strictly_increasing(got)
    assert data_keys(got) == expected(writer.log)
    # Persisted TimeTicks are messages of the log: every reader sees them.
    assert [m.timetick for m in got if m.message_type is MessageType.TIME_TICK] == [
        t1.timetick,
        t2.timetick,
    ]
    assert scanner.mode is ScanMode.CATCH_UP


async def test_committed_txn_is_one_message_and_others_never_appear(writer: Writer) -> None:
    a = writer.alloc
    ins = MessageType.INSERT
    msgs = [
        make(MessageType.BEGIN_TXN, a(), txn=1),  # 0 committed
        make(MessageType.BEGIN_TXN, a(), txn=2),  # 1 rolled back
        make(ins, a()),  # 2 plain
        make(ins, a(), txn=1),  # 3
        make(MessageType.DELETE, a(), txn=1),  # 4
        make(ins, a(), txn=2),  # 5
        make(MessageType.BEGIN_TXN, a(), txn=3),  # 6 never ends
    ]
    # Log order shuffled, but each txn's own messages stay in order (they are sequential).
    await writer.window(msgs, [2, 1, 0, 5, 3, 6, 4])
    end = [
        make(MessageType.ROLLBACK_TXN, a(), txn=2),
        make(MessageType.COMMIT_TXN, a(), txn=1),
        make(ins, a(), txn=3),
    ]
    _, tick = await writer.window(end, [1, 2, 0])
    async with scan(writer) as scanner:
        got = await read_until(scanner, tick.timetick)
        stats = scanner.stats()
    assert_strictly_increasing(got)
    assert data_keys(got) == expected(writer.log)
    txns = [m for m in got if isinstance(m, ImmutableTxnMessage)]
    assert len(txns) == 1
    (txn,) = txns
    assert txn.txn_id == 1
    assert [b.message_type for b in txn.body] == [ins, MessageType.DELETE]
    assert {b.timetick for b in txn.body} == {txn.timetick}  # visible at the commit
    assert [m.message_type for m in got if m.message_type is not MessageType.TIME_TICK] == [
        ins,
        MessageType.TXN,
    ]
    assert stats.open_txns == 1  # txn 3 is still held, never delivered


async def test_expired_txn_is_never_delivered(writer: Writer) -> None:
    # TSO timeticks so the keepalive (physical milliseconds) means something.
    begin = make(MessageType.BEGIN_TXN, compose(1000, 0), txn=9, keepalive_ms=5)
    body = make(MessageType.INSERT, compose(1001, 0), txn=9, keepalive_ms=5)
    await writer.window([begin, body])
    late = make(MessageType.INSERT, compose(1010, 0))
    await writer.window([late])  # its TimeTick (>= 1011 ms) passes the keepalive
    commit = make(MessageType.COMMIT_TXN, compose(1020, 0), txn=9, keepalive_ms=5)
    _, tick = await writer.window([commit])
    async with scan(writer) as scanner:
        got = await read_until(scanner, tick.timetick)
    assert [m.message_type for m in got if m.message_type is not MessageType.TIME_TICK] == [
        MessageType.INSERT
    ]
    assert data_keys(got) == [key(writer.log[3])]


# --- filters ---------------------------------------------------------------------------------


async def test_message_type_filter_never_drops_system_types(writer: Writer) -> None:
    a = writer.alloc
    msgs = [
        make(MessageType.INSERT, a()),
        make(MessageType.DELETE, a()),
        make(MessageType.BEGIN_TXN, a(), txn=4),
        make(MessageType.INSERT, a(), txn=4),
        make(MessageType.COMMIT_TXN, a(), txn=4),
        make(MessageType.CREATE_COLLECTION, a()),
    ]
    _, tick = await writer.window(msgs, [1, 0, 2, 5, 3, 4])
    option = WALReadOption(
        deliver_filter=DeliverFilter(message_types=frozenset({MessageType.DELETE}))
    )
    async with scan(writer, option) as scanner:
        got = await read_until(scanner, tick.timetick)
    types = [m.message_type for m in got]
    # The Insert and the DDL are filtered; the committed txn is delivered whole.
    assert types == [MessageType.DELETE, MessageType.TXN, MessageType.TIME_TICK]
    txn = got[1]
    assert isinstance(txn, ImmutableTxnMessage)
    assert [b.message_type for b in txn.body] == [MessageType.INSERT]


def test_a_system_type_in_the_type_filter_is_refused() -> None:
    option = WALReadOption(
        deliver_filter=DeliverFilter(message_types=frozenset({MessageType.TIME_TICK}))
    )
    with pytest.raises(ValueError, match="system types"):
        open_scanner(None, option, wab=None, force_sync=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_messages"):
        open_scanner(None, WALReadOption(buffer_messages=0), wab=None, force_sync=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("inclusive", [False, True])
async def test_timetick_filter_with_start_from_last_confirmed(
    writer: Writer, inclusive: bool
) -> None:
    await writer.data(3)
    a = writer.alloc
    begin = make(MessageType.BEGIN_TXN, a(), txn=7)
    mid = [make(MessageType.INSERT, a()) for _ in range(4)]
    ws, _ = await writer.window([begin, *mid], [3, 0, 4, 1, 2])
    # A reader resuming after the message at mid[1]: start from its last-confirmed id
    # and filter by its timetick (how Milvus consumers resume).
    pivot = next(m for m in ws if m.timetick == mid[1].timetick)
    lc = pivot.last_confirmed_message_id
    assert lc is not None
    commit = make(MessageType.COMMIT_TXN, a(), txn=7)
    _, tick = await writer.window([commit, make(MessageType.DELETE, a())])
    flt = (
        DeliverFilter(timetick_gte=pivot.timetick)
        if inclusive
        else DeliverFilter(timetick_gt=pivot.timetick)
    )
    option = WALReadOption(deliver_policy=DeliverStartFrom(lc), deliver_filter=flt)
    async with scan(writer, option) as scanner:
        got = await read_until(scanner, tick.timetick)
    assert_strictly_increasing(got)
    gt = pivot.timetick - 1 if inclusive else pivot.timetick
    assert data_keys(got) == expected(writer.log, start=idx(lc), gt=gt)
    assert min(m.timetick for m in got) > gt
    # The txn began before the filter's timetick but commits after it: delivered whole.
    assert any(m.message_type is MessageType.TXN for m in got)


async def test_vchannel_filter_and_all_vchannel_messages(writer: Writer) -> None:
    a = writer.alloc
    msgs = [
        make(MessageType.INSERT, a(), vchannel="v1"),
        make(MessageType.INSERT, a(), vchannel="v2"),
        make(MessageType.CREATE_COLLECTION, a(), broadcast=["v1", "v2"]),
        make(MessageType.DROP_COLLECTION, a(), broadcast=["v2"]),
        make(MessageType.DELETE, a(), vchannel="v2"),
        make(MessageType.DELETE, a(), vchannel="v1"),
    ]
    _, tick = await writer.window(msgs, [5, 4, 3, 2, 1, 0])
    for vc in ("v1", "v2"):
        async with scan(writer, WALReadOption(vchannel=vc)) as scanner:
            got = await read_until(scanner, tick.timetick)
        assert data_keys(got) == expected(writer.log, vchannel=vc)
        assert got[-1].message_type is MessageType.TIME_TICK  # ticks go to every vchannel
    assert len(expected(writer.log, vchannel="v1")) == 3
    assert len(expected(writer.log, vchannel="v2")) == 4


# --- deliver policies -----------------------------------------------------------------------


async def test_deliver_policies_start_where_they_say(writer: Writer) -> None:
    await writer.data(2)
    _, t1 = await writer.data(3)
    _, t2 = await writer.data(2)
    start = idx(t1.message_id)
    cases: list[tuple[DeliverPolicy, int, bool]] = [
        (DeliverAll(), 0, True),
        (DeliverStartFrom(t1.message_id), start, True),
        (DeliverStartAfter(t1.message_id), start + 1, False),
    ]
    for policy, first, sees_t1 in cases:
        async with scan(writer, WALReadOption(deliver_policy=policy)) as scanner:
            got = await read_until(scanner, t2.timetick)
        assert data_keys(got) == expected(writer.log, start=first), policy
        assert any(m.message_id == t1.message_id for m in got) is sees_t1


async def test_deliver_latest_sees_only_what_is_appended_after_it_starts(writer: Writer) -> None:
    await writer.data(4)

    async def sync() -> None:
        await writer.tick()

    async with scan(
        writer, WALReadOption(deliver_policy=DeliverLatest()), force_sync=sync
    ) as scanner:
        first = await anext_bounded(scanner)
        # The forced TimeTick is written after the reader's start, so it is the first thing seen.
        assert first.message_type is MessageType.TIME_TICK
        start = len(writer.log)
        _, tick = await writer.data(3)
        got = await read_until(scanner, tick.timetick)
    assert data_keys(got) == expected(writer.log, start=start)


async def anext_bounded(scanner: WALScanner) -> ImmutableMessage:
    async with asyncio.timeout(WAIT):
        return await anext(scanner)


# --- TimeTick delivery rule -----------------------------------------------------------------


async def test_not_persisted_tick_only_when_nothing_else_is_pending(writer: Writer) -> None:
    pipeline = DeliveryPipeline(WALReadOption(buffer_messages=8))
    ids = itertools.count(10_000)

    def im(m: MutableMessage) -> ImmutableMessage:
        return m.into_immutable(MemoryMessageID(next(ids)))

    def tick(tt: int, persisted: bool) -> ImmutableMessage:
        m = new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(tt)
        return im(m if persisted else m.with_not_persisted())

    await pipeline.feed(im(make(MessageType.INSERT, 12)))
    await pipeline.feed(tick(20, persisted=False))  # released a message: the tick adds nothing
    assert [pipeline.take().timetick for _ in range(1)] == [12]  # type: ignore[union-attr]
    assert pipeline.take() is None
    await pipeline.feed(tick(30, persisted=False))  # idle and caught up: deliver it
    assert pipeline.take().timetick == 30  # type: ignore[union-attr]
    await pipeline.feed(tick(40, persisted=False))
    await pipeline.feed(tick(50, persisted=False))  # the reader did not take 40 yet: drop 50
    assert [m.timetick for m in drain(pipeline)] == [40]
    await pipeline.feed(im(make(MessageType.INSERT, 55)))
    await pipeline.feed(tick(60, persisted=True))  # persisted: always delivered
    assert [m.timetick for m in drain(pipeline)] == [55, 60]
    await pipeline.feed(tick(60, persisted=True))  # never at or below what was delivered
    assert drain(pipeline) == []


def drain(pipeline: DeliveryPipeline) -> list[ImmutableMessage]:
    out = []
    while (m := pipeline.take()) is not None:
        out.append(m)
    return out


async def test_tailing_reader_gets_not_persisted_ticks(writer: Writer) -> None:
    writer.start_wab(await writer.tick())
    _, tick = await writer.data(2)
    async with scan(writer) as scanner:
        await read_until(scanner, tick.timetick)
        assert scanner.mode is ScanMode.TAILING
        idle = writer.idle_tick()
        got = await anext_bounded(scanner)
    assert got.timetick == idle.timetick
    assert not got.is_persisted


# --- back-pressure ----------------------------------------------------------------------------


async def test_slow_reader_bounds_what_the_scanner_holds_in_catch_up(writer: Writer) -> None:
    window = 20
    for _ in range(100):
        await writer.data(window)
    last = writer.log[-1].timetick
    cap = 16
    async with scan(writer, WALReadOption(buffer_messages=cap)) as scanner:
        await anext_bounded(scanner)
        peak = 0
        for _ in range(20):  # the reader sleeps; the scanner must not read on
            await asyncio.sleep(0.005)
            stats = scanner.stats()
            peak = max(peak, stats.held_messages)
            assert stats.ready <= cap
        assert peak <= cap + 2 * window
        got = await read_until(scanner, last, timeout=WAIT * 2)
    assert len(data_keys(got)) == 100 * window - 1


async def test_slow_reader_bounds_what_the_scanner_holds_while_tailing(writer: Writer) -> None:
    writer.start_wab(await writer.tick(), capacity_bytes=4096)
    cap, window = 8, 5
    async with scan(writer, WALReadOption(buffer_messages=cap)) as scanner:
        _, tick = await writer.data(window)
        await read_until(scanner, tick.timetick)
        assert scanner.mode is ScanMode.TAILING
        peak = 0
        for _ in range(60):  # writes go on while the reader sleeps
            await writer.data(window)
            await asyncio.sleep(0)
            stats = scanner.stats()
            peak = max(peak, stats.held_messages)
            assert stats.ready <= cap
        assert peak <= cap + 2 * window
        got = await read_until(scanner, writer.log[-1].timetick, timeout=WAIT * 2)
        # The reader fell out of the buffer while it slept and caught up from the backend.
        assert scanner.stats().to_catch_up >= 1
    assert_strictly_increasing(got)
    assert data_keys(got) == expected(writer.log, start=idx(tick.message_id))


# --- close --------------------------------------------------------------------------------------


async def test_close_while_the_reader_waits_at_the_tail(writer: Writer) -> None:
    _, tick = await writer.data(2)
    scanner = scan(writer)
    await read_until(scanner, tick.timetick)
    waiter = asyncio.create_task(anext(scanner))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    async with asyncio.timeout(WAIT):
        await scanner.close()
        with pytest.raises(StopAsyncIteration):
            await waiter
        await scanner.close()  # idempotent
    assert scanner.error is None
    assert scanner.finished
    with pytest.raises(StopAsyncIteration):
        await anext(scanner)


async def test_close_while_the_scanner_is_held_by_back_pressure(writer: Writer) -> None:
    for _ in range(5):
        await writer.data(10)
    scanner = scan(writer, WALReadOption(buffer_messages=2))
    await asyncio.sleep(0.01)
    assert scanner.stats().ready == 2
    async with asyncio.timeout(WAIT):
        await scanner.close()
    assert scanner.stats().held_messages <= 30


async def test_close_before_the_task_ever_ran(writer: Writer) -> None:
    scanner = scan(writer)
    async with asyncio.timeout(WAIT):
        await scanner.close()
    assert scanner.finished or scanner.closed


# --- backend errors -------------------------------------------------------------------------------


class FlakyWAL(PassThroughWAL):
    """Wraps a WALImpl; its readers raise ``error`` once after ``after`` messages (each time armed)."""

    def __init__(self, inner: WALImpl) -> None:
        super().__init__(inner)
        self.fail_reads: list[BaseException] = []  # raised by read() itself, in order
        self.fail_after: tuple[int, BaseException] | None = None
        self.reads: list[ReadOption] = []

    async def read(self, option: ReadOption) -> Scanner:
        self.reads.append(option)
        if self.fail_reads:
            raise self.fail_reads.pop(0)
        arm, self.fail_after = self.fail_after, None
        return FlakyScanner(await self.inner.read(option), arm)


class FlakyScanner(Scanner):
    def __init__(self, inner: Scanner, arm: tuple[int, BaseException] | None) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.arm = arm
        self.count = 0

    async def __anext__(self) -> ImmutableMessage:
        if self.arm is not None and self.count >= self.arm[0]:
            raise self.arm[1]
        self.count += 1
        return await anext(self.inner)

    async def close(self) -> None:
        await self.inner.close()


async def test_transient_read_errors_are_retried_without_gap_or_duplicate(writer: Writer) -> None:
    for _ in range(4):
        await writer.data(6)
    flaky = FlakyWAL(writer.impl)
    flaky.fail_reads = [ConnectionError("refused")]
    flaky.fail_after = (9, TimeoutError("read timed out"))  # in the middle of a window
    scanner = open_scanner(
        flaky, WALReadOption(), wab=None, force_sync=None, retry_initial=0.001, retry_max=0.01
    )
    async with scanner:
        got = await read_until(scanner, writer.log[-1].timetick)
        stats = scanner.stats()
    assert data_keys(got) == expected(writer.log)
    assert_strictly_increasing(got)
    assert stats.read_retries == 2
    # Reopened right after the last message it had read.
    assert isinstance(flaky.reads[-1].deliver_policy, DeliverStartAfter)
    assert idx(flaky.reads[-1].deliver_policy.message_id) == 8


async def test_a_final_read_error_ends_the_scanner(writer: Writer) -> None:
    _, tick = await writer.data(3)
    await writer.data(3)
    flaky = FlakyWAL(writer.impl)
    boom = MessageDecodeError("corrupt entry")
    flaky.fail_after = (4, boom)
    scanner = open_scanner(flaky, WALReadOption(), wab=None, force_sync=None)
    got: list[ImmutableMessage] = []
    async with scanner:
        with pytest.raises(MessageDecodeError):
            async with asyncio.timeout(WAIT):
                async for m in scanner:
                    got.append(m)
    assert scanner.error is boom
    # What was ready before the failure was still delivered.
    assert [m.timetick for m in got][-1] == tick.timetick


async def test_backend_closed_under_the_scanner(writer: Writer) -> None:
    _, tick = await writer.data(2)
    scanner = scan(writer)
    await read_until(scanner, tick.timetick)
    await writer.impl.close()
    with pytest.raises(ScannerBackendEndedError):
        await anext_bounded(scanner)
    assert isinstance(scanner.error, WALClosedError)
    await scanner.close()


async def test_a_failing_force_sync_is_not_fatal(writer: Writer) -> None:
    _, tick = await writer.data(2)

    async def sync() -> None:
        raise ConnectionError("coordinator away")

    async with scan(writer, force_sync=sync) as scanner:
        got = await read_until(scanner, tick.timetick)
    assert data_keys(got) == expected(writer.log)


def test_open_scanner_refuses_a_closed_buffer() -> None:
    tick = (
        new_message(MessageType.TIME_TICK, vchannel=None)
        .with_timetick(5)
        .into_immutable(MemoryMessageID(0))
    )
    wab = WriteAheadBuffer(tick)
    wab.close()
    with pytest.raises(WALClosedError):
        open_scanner(None, WALReadOption(), wab=wab, force_sync=None)  # type: ignore[arg-type]


async def test_held_bytes_counts_reordering_staged_and_ready() -> None:
    """``held_bytes`` is the sum of ``size`` over what the pipeline holds, at every stage."""
    pipeline = DeliveryPipeline(WALReadOption(buffer_messages=2))
    ids = itertools.count(20_000)

    def im(m: MutableMessage) -> ImmutableMessage:
        return m.into_immutable(MemoryMessageID(next(ids)))

    msgs = [im(make(MessageType.INSERT, tt, payload=b"p" * tt)) for tt in (13, 11, 12)]
    for m in msgs:
        await pipeline.feed(m)
    assert pipeline.stats().held_bytes == sum(m.size for m in msgs)
    tick = im(new_message(MessageType.TIME_TICK, vchannel=None).with_timetick(20))
    feeding = asyncio.create_task(pipeline.feed(tick))  # two fit; the third waits staged
    for _ in range(5):
        await asyncio.sleep(0)
    stats = pipeline.stats()
    assert (stats.ready, stats.staged, stats.reordering) == (2, 1, 0)
    assert stats.held_bytes == sum(m.size for m in msgs)
    first = pipeline.take()
    assert first is not None and first.timetick == 11
    for _ in range(5):
        await asyncio.sleep(0)
    stats = pipeline.stats()  # 12 and 13 ready; the tick waits for room (not held yet)
    assert (stats.ready, stats.staged, stats.reordering) == (2, 0, 0)
    assert stats.held_bytes == sum(m.size for m in msgs if m is not first)
    second = pipeline.take()
    assert second is not None and second.timetick == 12
    async with asyncio.timeout(WAIT):
        await feeding
    assert pipeline.stats().held_bytes == msgs[0].size + tick.size
    assert [m.timetick for m in drain(pipeline)] == [13, 20]
    assert pipeline.stats().held_bytes == 0
